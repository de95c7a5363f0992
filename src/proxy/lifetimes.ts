import { randomUUID } from 'node:crypto'
import { ConfigError, LifetimeEnded, UsageError } from '../errors.js'
import { object, optional, positiveInt, string } from '../util/schema.js'
import type { ObjectKey } from './connector.js'
import { factoryOf, isProxy } from './proxy.js'
import { Store } from './store.js'

/**
 * Something that decides when a group of stored objects goes away (docs/proxy.md, "Lifetimes").
 * Objects join it with `store.proxy(value, { lifetime })` / `store.put(value, { lifetime })`, or
 * `addKey` / `addProxy`; when it ends, every object it holds is evicted. An ended lifetime refuses
 * new objects with LifetimeEnded (E_LIFETIME_ENDED). Lifetimes live in the process that made them:
 * they do not travel with a proxy.
 */
export interface Lifetime {
  /** how errors name it, e.g. `lease 'stage-2'` */
  readonly label: string
  /** true once it ended (closed, or its lease ran out) */
  done(): boolean
  /** binds the object under `key` of `store` (default: the lifetime's store) */
  addKey(key: ObjectKey, store?: Store): void
  /** binds the objects of these proxies (each in the store it names) */
  addProxy(...proxies: unknown[]): void
  /** ends it and evicts its objects; a second call waits for the first */
  close(): Promise<void>
}

export function isLifetime(value: unknown): value is Lifetime {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Record<string, unknown>
  return typeof v.done === 'function' && typeof v.addKey === 'function' && typeof v.close === 'function'
}

/** @internal the store's check before it stores an object for a lifetime */
export function checkLifetime(lifetime: unknown, path: string): Lifetime | undefined {
  if (lifetime === undefined) return undefined
  if (!isLifetime(lifetime)) throw new ConfigError(path, 'must be a lifetime (new ContextLifetime(store), new LeaseLifetime(store, { expiryMs }), new StaticLifetime())')
  if (lifetime.done()) throw new LifetimeEnded(lifetime.label)
  return lifetime
}

const nameOptions = object({ name: optional(string) })

/**
 * The objects of a lifetime, per store, and the eviction of all of them. Keys are held by id, so
 * binding one object twice is harmless.
 */
abstract class BoundObjects implements Lifetime {
  readonly name: string
  private readonly objects = new Map<Store, Map<string, ObjectKey>>()
  private ending: Promise<void> | undefined

  constructor(
    private readonly kind: string,
    name: string | undefined,
    protected readonly defaultStore: Store | undefined,
  ) {
    this.name = name ?? randomUUID().slice(0, 8)
  }

  get label(): string {
    return `${this.kind} '${this.name}'`
  }

  done(): boolean {
    return this.ending !== undefined
  }

  /** how many objects it holds now */
  get size(): number {
    let n = 0
    for (const keys of this.objects.values()) n += keys.size
    return n
  }

  /**
   * Binds the objects under these keys: `addKey(key)`, `addKey(key, store)`, or several keys as
   * ProxyStore's `add_key(*keys)` takes them (`addKey(k1, k2, store?)`); a store given last is
   * theirs, else the lifetime's store.
   */
  addKey(...keysAndStore: Array<ObjectKey | Store | undefined>): void {
    if (this.done()) throw new LifetimeEnded(this.label)
    const last = keysAndStore.at(-1)
    const given = last instanceof Store || (last === undefined && keysAndStore.length > 1)
    const store = (given ? (keysAndStore.pop() as Store | undefined) : undefined) ?? this.defaultStore
    if (!store) throw new UsageError(`${this.label}: addKey() needs the store the key belongs to`)
    const keys = keysAndStore as ObjectKey[]
    if (!keys.every((key) => typeof key?.id === 'string')) throw new UsageError(`${this.label}: addKey() takes object keys (and the store they belong to, last)`)
    let bound = this.objects.get(store)
    if (!bound) this.objects.set(store, (bound = new Map()))
    for (const key of keys) bound.set(key.id, key)
  }

  addProxy(...proxies: unknown[]): void {
    if (this.done()) throw new LifetimeEnded(this.label)
    for (const proxy of proxies) {
      if (!isProxy(proxy)) throw new UsageError(`${this.label}: addProxy() takes proxies (made by store.proxy())`)
      const factory = factoryOf(proxy)
      this.addKey(factory.key, Store.fromConfig(factory.store))
    }
  }

  /**
   * Ends the lifetime and evicts its objects (all are tried; the first failure is thrown after).
   * Idempotent: later calls return the first call's promise.
   */
  close(): Promise<void> {
    this.ending ??= this.evictAll()
    return this.ending
  }

  /** Evicts what it holds now without ending it (the static lifetime at exit). */
  protected async evictAll(): Promise<void> {
    const held = [...this.objects].flatMap(([store, keys]) => [...keys.values()].map((key) => ({ store, key })))
    this.objects.clear()
    const outcomes = await Promise.allSettled(held.map(({ store, key }) => store.evict(key)))
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
    if (failed) throw failed.reason
  }

