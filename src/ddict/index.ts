/**
 * `tsflow/ddict` (also re-exported by `tsflow`): the distributed dictionary, docs/ddict.md.
 * Importing this entry registers the provider placement (shards on the nodes of provider blocks),
 * which needs the provider layer; the client itself (`client.ts`) is what workers load.
 */
import './placement/provider.js'

export { DDict } from './client.js'
export type { DDictCreateOptions, Entries, GetOptions, ShardStats, DDictKey, DDictDescriptor } from './client.js'
export type { DDictShardInfo, DDictReplicaInfo, ShardAddress } from '../protocol/ddict.js'
export { DDICT_DEFAULTS } from '../protocol/ddict.js'
