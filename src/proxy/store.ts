import { addExtension } from 'msgpackr'
import { ConfigError, ObjectNotFound, UsageError } from '../errors.js'
import { boolean, nonNegativeInt, object, optional, string, type Check } from '../util/schema.js'
import { connectorFromConfig, type Connector, type ConnectorConfig, type ObjectKey, type PutHints } from './connector.js'
import { checkLifetime, type Lifetime } from './lifetimes.js'
import { ownedFromFactory, type OwnedProxy } from './ownership.js'
import { DEFAULT_POLL, factoryOf, getWaiting, isProxiable, isProxy, proxyOf, refuseUnproxyable, type Poll, type ProxyFactory } from './proxy.js'
import { getSerializer, serializerNames, type Serializer } from './serializer.js'
import { lockedProxy, type ProxyLocker } from './utils.js'
import { StoreMetrics } from './metrics.js'

export interface StoreOptions {
  /** how many decoded objects `get` keeps, least recently used dropped first (default 16; 0: none) */
  cacheSize?: number
  /** the registered serializer's name (default 'msgpack', tsflow's codec) */
  serializer?: string
  /** put the store in this process's registry, so `getStore(name)` finds it (default true) */
  register?: boolean
  /**
   * the default of `proxy()`'s `populateTarget`: a new proxy starts resolved with the value it was
   * made from, here (default false; travels in the config)
   */
  populateTarget?: boolean
  /** record per-key timings, cache hits and sizes in `store.metrics` (metrics.ts; default false; travels in the config) */
  metrics?: boolean
}

/** Everything needed to rebuild a store in another process: plain JSON. */
export interface StoreConfig {
  name: string
  connector: ConnectorConfig
  cacheSize: number
  serializer: string
  /** present only when true */
  populateTarget?: boolean
  /** present only when true */
  metrics?: boolean
}

export interface ProxyOptions {
  /** evict the object once a proxy resolved it: for a value read exactly once (default false) */
  evict?: boolean
  /** a serializer other than the store's default */
  serializer?: string
  /** evict the object when this lifetime ends (lifetimes.ts); an ended one refuses it */
  lifetime?: Lifetime
  /**
   * the proxy starts resolved, its target the value given (no fetch where it was made; a copy
   * that travels still fetches). Default: the store's `populateTarget`
   */
  populateTarget?: boolean
  /** give back values a proxy cannot stand for (null, undefined, booleans, proxies) unchanged instead of throwing NotProxiable */
  skipNonProxiable?: boolean
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
  /** `get` answers this instead of rejecting with ObjectNotFound when the key is missing (given, even as undefined) */
  default?: unknown
}

export interface OwnedOptions {
  /** a serializer other than the store's default */
  serializer?: string
  /** tags a routing connector (multi) matches against its policies; other connectors ignore them */
  tags?: readonly string[]
  /** give back values a proxy cannot stand for unchanged instead of throwing NotProxiable */
  skipNonProxiable?: boolean
  /** the owned proxy starts resolved with the value given (default: the store's `populateTarget`) */
  populateTarget?: boolean
}

