/**
 * The distributed dictionary's boundaries (issue 11, `DDict`, src/ddict/): the one spec of
 *   - the options a `DDict` is created with (checked once, errors name `ddict.totalMem`),
 *   - the descriptor a `DDict` travels as (to tasks, through the codec's extension 0x2a): enough
 *     for any process to attach, never the data,
 *   - the shard host's command line (`tsflow-ddict-shards`, one per node: it starts that node's
 *     Redis servers) and the lines it reports to the creating process,
 *   - how keys and values are laid out in Redis, so that every client (any process, any node)
 *     hashes a key to the same shard and reads what another wrote.
 *
 * A shard ("manager" in DragonHPC's words) is one real `redis-server` with `maxmemory` set to 90%
 * of its share of `totalMem` and `maxmemory-policy noeviction`: a put into a full shard is refused
 * (DDictFull), never paid for by silently evicting other keys. Servers tsflow starts require a
 * password made per dictionary (it travels in the descriptor, never on a command line).
 */
import { ConfigError } from '../errors.js'
import { integer, join, number, object, optional, string, arrayOf, boolean, type Check } from '../util/schema.js'
import { sizeBytes } from '../util/size.js'
import { asNumber, defineArgvSpec, nonEmptyString, type Field, type ValuesOf } from './spec.js'
import { logLevelField } from './interchange.js'

// ---- defaults

export const DDICT_DEFAULTS = {
  /** Redis servers per node. */
  managersPerNode: 1,
  /** Memory of the whole dictionary, split evenly over its shards (1 GiB). */
  totalMem: 1024 ** 3,
  /** A shard refuses puts once it holds this fraction of its share: Redis `maxmemory` = share x this. */
  fullFraction: 0.9,
  /** Bound of one command, and the default bound of waits (`waitFor`, checkpoint readers). */
  timeoutMs: 30_000,
  /** Checkpoints kept per key: a write at checkpoint c retires what is older than c - workingSetSize + 1. */
  workingSetSize: 2,
  /** Read replicas per shard (0: none); a frozen dictionary reads from any of them. */
  replicas: 0,
  /** How long the servers may take to start and report (a batch queue may need more). */
  startTimeoutMs: 60_000,
  /** Address the servers tsflow starts on this machine listen on. */
  bindAddress: '127.0.0.1',
} as const

// ---- the options of DDict.create / DDict.connect

/** A shard address as users give it: 'host:port' or 'redis://[:password@]host:port'. */
export interface ShardAddress {
  host: string
  port: number
  password?: string
}

export function parseShardAddress(text: string, path: string): ShardAddress {
  const match = /^(?:redis:\/\/(?:[^:@/]*:([^@/]*)@)?)?(\[[^\]]+\]|[^:/@]+):(\d{1,5})\/?$/.exec(text.trim())
  const port = match ? Number(match[3]) : NaN
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(path, `must be a Redis address 'host:port' or 'redis://[:password@]host:port' (got ${JSON.stringify(text)})`)
  }
  const host = match[2]!.replace(/^\[|\]$/g, '')
  return match[1] ? { host, port, password: decodeURIComponent(match[1]) } : { host, port }
}

const shardAddress: Check<ShardAddress> = (value, path) => parseShardAddress(string(value, path), path)

const fraction: Check<number> = (value, path) => {
  const n = number(Number.MIN_VALUE, 1, 'a fraction in (0, 1]')(value, path)
  return n
}

/**
 * Checks the plain-data options of a DDict (the `provider`, an object, is checked by the
 * provider placement with the provider's own validate()). Errors name `path.option`.
 */
export const ddictOptionsShape = {
  name: optional(nonEmptyString),
  managersPerNode: optional(integer(1, 256, 'a number of servers per node')),
  totalMem: optional(sizeBytes),
  fullFraction: optional(fraction),
  timeoutMs: optional(integer(1, 24 * 3600_000, 'milliseconds')),
  workingSetSize: optional(integer(1, 1_000_000, 'a number of checkpoints')),
  replicas: optional(integer(0, 16, 'a number of replicas per shard')),
  startTimeoutMs: optional(integer(1, 24 * 3600_000, 'milliseconds')),
  bindAddress: optional(nonEmptyString),
  advertiseAddress: optional(nonEmptyString),
  blocks: optional(integer(1, 100_000, 'a number of blocks')),
  addresses: optional(arrayOf(shardAddress)),
  password: optional(string),
  redisServer: optional(nonEmptyString),
  dir: optional(nonEmptyString),
  waitForKeys: optional(boolean),
}

