import { addExtension } from 'msgpackr'
import { ConfigError, UsageError } from '../errors.js'
import { boolean, nonNegativeInt, object, optional, string, type Check } from '../util/schema.js'
import { connectorFromConfig, type Connector, type ConnectorConfig, type ObjectKey, type PutHints } from './connector.js'
import { checkLifetime, type Lifetime } from './lifetimes.js'
import { ownedFromFactory, type OwnedProxy } from './ownership.js'
import { getWaiting, proxyOf, refuseUnproxyable, type ProxyFactory } from './proxy.js'
import { getSerializer, serializerNames, type Serializer } from './serializer.js'

export interface StoreOptions {
  /** how many decoded objects `get` keeps, least recently used dropped first (default 16; 0: none) */
  cacheSize?: number
  /** the registered serializer's name (default 'msgpack', tsflow's codec) */
  serializer?: string
  /** put the store in this process's registry, so `getStore(name)` finds it (default true) */
  register?: boolean
}

/** Everything needed to rebuild a store in another process: plain JSON. */
export interface StoreConfig {
  name: string
  connector: ConnectorConfig
  cacheSize: number
  serializer: string
}

export interface ProxyOptions {
  /** evict the object once a proxy resolved it: for a value read exactly once (default false) */
  evict?: boolean
  /** a serializer other than the store's default */
  serializer?: string
  /** evict the object when this lifetime ends (lifetimes.ts); an ended one refuses it */
  lifetime?: Lifetime
  /** tags a routing connector (multi) matches against its policies; other connectors ignore them */
  tags?: readonly string[]
}

export interface PutOptions {
  /** a serializer other than the store's default; `get` must be given the same one */
  serializer?: string
  /** evict the object when this lifetime ends (lifetimes.ts); an ended one refuses it */
  lifetime?: Lifetime
  /** tags a routing connector (multi) matches against its policies; other connectors ignore them */
  tags?: readonly string[]
}

export interface GetOptions {
  /** the serializer the object was stored with, when not the store's default */
  serializer?: string
  /** false: read the connector even when the value is cached, and do not cache it (default true) */
  cache?: boolean
}

export interface OwnedOptions {
  /** a serializer other than the store's default */
  serializer?: string
  /** tags a routing connector (multi) matches against its policies; other connectors ignore them */
  tags?: readonly string[]
}

// Hints only when there are any, so connectors see exactly the old calls otherwise.
function hintsOf(options: { tags?: readonly string[] }): PutHints | undefined {
  if (options.tags === undefined) return undefined
  if (!Array.isArray(options.tags) || !options.tags.every((tag) => typeof tag === 'string' && tag !== '')) {
    throw new ConfigError('tags', `must be an array of non-empty strings (got ${JSON.stringify(options.tags)})`)
  }
  return { tags: options.tags }
}

const serializerName: Check<string> = (value, path) => {
  const name = string(value, path)
  if (!getSerializer(name)) throw new ConfigError(path, `must be a registered serializer: ${serializerNames().map((s) => `'${s}'`).join(', ')} (got '${name}')`)
  return name
}
const optionsSchema = object({ cacheSize: optional(nonNegativeInt), serializer: optional(serializerName), register: optional(boolean) })
const DEFAULT_CACHE_SIZE = 16

// The stores of this process by name: a proxy names its store, and resolving it in a worker finds
// (or rebuilds from the config the proxy carries) the store there.
const registry = new Map<string, Store>()

/**
 * A named place for objects: a connector for the bytes, a serializer for the values, and an LRU
 * cache of decoded values. Stores are cheap to rebuild from `toConfig()` in any process.
 */
export class Store {
  readonly name: string
  readonly connector: Connector
  readonly cacheSize: number
  readonly serializerName: string
  private readonly serializer: Serializer
  // Map keeps insertion order: the first entry is the least recently used.
  private readonly cache = new Map<string, unknown>()
  private closed = false

