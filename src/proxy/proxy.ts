import { NotProxiable, ObjectNotFound, ProxyFutureTimeout, ProxyResolveError, UsageError } from '../errors.js'
import { addExtension } from 'msgpackr'
import { isEncoding } from '../serialize/codec.js'
import { keyText, type ObjectKey } from './connector.js'
import { reviveGuarded } from './ownership.js'
import { Store, type StoreConfig } from './store.js'

/**
 * What a proxy needs to find its target in any process: plain data (this, not the target, is what
 * will travel with a task). The store is rebuilt from its config where no store of that name is
 * registered yet.
 */
export interface ProxyFactory {
  store: StoreConfig
  key: ObjectKey
  /** evict the object from the store once this proxy resolved it (the one reader owns it) */
  evict: boolean
  /** the serializer it was stored with, when not the store's default */
  serializer?: string
  /** a proxy future's: an async resolve waits up to this long for the value to be set */
  waitMs?: number
  /** a proxy future's polling, when not the default (`FutureOptions`) */
  poll?: Poll
  /** the tags it was stored with, when any: `clone` puts the copy with them (multi routes it the same way) */
  tags?: readonly string[]
  /**
   * made by an executor's `proxy` option, not by the user: the worker hands the task the target
   * itself, and the caller's future gets the value (docs/proxy.md "Executor option")
   */
  auto?: true
  /**
   * Only on the wire: the ownership kind of an owned proxy or borrow (ownership.ts), so the
   * receiver rebuilds the same kind. Absent for plain proxies.
   */
  kind?: ProxyKind
  /** the target is an array: the proxy's stand-in is one too, so `Array.isArray` is true unresolved */
  array?: boolean
}

/** The ownership kinds (docs/proxy.md, "Ownership"): an owned proxy, a shared borrow, a mutable borrow. */
export type ProxyKind = 'owned' | 'ref' | 'mut'

/**
 * What an owned proxy or a borrow adds to a plain proxy (implemented in ownership.ts): a check
 * before every use, what the codec sends, and what `Symbol.dispose` does.
 */
export interface ProxyGuard {
  /** throws a BorrowError when the proxy may no longer be used; `action` names what was tried */
  check(action: string): void
  /** the factory the codec sends (an owned proxy moves to the receiver here) */
  wire(): ProxyFactory
  /** `Symbol.dispose`: throws at once when a rule forbids it; the eviction, if any, is returned */
  drop(): Promise<void> | undefined
}

/** How a proxy future polls: the first interval, its growth factor, and its cap, in ms. */
export interface Poll {
  ms: number
  backoff: number
  maxMs: number
}
export const DEFAULT_POLL: Poll = { ms: 5, backoff: 2, maxMs: 200 }

/**
 * Reads the value, waiting for it when `waitMs` is set (a proxy future whose producer may not
 * have set it yet): the connector is polled with a growing interval, and a value still missing at
 * the deadline is a ProxyFutureTimeout naming the store and key.
 */
export async function getWaiting<T>(store: Store, key: ObjectKey, waitMs: number | undefined, serializer?: string, cache = true, poll = DEFAULT_POLL): Promise<T> {
  if (waitMs === undefined) return store.get<T>(key, { serializer, cache })
  const deadline = Date.now() + waitMs
  for (let interval = poll.ms; ; interval = Math.min(interval * poll.backoff, poll.maxMs)) {
    try {
      return await store.get<T>(key, { serializer, cache })
    } catch (error) {
      if (!(error instanceof ObjectNotFound)) throw error
      const left = deadline - Date.now()
      if (left <= 0) throw new ProxyFutureTimeout(store.name, keyText(key), waitMs)
      await new Promise((done) => setTimeout(done, Math.min(interval, left)))
    }
  }
}

/** @internal a proxy's own state; ownership.ts reads and resets it */
export interface ProxyState {
  readonly factory: ProxyFactory
  resolved: boolean
  target: unknown
  pending?: Promise<unknown>
  /** set for owned proxies and borrows (and for a plain proxy taken by intoOwned) */
  guard?: ProxyGuard
}

const STATE = Symbol.for('tsflow.proxy.state')

/** @internal */
export function stateOf(value: unknown): ProxyState | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined
  return (value as { [STATE]?: ProxyState })[STATE]
}

function stateOrThrow(value: unknown, what: string): ProxyState {
  const state = stateOf(value)
  if (!state) throw new UsageError(`${what}() takes a proxy (made by store.proxy()), not ${value === null ? 'null' : typeof value}`)
  return state
}

function storeOf(factory: ProxyFactory): Store {
  return Store.fromConfig(factory.store)
}

function failure(factory: ProxyFactory, error: unknown): ProxyResolveError {
  return new ProxyResolveError(factory.store.name, keyText(factory.key), { cause: error })
}