export type DDictPlainOptions = ValuesOfShape<typeof ddictOptionsShape>
type ValuesOfShape<S extends Record<string, Check<unknown>>> = { [K in keyof S]?: Exclude<ReturnType<S[K]>, undefined> }

/** Validates the plain options (`provider`, if present, is passed through untouched). */
export function validateDDictOptions(value: unknown, path = 'ddict'): DDictPlainOptions & { provider?: unknown } {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(path, `must be an options object (got ${JSON.stringify(value)})`)
  const { provider, ...rest } = value as Record<string, unknown>
  const checked = object(ddictOptionsShape)(rest, path) as DDictPlainOptions
  if (checked.addresses !== undefined) {
    if (checked.addresses.length === 0) throw new ConfigError(join(path, 'addresses'), 'must list at least one Redis address')
    if (provider !== undefined) throw new ConfigError(join(path, 'provider'), 'cannot be given with addresses: either tsflow starts the servers (provider, or this machine) or it uses yours (addresses)')
    for (const key of ['managersPerNode', 'blocks', 'replicas', 'bindAddress', 'redisServer'] as const) {
      if (checked[key] !== undefined) throw new ConfigError(join(path, key), 'applies only to servers tsflow starts, not to an existing deployment given by addresses')
    }
  }
  if (provider !== undefined && (typeof provider !== 'object' || provider === null || typeof (provider as { submit?: unknown }).submit !== 'function')) {
    throw new ConfigError(join(path, 'provider'), 'must be an execution provider (e.g. new SlurmProvider({ ... }))')
  }
  return provider === undefined ? checked : { ...checked, provider }
}

// ---- the descriptor (what a DDict travels as)

export interface DDictReplicaInfo {
  host: string
  port: number
}

export interface DDictShardInfo {
  /** position in `shards`: keys hash to it */
  index: number
  host: string
  port: number
  /** the node (host name) it runs on, for localKeys() and logs */
  node: string
  /** its Redis `maxmemory` in bytes (0: no limit, an existing server without one) */
  maxmemory: number
  replicas: DDictReplicaInfo[]
}

export interface DDictDescriptor {
  v: 1
  /** for messages */
  name: string
  /** prefix of every Redis key of this dictionary (several dictionaries can share servers) */
  id: string
  shards: DDictShardInfo[]
  /** AUTH password of the shards ('' = none) */
  password: string
  timeoutMs: number
  workingSetSize: number
  /** the handle's checkpoint when it was sent */
  checkpoint: number
  /** a manager-pinned handle: every key goes to this shard */
  pinned?: number
  /** get() waits for a missing key (as DragonHPC's wait_for_keys) instead of failing */
  waitForKeys?: boolean
}

export function isDDictDescriptor(value: unknown): value is DDictDescriptor {
  const d = value as DDictDescriptor
  return typeof d === 'object' && d !== null && d.v === 1 && typeof d.id === 'string' && Array.isArray(d.shards) && d.shards.length > 0
}

// ---- keys and values in Redis

/**
 * A user key is a string or a finite number; in Redis it is `${id}:${checkpoint}:${keyText}` with
 * keyText `s<string>` or `n<number>`, so that keys() gives back the type that was put.
 * Meta keys of a dictionary on each shard: `${id}:#frozen`, `${id}:#newest` (newest checkpoint written).
 */
export type DDictKey = string | number

export function keyText(key: DDictKey): string {
  if (typeof key === 'string') return `s${key}`
  if (typeof key === 'number' && Number.isFinite(key)) return `n${key}`
  throw new TypeError(`a DDict key must be a string or a finite number (got ${typeof key === 'number' ? key : typeof key})`)
}

export function keyFromText(text: string): DDictKey {
  return text.charCodeAt(0) === 0x6e /* n */ ? Number(text.slice(1)) : text.slice(1)
}

export function redisKey(id: string, checkpoint: number, text: string): string {
  return `${id}:${checkpoint}:${text}`
}

export const metaKeys = (id: string) => ({ frozen: `${id}:#frozen`, newest: `${id}:#newest` })

/** FNV-1a (32 bit) over the UTF-16 code units of keyText: the shard every client picks for a key. */
export function shardOf(text: string, shards: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % shards
}