  constructor(name: string, connector: Connector | ConnectorConfig, options: StoreOptions = {}) {
    if (typeof name !== 'string' || name === '') throw new ConfigError('store.name', 'must be a non-empty string')
    const checked = optionsSchema(options, 'store')
    this.name = name
    this.connector = connectorFromConfig(connector, 'store.connector')
    this.cacheSize = checked.cacheSize ?? DEFAULT_CACHE_SIZE
    this.serializerName = checked.serializer ?? 'msgpack'
    this.serializer = getSerializer(this.serializerName)!
    if (checked.register !== false) registerStore(this)
  }

  private serializerFor(name: string | undefined): Serializer {
    if (name === undefined) return this.serializer
    const serializer = getSerializer(name)
    if (!serializer) throw new UsageError(`store '${this.name}': no serializer named '${name}' (registered: ${serializerNames().join(', ')})`)
    return serializer
  }

  private checkOpen(): void {
    if (this.closed) throw new UsageError(`store '${this.name}' is closed`)
  }

  /** Serializes and stores a value; resolves to its key. */
  async put(value: unknown, options: PutOptions = {}): Promise<ObjectKey> {
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'put.lifetime')
    const hints = hintsOf(options)
    const bytes = this.serializerFor(options.serializer).encode(value)
    const key = await (hints ? this.connector.put(bytes, undefined, hints) : this.connector.put(bytes))
    await this.bind(lifetime, [key])
    return key
  }

  /** Stores under a key made earlier (`connector.newKey()`), e.g. for a proxy future. */
  async set(key: ObjectKey, value: unknown, options: PutOptions = {}): Promise<void> {
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'set.lifetime')
    this.cache.delete(key.id)
    const hints = hintsOf(options)
    const bytes = this.serializerFor(options.serializer).encode(value)
    await (hints ? this.connector.put(bytes, key, hints) : this.connector.put(bytes, key))
    await this.bind(lifetime, [key])
  }

  async putBatch(values: readonly unknown[], options: PutOptions = {}): Promise<ObjectKey[]> {
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'putBatch.lifetime')
    const serializer = this.serializerFor(options.serializer)
    const hints = hintsOf(options)
    const encoded = values.map((value) => serializer.encode(value))
    const keys = await (hints ? this.connector.putBatch(encoded, hints) : this.connector.putBatch(encoded))
    await this.bind(lifetime, keys)
    return keys
  }

  // A lease can run out while the bytes are written: the objects it refuses then are evicted
  // again, so nothing outlives a lifetime that ended.
  private async bind(lifetime: Lifetime | undefined, keys: readonly ObjectKey[]): Promise<void> {
    if (!lifetime) return
    try {
      for (const key of keys) lifetime.addKey(key, this)
    } catch (error) {
      await Promise.allSettled(keys.map((key) => this.evict(key)))
      throw error
    }
  }

  /**
   * The value under `key`, from the cache or the connector. A missing key rejects with
   * `ObjectNotFound`. Cached values are shared: treat what `get` returns as read-only.
   */
  async get<T = unknown>(key: ObjectKey, options: GetOptions = {}): Promise<T> {
    this.checkOpen()
    const cache = options.cache !== false
    if (cache && this.cache.has(key.id)) return this.touch(key.id) as T
    const value = this.serializerFor(options.serializer).decode(await this.connector.get(key))
    if (cache) this.remember(key.id, value)
    return value as T
  }

  /**
   * `get`, blocking, for connectors that can answer synchronously (local, file, redis and others
   * through a SyncBridge); others throw a UsageError saying to await instead. Proxies use it to resolve on a plain property access.
   */
  getSync<T = unknown>(key: ObjectKey, options: GetOptions = {}): T {
    this.checkOpen()
    const cache = options.cache !== false
    if (cache && this.cache.has(key.id)) return this.touch(key.id) as T
    if (!this.connector.getSync) {
      throw new UsageError(
        `connector ${this.connector.label} cannot be read synchronously; await resolve(proxy) before using it ` +
          `(task arguments will be resolved for you), or give the connector a blocking read with withSyncGet(connector)`,
      )
    }
    const value = this.serializerFor(options.serializer).decode(this.connector.getSync(key))
    if (cache) this.remember(key.id, value)
    return value as T
  }

  /**
   * Stores the value and gives a lazy proxy of it: only the proxy's small factory (store config,
   * key) needs to travel; the value is fetched where the proxy is first used. `null`, `undefined`
   * and values the serializer refuses are refused here, not when the proxy is resolved.
   */
  async proxy<T>(value: T, options: ProxyOptions = {}): Promise<T> {
    refuseUnproxyable(value)
    const key = await this.put(value, options)
    return proxyOf<T>(this.factory(key, options))
  }

  async proxyBatch<T>(values: readonly T[], options: ProxyOptions = {}): Promise<T[]> {
    values.forEach(refuseUnproxyable)
    const keys = await this.putBatch(values, options)
    return keys.map((key) => proxyOf<T>(this.factory(key, options)))
  }

  /**
   * Stores the value and gives its owned proxy (ownership.ts): the one owner of the object, which
   * evicts it when disposed; `borrow`/`mutBorrow` lend it out, sending it to a task moves it.
   */
  async owned<T>(value: T, options: OwnedOptions = {}): Promise<OwnedProxy<T>> {
    refuseUnproxyable(value)
    const key = await this.put(value, { serializer: options.serializer, tags: options.tags })
    return ownedFromFactory<T>(this.factory(key, { serializer: options.serializer, tags: options.tags }))
  }

  /** A proxy of an object already stored under `key`. */
  proxyFromKey<T>(key: ObjectKey, options: ProxyOptions = {}): T {
    return proxyOf<T>(this.factory(key, options))
  }

  /**
   * A value to be set later, by a producer, under a key made now: its proxies can be handed to a
   * consumer before the producer finishes, and wait for the value when resolved with
   * `resolve`/`extract` (a sync use before the value is set fails with ObjectNotFound as cause).
   */
  future<T>(options: FutureOptions = {}): ProxyFuture<T> {
    this.checkOpen()
    const hints = hintsOf(options)
    return new ProxyFuture<T>(this, hints ? this.connector.newKey(hints) : this.connector.newKey(), options)
  }

  /** @internal the factory of a proxy of `key` */
  factory(key: ObjectKey, options: ProxyOptions & { waitMs?: number }): ProxyFactory {
    const factory: ProxyFactory = { store: this.toConfig(), key, evict: options.evict ?? false }
    if (options.serializer !== undefined) factory.serializer = options.serializer
    if (options.waitMs !== undefined) factory.waitMs = options.waitMs
    if (options.tags !== undefined && options.tags.length > 0) factory.tags = [...options.tags]
    return factory
  }

  async getBatch<T = unknown>(keys: readonly ObjectKey[], options: GetOptions = {}): Promise<T[]> {
    return Promise.all(keys.map((key) => this.get<T>(key, options)))
  }

  async exists(key: ObjectKey): Promise<boolean> {
    this.checkOpen()
    return this.cache.has(key.id) || this.connector.exists(key)
  }

  /** Removes the object from the cache and the connector; a missing key is not an error. */
  async evict(key: ObjectKey): Promise<void> {
    this.checkOpen()
    this.cache.delete(key.id)
    await this.connector.evict(key)
  }

  /** whether `get` would answer from the cache */
  isCached(key: ObjectKey): boolean {
    return this.cache.has(key.id)
  }

  /** Drops the cached value only; the object stays in the connector (workers do this when a task ends). */
  uncache(key: ObjectKey): void {
    this.cache.delete(key.id)
  }

  private touch(id: string): unknown {
    const value = this.cache.get(id)
    this.cache.delete(id)
    this.cache.set(id, value)
    return value
  }

  private remember(id: string, value: unknown): void {
    if (this.cacheSize === 0) return
    this.cache.delete(id)
    this.cache.set(id, value)
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!)
  }

  toConfig(): StoreConfig {
    return { name: this.name, connector: this.connector.toConfig(), cacheSize: this.cacheSize, serializer: this.serializerName }
  }

  /** The registered store of that name, or a new one built (and registered) from the config. */
  static fromConfig(config: StoreConfig): Store {
    const known = registry.get(config.name)
    if (known) return known
    return new Store(config.name, config.connector, { cacheSize: config.cacheSize, serializer: config.serializer })
  }

  /** Leaves the registry and closes the connector. Objects stay where the connector keeps them. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.cache.clear()
    if (registry.get(this.name) === this) registry.delete(this.name)
    await this.connector.close()
  }
}

export interface FutureOptions extends ProxyOptions {
  /** how long `result()` and a proxy's async resolve wait for the value (default 60 000 ms) */
  timeoutMs?: number
}