export interface CloseOptions {
  /** evict first every object this store instance put (or made a future for) that is still there (default false) */
  clear?: boolean
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
// Call options (proxy, put, owned, future, ...) are checked for unknown keys only: a misspelt
// `{ evicted: true }` from JavaScript would otherwise leave the object in the store, silently.
const anyValue: Check<unknown> = (value) => value
const callOptionsSchema = object({
  evict: optional(boolean),
  ...Object.fromEntries(
    ['serializer', 'lifetime', 'tags', 'populateTarget', 'skipNonProxiable', 'timeoutMs', 'pollMs', 'pollBackoff', 'pollMaxMs'].map((key) => [key, anyValue]),
  ),
})
function checkCallOptions(options: object, method: string): void {
  callOptionsSchema(options, `store.${method}() options`)
}

const optionsSchema = object({
  cacheSize: optional(nonNegativeInt),
  serializer: optional(serializerName),
  register: optional(boolean),
  populateTarget: optional(boolean),
  metrics: optional(boolean),
})
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
  readonly populateTarget: boolean
  /** per-key operation metrics, when made with `metrics: true` */
  readonly metrics: StoreMetrics | undefined
  private readonly serializer: Serializer
  // What this instance put and has not evicted, by id: what close({ clear: true }) evicts. A key
  // evicted by another process stays listed until then, so a store rebuilt from its config (a
  // worker's, which may put many results that the caller evicts) keeps no list.
  private written: Map<string, ObjectKey> | undefined = new Map()
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
    this.populateTarget = checked.populateTarget ?? false
    this.metrics = checked.metrics ? new StoreMetrics() : undefined
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
    checkCallOptions(options, 'put')
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'put.lifetime')
    const hints = hintsOf(options)
    const started = performance.now()
    const bytes = this.serializerFor(options.serializer).encode(value)
    const encoded = performance.now()
    const key = await (hints ? this.connector.put(bytes, undefined, hints) : this.connector.put(bytes))
    this.written?.set(key.id, key)
    if (this.metrics) this.recordPut('store.put', key, bytes.byteLength, started, encoded)
    await this.bind(lifetime, [key])
    return key
  }

  /** Stores under a key made earlier (`connector.newKey()`), e.g. for a proxy future. */
  async set(key: ObjectKey, value: unknown, options: PutOptions = {}): Promise<void> {
    checkCallOptions(options, 'set')
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'set.lifetime')
    const started = performance.now()
    this.cache.delete(key.id)
    const hints = hintsOf(options)
    const bytes = this.serializerFor(options.serializer).encode(value)
    const encoded = performance.now()
    await (hints ? this.connector.put(bytes, key, hints) : this.connector.put(bytes, key))
    this.written?.set(key.id, key)
    if (this.metrics) this.recordPut('store.set', key, bytes.byteLength, started, encoded)
    await this.bind(lifetime, [key])
  }

  async putBatch(values: readonly unknown[], options: PutOptions = {}): Promise<ObjectKey[]> {
    checkCallOptions(options, 'putBatch')
    this.checkOpen()
    const lifetime = checkLifetime(options.lifetime, 'putBatch.lifetime')
    const serializer = this.serializerFor(options.serializer)
    const hints = hintsOf(options)
    const started = performance.now()
    const encoded = values.map((value) => serializer.encode(value))
    const encodedAt = performance.now()
    const keys = await (hints ? this.connector.putBatch(encoded, hints) : this.connector.putBatch(encoded))
    for (const key of keys) this.written?.set(key.id, key)
    if (this.metrics) this.recordPut('store.putBatch', keys, encoded.reduce((sum, bytes) => sum + bytes.byteLength, 0), started, encodedAt)
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
    if (cache && this.cache.has(key.id)) return this.cacheHit<T>(key)
    const started = performance.now()
    let bytes: Uint8Array
    try {
      bytes = await this.connector.get(key)
    } catch (error) {
      if (error instanceof ObjectNotFound && 'default' in options) return options.default as T
      throw error
    }
    return this.decoded<T>(key, bytes, options, cache, started)
  }

  /**
   * `get`, blocking, for connectors that can answer synchronously (local, file, redis and others
   * through a SyncBridge); others throw a UsageError saying to await instead. Proxies use it to resolve on a plain property access.
   */
  getSync<T = unknown>(key: ObjectKey, options: GetOptions = {}): T {
    this.checkOpen()
    const cache = options.cache !== false
    if (cache && this.cache.has(key.id)) return this.cacheHit<T>(key)
    if (!this.connector.getSync) {
      throw new UsageError(
        `connector ${this.connector.label} cannot be read synchronously; await resolve(proxy) before using it ` +
          `(task arguments will be resolved for you), or give the connector a blocking read with withSyncGet(connector)`,
      )
    }
    const started = performance.now()
    return this.decoded<T>(key, this.connector.getSync(key), options, cache, started)
  }

  // `name` took `started`..now, of which the serializer `started`..`encoded`, the connector the rest.
  private recordPut(name: string, keys: ObjectKey | ObjectKey[], bytes: number, started: number, encoded: number): void {
    const metrics = this.metrics!
    const end = performance.now()
    metrics.addTime(name, keys, end - started)
    metrics.addTime(`${name}.serialize`, keys, encoded - started)
    metrics.addTime(`${name}.connector`, keys, end - encoded)
    metrics.addAttribute(`${name}.objectSize`, keys, bytes)
  }

  private cacheHit<T>(key: ObjectKey): T {
    this.metrics?.addCounter('store.get.cacheHits', key)
    this.metrics?.addTime('store.get', key, 0)
    return this.touch(key.id) as T
  }

  // The second half of get/getSync, once the connector answered `started` ms ago.
  private decoded<T>(key: ObjectKey, bytes: Uint8Array, options: GetOptions, cache: boolean, started: number): T {
    const read = performance.now()
    const value = this.serializerFor(options.serializer).decode(bytes)
    if (cache) this.remember(key.id, value)
    const metrics = this.metrics
    if (metrics) {
      const end = performance.now()
      metrics.addCounter('store.get.cacheMisses', key)
      metrics.addAttribute('store.get.objectSize', key, bytes.byteLength)
      metrics.addTime('store.get.connector', key, read - started)
      metrics.addTime('store.get.deserialize', key, end - read)
      metrics.addTime('store.get', key, end - started)
    }
    return value as T
  }

  /**
   * Stores the value and gives a lazy proxy of it: only the proxy's small factory (store config,
   * key) needs to travel; the value is fetched where the proxy is first used. `null`, `undefined`
   * and values the serializer refuses are refused here, not when the proxy is resolved.
   */
  async proxy<T>(value: T, options: ProxyOptions = {}): Promise<T> {
    checkCallOptions(options, 'proxy')
    if (options.skipNonProxiable && !isProxiable(value)) return value
    refuseUnproxyable(value)
    const started = performance.now()
    const key = await this.put(value, options)
    const proxy = proxyOf<T>(this.factory(key, options, value), this.populated(value, options))
    this.metrics?.addTime('store.proxy', key, performance.now() - started)
    return proxy
  }

  /** `proxy` for many values in one connector call; with `skipNonProxiable`, those stay as they are in place. */
  async proxyBatch<T>(values: readonly T[], options: ProxyOptions = {}): Promise<T[]> {
    checkCallOptions(options, 'proxyBatch')
    const chosen = options.skipNonProxiable ? values.filter(isProxiable) : values
    chosen.forEach(refuseUnproxyable)
    const started = performance.now()
    const keys = await this.putBatch(chosen, options)
    const proxies = chosen.map((value, i) => proxyOf<T>(this.factory(keys[i]!, options, value), this.populated(value, options)))
    this.metrics?.addTime('store.proxyBatch', keys, performance.now() - started)
    return options.skipNonProxiable ? values.map((value) => (isProxiable(value) ? proxies.shift()! : value)) : proxies
  }

  /** `proxy`, wrapped in a ProxyLocker (utils.ts) so nothing resolves it until `unlock()` */
  async lockedProxy<T>(value: T, options: ProxyOptions = {}): Promise<ProxyLocker<T> | T> {
    return lockedProxy(this, value, options)
  }

  private populated(value: unknown, options: { populateTarget?: boolean }): { value: unknown } | undefined {
    return (options.populateTarget ?? this.populateTarget) ? { value } : undefined
  }

  /**
   * Stores the value and gives its owned proxy (ownership.ts): the one owner of the object, which
   * evicts it when disposed; `borrow`/`mutBorrow` lend it out, sending it to a task moves it.
   */
  async owned<T>(value: T, options: OwnedOptions = {}): Promise<OwnedProxy<T>> {
    checkCallOptions(options, 'owned')
    if (options.skipNonProxiable && !isProxiable(value)) return value as OwnedProxy<T>
    refuseUnproxyable(value)
    const key = await this.put(value, { serializer: options.serializer, tags: options.tags })
    return ownedFromFactory<T>(this.factory(key, { serializer: options.serializer, tags: options.tags }, value), this.populated(value, options))
  }

  /** A proxy of an object already stored under `key`. */
  proxyFromKey<T>(key: ObjectKey, options: ProxyOptions = {}): T {
    // The object exists already: a lifetime given here takes it on, as `proxy` would.
    checkLifetime(options.lifetime, 'proxyFromKey.lifetime')?.addKey(key, this)
    return proxyOf<T>(this.factory(key, options))
  }

  /**
   * A value to be set later, by a producer, under a key made now: its proxies can be handed to a
   * consumer before the producer finishes, and wait for the value when resolved with
   * `resolve`/`extract` (a sync use before the value is set fails with ObjectNotFound as cause).
   */
  future<T>(options: FutureOptions = {}): ProxyFuture<T> {
    checkCallOptions(options, 'future')
    this.checkOpen()
    const hints = hintsOf(options)
    const key = hints ? this.connector.newKey(hints) : this.connector.newKey()
    this.written?.set(key.id, key)
    return new ProxyFuture<T>(this, key, options)
  }

  /** @internal the factory of a proxy of `key` */
  factory(key: ObjectKey, options: ProxyOptions & { waitMs?: number; poll?: Poll }, value?: unknown): ProxyFactory {
    const factory: ProxyFactory = { store: this.toConfig(), key, evict: options.evict ?? false }
    if (Array.isArray(value)) factory.array = true
    if (options.serializer !== undefined) factory.serializer = options.serializer
    if (options.waitMs !== undefined) factory.waitMs = options.waitMs
    if (options.poll !== undefined) factory.poll = options.poll
    if (options.tags !== undefined && options.tags.length > 0) factory.tags = [...options.tags]
    return factory
  }

  async getBatch<T = unknown>(keys: readonly ObjectKey[], options: GetOptions = {}): Promise<T[]> {
    return Promise.all(keys.map((key) => this.get<T>(key, options)))
  }

  async exists(key: ObjectKey): Promise<boolean> {
    this.checkOpen()
    const started = performance.now()
    const found = this.cache.has(key.id) || (await this.connector.exists(key))
    this.metrics?.addTime('store.exists', key, performance.now() - started)
    return found
  }

  /** Removes the object from the cache and the connector; a missing key is not an error. */
  async evict(key: ObjectKey): Promise<void> {
    this.checkOpen()
    const started = performance.now()
    this.cache.delete(key.id)
    await this.connector.evict(key)
    this.written?.delete(key.id)
    this.metrics?.addTime('store.evict', key, performance.now() - started)
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

  /** `await using store = new Store(...)` closes it at the end of the scope (objects stay). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  toConfig(): StoreConfig {
    const config: StoreConfig = { name: this.name, connector: this.connector.toConfig(), cacheSize: this.cacheSize, serializer: this.serializerName }
    if (this.populateTarget) config.populateTarget = true
    if (this.metrics) config.metrics = true
    return config
  }

  /** The registered store of that name, or a new one built (and registered) from the config. */
  static fromConfig(config: StoreConfig): Store {
    const known = registry.get(config.name)
    if (known) return known
    const store = new Store(config.name, config.connector, { cacheSize: config.cacheSize, serializer: config.serializer, populateTarget: config.populateTarget, metrics: config.metrics })
    store.written = undefined
    return store
  }

  /**
   * Leaves the registry and closes the connector. Objects stay where the connector keeps them,
   * unless `clear`: then what this instance put first goes (a missing one is not an error).
   */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.closed) return
    let failed: PromiseRejectedResult | undefined
    if (options.clear) {
      if (!this.written) throw new UsageError(`store '${this.name}' was rebuilt from its config, so it does not know what it put; close({ clear: true }) the store that made the objects`)
      const keys = [...this.written.values()]
      this.written.clear()
      const evictions = await Promise.allSettled(keys.map((key) => this.connector.evict(key)))
      failed = evictions.find((result) => result.status === 'rejected')
    }
    this.closed = true
    this.cache.clear()
    if (registry.get(this.name) === this) registry.delete(this.name)
    await this.connector.close()
    // The store is closed either way; an eviction that failed is reported after.
    if (failed) throw failed.reason
  }
}

