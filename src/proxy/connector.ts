import { ConfigError } from '../errors.js'
import { PluginRegistry } from '../util/registry.js'
import { isPlainObject } from '../util/schema.js'

/**
 * Where a connector keeps one object. Keys are small plain objects (they travel inside proxies,
 * so they must encode with msgpack and stay a few bytes); `id` is always there, a connector may
 * add its own fields (an owner address, a segment name).
 */
export interface ObjectKey {
  readonly id: string
  readonly [field: string]: string | number
}

/**
 * What a put may say about its object besides its bytes (and size). Only routing connectors
 * (`multi`) read it; every other connector ignores it, so passing it is always safe.
 */
export interface PutHints {
  /** labels a routing policy can match, e.g. `['checkpoint']` */
  readonly tags?: readonly string[]
}

/** A connector's plain-object config: `{ type, ...options }`, enough to rebuild it in another process. */
export interface ConnectorConfig {
  type: string
  [option: string]: unknown
}

/**
 * The connector plug-in interface: byte storage under keys, nothing else (serialization, caching
 * and proxies are the Store's). Every method is async; a missing key makes `get`/`getBatch`
 * reject with `ObjectNotFound` (E_OBJECT_NOT_FOUND), any other failure is a `ConnectorError`
 * (E_CONNECTOR) naming the connector and its address. `evict` of a missing key is not an error.
 */
export interface Connector<K extends ObjectKey = ObjectKey> {
  /** the registered type name, as in `toConfig().type` */
  readonly type: string
  /** how errors name this connector, e.g. `file(/scratch/objects)` */
  readonly label: string
  /**
   * stores `bytes` under `key` (replacing what was there) or under a new key; resolves to the key.
   * `hints` describe the object for connectors that route (multi); others ignore them.
   */
  put(bytes: Uint8Array, key?: K, hints?: PutHints): Promise<K>
  get(key: K): Promise<Uint8Array>
  /**
   * The same as `get`, blocking: connectors whose back end can answer synchronously (local, file,
   * shm) have it, socket-based ones through a SyncBridge (redis, zmq for other owners; `withSyncGet` adds one). It lets a
   * proxy resolve on a plain property access.
   */
  getSync?(key: K): Uint8Array
  exists(key: K): Promise<boolean>
  evict(key: K): Promise<void>
  /**
   * The same as `evict`, blocking: connectors that can remove an object without waiting on I/O
   * callbacks (local, file, shm; multi when every child can) have it. It lets a process evict
   * in an `exit` handler, where nothing asynchronous runs any more (`StaticLifetime`).
   */
  evictSync?(key: K): void
  /** `hints` apply to every value of the batch */
  putBatch(values: readonly Uint8Array[], hints?: PutHints): Promise<K[]>
  getBatch(keys: readonly K[]): Promise<Uint8Array[]>
  /** a fresh key for an object to be put later (proxy futures); nothing is stored yet */
  newKey(hints?: PutHints): K
  /**
   * true while this connector keeps the process running (a zmq connector serving its objects
   * holds a socket open until closed); `main()` warns about such stores left open
   */
  readonly keepsProcessAlive?: boolean
  /** releases the connector's resources; objects a shared back end holds stay there */
  close(): Promise<void>
  toConfig(): ConnectorConfig
}

export function isConnector(value: unknown): value is Connector {
  if (typeof value !== 'object' || value === null) return false
  const c = value as Record<string, unknown>
  return ['put', 'get', 'exists', 'evict', 'putBatch', 'getBatch', 'close', 'toConfig'].every((m) => typeof c[m] === 'function')
}

/**
 * The connector types by name, so a config (`{ type: 'file', directory }`) read in a worker or
 * manager rebuilds the same connector there. Each connector module registers itself.
 */
export const connectors = new PluginRegistry<Connector>({
  what: "a connector (e.g. new FileConnector({ directory: '/scratch/objects' }))",
  isInstance: isConnector,
  validate: () => {},
})

/** Rebuilds a connector from its `toConfig()`; errors name `path` (default `connector`). */
export function connectorFromConfig(config: ConnectorConfig | Connector, path = 'connector'): Connector {
  try {
    return connectors.option(config, path)
  } catch (error) {
    // Connector constructors check their options under the generic path `connector`; say where
    // the config really sits (`executors[0].proxy.store.connector.directory`, not `connector.directory`).
    if (error instanceof ConfigError && path !== 'connector' && /^connector(?=$|[.[])/.test(error.path)) {
      const problem = error.message.slice(error.path.length + 1)
      throw new ConfigError(path + error.path.slice('connector'.length), problem, { cause: error.cause })
    }
    throw error
  }
}

/** A key as errors print it: `id` alone, or `id (field=value, ...)` when the connector added fields. */
export function keyText(key: ObjectKey): string {
  const extra = Object.entries(key).filter(([field]) => field !== 'id')
  return extra.length === 0 ? `'${key.id}'` : `'${key.id}' (${extra.map(([f, v]) => `${f}=${v}`).join(', ')})`
}

export function isObjectKey(value: unknown): value is ObjectKey {
  return isPlainObject(value) && typeof value.id === 'string'
}