/** store.future(): a key now, its value later (ProxyStore's `Store.future`). */
export class ProxyFuture<T> {
  readonly timeoutMs: number
  // A future decoded in a task holds its store's config until first used: the connector types a
  // task's modules register may not be loaded yet when its arguments are decoded.
  private storeOrConfig: Store | StoreConfig
  constructor(
    store: Store | StoreConfig,
    readonly key: ObjectKey,
    private readonly options: FutureOptions,
  ) {
    this.storeOrConfig = store
    this.timeoutMs = options.timeoutMs ?? 60_000
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs < 0) throw new ConfigError('future.timeoutMs', `must be a non-negative integer (got ${options.timeoutMs})`)
  }

  get store(): Store {
    if (!(this.storeOrConfig instanceof Store)) this.storeOrConfig = Store.fromConfig(this.storeOrConfig)
    return this.storeOrConfig
  }

  /** A proxy of the value to come; it can travel before the value is set. */
  proxy(): T {
    return proxyOf<T>(this.store.factory(this.key, { ...this.options, waitMs: this.timeoutMs }))
  }

  /** Sets the value (once is the rule; a second set replaces it for readers that have not resolved). */
  async setResult(value: T): Promise<void> {
    refuseUnproxyable(value)
    await this.store.set(this.key, value, { serializer: this.options.serializer, tags: this.options.tags })
  }

  async done(): Promise<boolean> {
    return this.store.exists(this.key)
  }

  /** The value, waiting up to `timeoutMs` (default the future's) for it; then ProxyFutureTimeout. */
  async result(timeoutMs = this.timeoutMs): Promise<T> {
    return getWaiting<T>(this.store, this.key, timeoutMs, this.options.serializer)
  }

  // Passed to a task (the producer), a future travels as its store config, key and options and is
  // rebuilt there, so the task can setResult(). 0x2f: the last of tsflow's codec range (0x20..0x2f).
  static {
    addExtension({
      Class: ProxyFuture,
      type: 0x2f,
      write: (future: ProxyFuture<unknown>) => ({
        store: future.storeOrConfig instanceof Store ? future.storeOrConfig.toConfig() : future.storeOrConfig,
        key: future.key,
        options: { ...future.options, timeoutMs: future.timeoutMs },
      }),
      read: (wire: { store: StoreConfig; key: ObjectKey; options: FutureOptions }) => new ProxyFuture(wire.store, wire.key, wire.options),
    })
  }
}

/** Adds a store to this process's registry; another open store under the same name is refused. */
export function registerStore(store: Store, options: { replace?: boolean } = {}): void {
  const known = registry.get(store.name)
  if (known && known !== store && !options.replace) {
    throw new UsageError(`a store named '${store.name}' is already registered in this process; close it first, or use another name`)
  }
  registry.set(store.name, store)
}

export function getStore(name: string): Store | undefined {
  return registry.get(name)
}

export function unregisterStore(name: string): void {
  registry.delete(name)
}
