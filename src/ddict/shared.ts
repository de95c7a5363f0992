/**
 * The connection set of one dictionary in this process: one per dictionary id, shared by every
 * handle of it here (attached twice, decoded from several tasks, pinned handles), closed when
 * the last attached handle detaches. Holds whether the dictionary was destroyed (every handle
 * here then fails with DDictDestroyed) and, for the process that started the servers, the
 * ShardGroup that stops them.
 */
import type { DDictDescriptor, DDictShardInfo } from '../protocol/ddict.js'
import type { LinkContext } from './connection.js'
import { ShardLink } from './shard-link.js'

/** The servers a DDict.create started (src/ddict/servers/placement.ts's ShardGroup, the part used here). */
export interface StartedShards {
  shards: DDictShardInfo[]
  password: string
  stop(): Promise<void>
  onLost?(listener: (message: string, shard?: DDictShardInfo) => void): () => void
  describe?(): Record<string, unknown>
}

export interface Shared {
  readonly id: string
  readonly base: Omit<DDictDescriptor, 'checkpoint' | 'pinned' | 'waitForKeys'>
  readonly context: LinkContext
  readonly links: ShardLink[]
  /** the servers this process started (only the creating handle's set has it) */
  group: StartedShards | undefined
  /** attached handles in this process */
  handles: number
  /** this process knows the dictionary is frozen (freeze()/isFrozen()/a DDictFrozen): reads may go to replicas */
  frozen: boolean
  closed: boolean
  /** the shards found to send no keyspace notifications (waits poll them) */
  checkedNotifications: Map<number, Promise<boolean>>
}

const sets = new Map<string, Shared>()
/**
 * Servers this process started for a dictionary whose handles here all detached: a handle
 * attached later in this process takes them back, so its destroy() still stops them (DragonHPC
 * users detach the creating handle and destroy from another one).
 */
const groups = new Map<string, StartedShards>()
/** ids of dictionaries destroyed by this process: a handle attached later fails with DDictDestroyed too */
const destroyedIds = new Set<string>()

export function markDestroyed(shared: Shared): void {
  shared.context.destroyed = true
  destroyedIds.add(shared.id)
}

/** The connection set of `descriptor`'s dictionary, made when this process has none (no connection yet: lazy). */
export function sharedFor(descriptor: DDictDescriptor): Shared {
  const existing = sets.get(descriptor.id)
  if (existing && !existing.closed) return existing
  const { checkpoint: _c, pinned: _p, waitForKeys: _w, ...base } = descriptor
  const context: LinkContext = { dict: descriptor.name, password: descriptor.password, timeoutMs: descriptor.timeoutMs, destroyed: destroyedIds.has(descriptor.id) }
  const shards = descriptor.shards.map((s) => ({ ...s, replicas: s.replicas.map((r) => ({ ...r })) }))
  const shared: Shared = {
    id: descriptor.id,
    base: { ...base, shards },
    context,
    links: shards.map((info) => new ShardLink(context, info)),
    group: groups.get(descriptor.id),
    handles: 0,
    frozen: false,
    closed: false,
    checkedNotifications: new Map(),
  }
  sets.set(descriptor.id, shared)
  return shared
}

/** One handle fewer; the last one closes the connections. */
export async function release(shared: Shared): Promise<void> {
  shared.handles--
  if (shared.handles > 0) return
  await closeShared(shared)
}

export async function closeShared(shared: Shared): Promise<void> {
  shared.closed = true
  if (shared.group && !shared.context.destroyed) groups.set(shared.id, shared.group)
  else groups.delete(shared.id)
  if (sets.get(shared.id) === shared) sets.delete(shared.id)
  await Promise.all(shared.links.map((link) => link.close()))
}