  /**
   * Evicts, blocking, what it holds in stores whose connector has `evictSync` (failures are
   * skipped); objects of other connectors stay held. For `exit` handlers, where no async work runs.
   */
  protected evictAllSync(): void {
    for (const [store, keys] of this.objects) {
      const connector = store.connector
      if (!connector.evictSync) continue
      for (const [id, key] of keys) {
        try {
          connector.evictSync(key)
        } catch {
          // Best effort: the process is ending and nobody can be told.
        }
        keys.delete(id)
      }
    }
  }

  /** `using lifetime = ...`: ends it when the scope ends; the eviction runs on (use `await using` to wait). */
  [Symbol.dispose](): void {
    void this.close().catch(() => {})
  }

  /** `await using lifetime = ...`: ends it and waits for the evictions. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Objects bound to it live until it is closed: `close()`, or the end of a `using` /
 * `await using` scope (ProxyStore's ContextLifetime).
 */
export class ContextLifetime extends BoundObjects {
  constructor(
    readonly store: Store,
    options: { name?: string } = {},
  ) {
    if (!(store instanceof Store)) throw new ConfigError('lifetime.store', 'must be a Store')
    super('context', nameOptions(options, 'lifetime').name, store)
  }
}

export interface LeaseLifetimeOptions {
  /** how long from now the lease runs (ms) */
  expiryMs: number
  name?: string
}
const leaseOptions = object({ expiryMs: positiveInt, name: optional(string) })

// setTimeout's longest delay; a longer lease re-arms its timer when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * A context lifetime that also ends by itself when its lease runs out: `extend(ms)` pushes the
 * end later, `renew(ms?)` sets it to `ms` from now. Its timer is unref'd, so a pending lease never
 * keeps the process alive (the objects then stay, unless the store's owner evicts them).
 */
export class LeaseLifetime extends BoundObjects {
  readonly expiryMs: number
  private expiry: number
  private timer: NodeJS.Timeout | undefined

  constructor(
    readonly store: Store,
    options: LeaseLifetimeOptions,
  ) {
    if (!(store instanceof Store)) throw new ConfigError('lifetime.store', 'must be a Store')
    if (options === undefined || options.expiryMs === undefined) throw new ConfigError('lifetime.expiryMs', 'is required (how long the lease runs, ms)')
    const checked = leaseOptions(options, 'lifetime')
    super('lease', checked.name, store)
    this.expiryMs = checked.expiryMs!
    this.expiry = Date.now() + this.expiryMs
    this.arm()
  }

  /** when the lease runs out (ms since the epoch) */
  get expiresAt(): number {
    return this.expiry
  }

  /** Pushes the end of the lease `ms` later. */
  extend(ms: number): void {
    if (this.done()) throw new LifetimeEnded(this.label, 'extend() came too late')
    this.expiry += positiveInt(ms, 'extend(ms)')
    this.arm()
  }

  /** Sets the end of the lease to `ms` from now (default: the lease's `expiryMs`). */
  renew(ms: number = this.expiryMs): void {
    if (this.done()) throw new LifetimeEnded(this.label, 'renew() came too late')
    this.expiry = Date.now() + positiveInt(ms, 'renew(ms)')
    this.arm()
  }

  override close(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    return super.close()
  }

  private arm(): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.expire(), Math.min(MAX_TIMER_MS, Math.max(0, this.expiry - Date.now())))
    this.timer.unref()
  }

  private expire(): void {
    if (Date.now() < this.expiry) return this.arm()
    // Nobody awaits an expiry: a failed evict leaves the object behind, as evict-on-resolve does.
    void this.close().catch(() => {})
  }
}

let staticInstance: StaticLifetime | undefined

/**
 * Objects that live as long as the process: one instance per thread's module instance, i.e. per
 * process for the main thread (`new StaticLifetime()` always returns it). Its objects are evicted
 * when the event loop runs dry (`beforeExit`, any connector; the stores must still be open), and
 * on `process.exit()` in an `exit` handler, where only connectors with `evictSync` (local, file,
 * shm, multi over those) can still evict. A signal the process does not handle or a crash skips
 * both (no handler runs). `close()` evicts them earlier and ends it.
 */
export class StaticLifetime extends BoundObjects {
  constructor() {
    super('static', 'process', undefined)
    if (staticInstance) return staticInstance
    staticInstance = this
    // Not `once`: more work can follow a beforeExit, and the event fires again when it is done.
    process.on('beforeExit', () => {
      if (this.size > 0) void this.evictAll().catch(() => {})
    })
    // process.exit() skips beforeExit; what can be evicted synchronously goes here.
    process.on('exit', () => this.evictAllSync())
  }
}