/** @internal also used by ownership.ts (a borrow shares its owner's target; update sets it) */
export function settle(state: ProxyState, target: unknown): unknown {
  state.target = target
  state.resolved = true
  state.pending = undefined
  return target
}

/** @internal drops the target held (moved, disposed, or changed in the store by a mutable borrow) */
export function forget(state: ProxyState): void {
  state.target = undefined
  state.resolved = false
  state.pending = undefined
}

function evictAfterResolve(factory: ProxyFactory): Promise<void> {
  // The value is already in hand: a failed evict must not fail the reader. It leaves the object
  // behind, which the store's owner sees when it checks the connector is empty.
  return storeOf(factory)
    .evict(factory.key)
    .catch(() => {})
}

async function resolveAsync(state: ProxyState): Promise<unknown> {
  state.guard?.check('resolve')
  if (state.resolved) return state.target
  state.pending ??= (async () => {
    const { factory } = state
    let target: unknown
    try {
      const store = storeOf(factory)
      const started = performance.now()
      // Owned data can change under its key (update, a mutable borrow in another process), so
      // guarded proxies read the connector, never the store's cache.
      target = await getWaiting(store, factory.key, factory.waitMs, factory.serializer, state.guard === undefined, factory.poll)
      store.metrics?.addTime('proxy.resolve', factory.key, performance.now() - started)
    } catch (error) {
      state.pending = undefined
      throw failure(factory, error)
    }
    if (factory.evict) await evictAfterResolve(factory)
    // A sync use (or update) may have resolved it meanwhile, and may have written to that target
    // already: it stays the target.
    if (state.resolved) {
      state.pending = undefined
      return state.target
    }
    return settle(state, target)
  })()
  return state.pending
}

function resolveSync(state: ProxyState): unknown {
  state.guard?.check('use')
  if (state.resolved) return state.target
  const { factory } = state
  let target: unknown
  try {
    const store = storeOf(factory)
    const started = performance.now()
    target = store.getSync(factory.key, { serializer: factory.serializer, cache: state.guard === undefined })
    store.metrics?.addTime('proxy.resolve', factory.key, performance.now() - started)
  } catch (error) {
    throw failure(factory, error)
  }
  if (factory.evict) void evictAfterResolve(factory)
  return settle(state, target)
}

// Bound once per property read so methods that need their real receiver (Map, Set, typed arrays,
// Date: internal slots) work through the proxy.
function forward(target: object, value: unknown): unknown {
  return typeof value === 'function' ? value.bind(target) : value
}

// How many proxies this thread has made (decoded ones included). Task runners compare it before
// and after a batch arrives, and look for proxies nested in arguments only when it moved.
let made = 0

/** The number of proxies made in this thread so far (a counter, for cheap "any new proxies?" checks). */
export function proxiesMade(): number {
  return made
}

/**
 * Builds the lazy proxy of a factory: it resolves on first use (or on `resolve(proxy)`).
 * `populated` holds the target already in hand (`populateTarget`): the proxy starts resolved.
 */
export function proxyOf<T>(factory: ProxyFactory, populated?: { value: unknown }): T {
  return guardedProxyOf<T>({ factory, resolved: populated !== undefined, target: populated?.value })
}

// Node's util.inspect looks through a proxy at its stand-in without running traps (so printing
// never fetches): the stand-in answers for the proxy here.
const INSPECT = Symbol.for('nodejs.util.inspect.custom')
type Inspect = (value: unknown, options: object) => string
function describe(state: ProxyState, _depth: number, options: object, inspect: Inspect): string {
  if (state.resolved) return inspect(state.target, options)
  return `[Proxy unresolved: store '${state.factory.store.name}', key ${keyText(state.factory.key)}]`
}