export interface FutureOptions extends ProxyOptions {
  /** how long `result()` and a proxy's async resolve wait for the value (default 60 000 ms) */
  timeoutMs?: number
  /** the first wait between polls for the value (default 5 ms) */
  pollMs?: number
  /** each wait is the last one times this (default 2; 1: a fixed interval) */
  pollBackoff?: number
  /** the longest wait between polls (default 200 ms) */
  pollMaxMs?: number
}

// Checked once, when the future is made; present on the proxies' factories only when not the default.
function pollOf(options: FutureOptions): Poll | undefined {
  if (options.pollMs === undefined && options.pollBackoff === undefined && options.pollMaxMs === undefined) return undefined
  const poll: Poll = { ms: options.pollMs ?? DEFAULT_POLL.ms, backoff: options.pollBackoff ?? DEFAULT_POLL.backoff, maxMs: options.pollMaxMs ?? Math.max(DEFAULT_POLL.maxMs, options.pollMs ?? 0) }
  if (!(poll.ms > 0 && Number.isFinite(poll.ms))) throw new ConfigError('future.pollMs', `must be a positive number of ms (got ${options.pollMs})`)
  if (!(poll.backoff >= 1 && Number.isFinite(poll.backoff))) throw new ConfigError('future.pollBackoff', `must be a number >= 1 (got ${options.pollBackoff})`)
  if (!(poll.maxMs >= poll.ms && Number.isFinite(poll.maxMs))) throw new ConfigError('future.pollMaxMs', `must be a number of ms >= pollMs (got ${options.pollMaxMs})`)
  return poll
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
    this.poll = pollOf(options)
  }

  /** the polling options given, checked (undefined: the default) */
  readonly poll: Poll | undefined

  get store(): Store {
    if (!(this.storeOrConfig instanceof Store)) this.storeOrConfig = Store.fromConfig(this.storeOrConfig)
    return this.storeOrConfig
  }

  /** A proxy of the value to come; it can travel before the value is set. */
  proxy(): T {
    return proxyOf<T>(this.store.factory(this.key, { ...this.options, waitMs: this.timeoutMs, poll: this.poll }))
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
    return getWaiting<T>(this.store, this.key, timeoutMs, this.options.serializer, true, this.poll)
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

/** The stores registered (and so not closed) in this process. */
export function openStores(): Store[] {
  return [...registry.values()]
}

/**
 * The registered store of that name, or undefined. Given a proxy: the store it resolves from
 * (the registered one, or one rebuilt, and registered, from the config the proxy carries).
 */
export function getStore(nameOrProxy: string | object): Store | undefined {
  if (typeof nameOrProxy !== 'string') {
    if (!isProxy(nameOrProxy)) throw new UsageError(`getStore() takes a store name or a proxy, not ${nameOrProxy === null ? 'null' : typeof nameOrProxy}`)
    return Store.fromConfig(factoryOf(nameOrProxy).store)
  }
  return registry.get(nameOrProxy)
}

/** Removes a store (by name, or the store itself) from the registry; an unknown one is not an error. */
export function unregisterStore(nameOrStore: string | Store): void {
  if (typeof nameOrStore === 'string') registry.delete(nameOrStore)
  else if (registry.get(nameOrStore.name) === nameOrStore) registry.delete(nameOrStore.name)
}