/**
 * A stored value starts with a tag byte. Safe integers are stored as plain ASCII decimals (no
 * tag; Redis INCRBY works on them: `fetchAdd`). Bytes and typed arrays are stored raw after a
 * header of 8 bytes (tag, typed-array kind, 6 zero bytes) so a reader can view them without a copy
 * when the buffer is aligned; anything else is the msgpack codec's encoding after one tag byte.
 */
export const VALUE_TAG = {
  /** Buffer, read back as a Buffer */
  buffer: 0x01,
  /** a typed array (or DataView) of kind TYPED_KINDS[byte 1] */
  typed: 0x02,
  /** the codec (serialize/codec.ts) */
  codec: 0x10,
} as const
export const VALUE_HEADER_BYTES = 8

export const TYPED_KINDS = [
  'Uint8Array',
  'Int8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'DataView',
] as const

// ---- the shard host (`tsflow-ddict-shards`, one per node)

/**
 * One per node, started by the creating process on this machine or by a provider's block on
 * each node (through its launcher). It starts `--count` Redis servers on free ports, connects to
 * `--report` (the creator's TCP listener) and writes one JSON line, ShardHostReport; it keeps
 * that connection open and stops its servers and exits when it closes (the creator destroyed the
 * dictionary, or died: no orphaned servers), on SIGTERM/SIGINT, or when it reads a `stop` line.
 * A server that exits on its own is reported (`lost`) before the host stops the rest.
 * The password comes in the environment variable TSFLOW_DDICT_PASSWORD, never in argv.
 */
export const ddictShardsSpec = defineArgvSpec('tsflow-ddict-shards', {
  id: { flag: 'id', arg: 'ID', check: nonEmptyString, help: 'the dictionary id (names logs and files)' } as Field<string>,
  report: { flag: 'report', arg: 'HOST:PORT', check: nonEmptyString, help: "the creator's TCP listener to report to" } as Field<string>,
  count: { flag: 'count', arg: 'N', check: integer(1, 256, 'a number of servers'), parse: asNumber, help: 'Redis servers to start on this node        [1]' } as Field<number>,
  maxmemory: { flag: 'maxmemory', arg: 'BYTES', check: integer(0, Number.MAX_SAFE_INTEGER, 'bytes'), parse: asNumber, help: 'maxmemory of each server (0: none)' } as Field<number>,
  replicas: { flag: 'replicas', arg: 'N', check: integer(0, 16, 'a number of replicas'), parse: asNumber, help: 'read replicas per server                   [0]' } as Field<number>,
  bind: { flag: 'bind', arg: 'ADDRESS', check: nonEmptyString, help: 'address the servers listen on              [127.0.0.1]' } as Field<string>,
  advertise: { flag: 'advertise', arg: 'ADDRESS', check: nonEmptyString, help: 'address clients use [the bind address, or for 0.0.0.0 the address this node reaches --report from]' } as Field<string>,
  redisServer: { flag: 'redis-server', arg: 'PATH', check: nonEmptyString, help: 'the redis-server binary                    [on PATH]' } as Field<string>,
  dir: { flag: 'dir', arg: 'DIR', check: nonEmptyString, help: 'where server logs go                       [a temp dir]' } as Field<string>,
  logLevel: logLevelField,
})
export type DDictShardsArgs = ValuesOf<typeof ddictShardsSpec.fields>

export const DDICT_PASSWORD_ENV = 'TSFLOW_DDICT_PASSWORD'

/**
 * The `notify-keyspace-events` of every server a shard host starts: keyspace events (K) for string
 * commands ($: SET, INCRBY...), generic ones (g: DEL, RENAME...) and expiries (x), what `waitFor`
 * and checkpoint readers subscribe to instead of polling.
 */
export const DDICT_KEYSPACE_EVENTS = 'K$gx'

/** The one line a shard host writes to `--report` once its servers answer (or could not start). */
export type ShardHostReport =
  | { kind: 'ready'; node: string; pid: number; shards: { host: string; port: number; maxmemory: number; pid: number; replicas: DDictReplicaInfo[] }[] }
  | { kind: 'error'; node: string; pid: number; message: string }

/** Lines the shard host may write later on the same connection. */
export type ShardHostEvent = { kind: 'lost'; node: string; port: number; message: string }

/** What the creator may write to a shard host: stop now (destroy). */
export type ShardHostCommand = { kind: 'stop' }