/** @internal the proxy of a state made by the caller (ownership.ts sets `guard` first) */
export function guardedProxyOf<T>(state: ProxyState): T {
  made++
  const target = (): object => {
    const value = resolveSync(state)
    return typeof value === 'object' && value !== null ? value : Object(value)
  }
  // The proxy's own target is an empty stand-in: the real one is not known until resolved.
  // Descriptors are reported configurable, since the stand-in has none of the real properties;
  // an array stand-in's own `length` is the exception (it cannot be reported configurable).
  const standIn: object = state.factory.array ? [] : {}
  // The array stand-in's own `length` cannot be configured away, so every trap keeps reporting
  // it (a Proxy invariant), even for a target that is no longer an array (`update` to an object).
  const arrayStandIn = Array.isArray(standIn)
  const isLength = (property: string | symbol): boolean => arrayStandIn && property === 'length'
  Object.defineProperty(standIn, INSPECT, { value: (depth: number, options: object, inspect: Inspect) => describe(state, depth, options, inspect), configurable: true })
  const handler: ProxyHandler<object> = {
    get(_, property) {
      if (property === STATE) return state
      // `using` reads these when the declaration runs: answered without resolving the target.
      if (state.guard !== undefined && (property === Symbol.dispose || property === Symbol.asyncDispose)) {
        const guard = state.guard
        if (property === Symbol.asyncDispose) return async () => guard.drop()
        // A sync dispose cannot wait for the eviction; `await using` or `await dispose()` can.
        return () => void guard.drop()?.catch(() => {})
      }
      // msgpackr reads `constructor` first to pick an encoding; answering the wire class sends
      // the factory (extension below) and leaves the target where it is.
      if (property === 'constructor' && isEncoding()) return ProxyWire
      // Not thenable before it is resolved: `await proxy` (and returning one from an async
      // function) must give the proxy, not resolve it. A target cannot have a callable `then`
      // (the codec refuses functions and promises), so nothing is hidden.
      if (property === 'then' && !state.resolved) return undefined
      const real = target()
      if (typeof state.target !== 'object') {
        if (property === Symbol.toPrimitive) return () => state.target
        // JSON.stringify sees a proxy as an object: a primitive target serializes as itself.
        if (property === 'toJSON') return () => state.target
      }
      const value = Reflect.get(real, property, real)
      return property === 'constructor' ? value : forward(real, value)
    },
    set: (_, property, value) => Reflect.set(target(), property, value),
    has: (_, property) => property === STATE || isLength(property) || Reflect.has(target(), property),
    deleteProperty: (_, property) => !isLength(property) && Reflect.deleteProperty(target(), property),
    ownKeys() {
      const keys = Reflect.ownKeys(target())
      if (arrayStandIn && !keys.includes('length')) keys.push('length')
      return keys
    },
    getOwnPropertyDescriptor(_, property) {
      const descriptor = Reflect.getOwnPropertyDescriptor(target(), property)
      if (!isLength(property)) {
        if (descriptor) descriptor.configurable = true
        return descriptor
      }
      // Shaped as the stand-in's own `length` (writable data, not enumerable, not configurable).
      return { value: descriptor && 'value' in descriptor ? descriptor.value : undefined, writable: true, enumerable: false, configurable: false }
    },
    defineProperty: (_, property, descriptor) => Reflect.defineProperty(target(), property, descriptor),
    // While an encode runs, msgpackr tries `value instanceof Class` for each codec extension
    // registered after the proxy's own: answered from the stand-in class, so none of them fetches.
    getPrototypeOf: () => (isEncoding() ? ProxyWire.prototype : Reflect.getPrototypeOf(target())),
  }
  return new Proxy(standIn, handler) as T
}

/**
 * The codec's stand-in class for proxies: `instanceof ProxyWire` is true for any proxy, asked
 * without resolving it. Encoded, a proxy is its factory (a few hundred bytes, whatever the
 * target's size); decoded, a new unresolved proxy of the same object.
 */
class ProxyWire {
  static [Symbol.hasInstance](value: unknown): boolean {
    return isProxy(value)
  }
}
// 0x20..0x27 are the codec's (File, refused types); 0x28 is the proxy's.
addExtension({
  Class: ProxyWire,
  type: 0x28,
  write: (proxy: object) => {
    const state = stateOf(proxy)!
    return state.guard ? state.guard.wire() : state.factory
  },
  read: (factory: ProxyFactory) => (factory.kind === undefined ? proxyOf(factory) : reviveGuarded(factory)),
})

export function isProxy(value: unknown): boolean {
  return stateOf(value) !== undefined
}

export function isResolved(proxy: unknown): boolean {
  return stateOrThrow(proxy, 'isResolved').resolved
}

/** Fetches the target now (any connector); a failure is a ProxyResolveError naming store and key. */
export async function resolve(proxy: unknown): Promise<void> {
  await resolveAsync(stateOrThrow(proxy, 'resolve'))
}

/** The target itself, resolving first when needed (for code that must not see a proxy). */
export async function extract<T>(proxy: T): Promise<T> {
  return (await resolveAsync(stateOrThrow(proxy, 'extract'))) as T
}

/** The plain-data factory of a proxy: its store config, key and evict flag. */
export function factoryOf(proxy: unknown): ProxyFactory {
  return stateOrThrow(proxy, 'factoryOf').factory
}

/**
 * Whether a proxy can stand for the value: not null or undefined (nothing to fetch), not a boolean
 * (a proxy is an object, so `if (proxy)` would always be true), not already a proxy.
 */
export function isProxiable(value: unknown): boolean {
  return value !== null && value !== undefined && typeof value !== 'boolean' && !isProxy(value)
}

/** Values a proxy cannot stand for, refused when the proxy is made. */
export function refuseUnproxyable(value: unknown): void {
  if (value === null || value === undefined) throw new NotProxiable(`cannot proxy ${value}: there is nothing to fetch later; pass it directly`)
  if (typeof value === 'boolean') throw new NotProxiable(`cannot proxy a boolean (${value}): a proxy is an object, so it would always be truthy; pass it directly`)
  if (isProxy(value)) throw new NotProxiable('cannot proxy a proxy; pass the proxy itself')
}
