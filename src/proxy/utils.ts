// Helpers around proxies and the store registry, named after ProxyStore's (docs/proxy.md,
// "Coming from ProxyStore"): the key of a proxy, its store, a background resolve, a registration
// scope, and the locker that keeps a proxy from resolving while it is handed around.
import { addExtension } from 'msgpackr'
import { UsageError } from '../errors.js'
import type { ObjectKey } from './connector.js'
import { factoryOf, isProxy, resolve } from './proxy.js'
import { getStore, registerStore, Store, unregisterStore, type ProxyOptions, type StoreConfig } from './store.js'

/** The key of the object a proxy stands for (ProxyStore's `get_key`). */
export function getKey(proxy: unknown): ObjectKey {
  return factoryOf(proxy).key
}

/**
 * The store a proxy resolves from: the registered one of its name, or one rebuilt (and registered)
 * from the config the proxy carries. Same as `getStore(proxy)`.
 */
export function getStoreOf(proxy: unknown): Store {
  return Store.fromConfig(factoryOf(proxy).store)
}

/**
 * Starts fetching the target in the background and returns at once (ProxyStore's
 * `resolve_async`): the first use finds it resolved if the fetch has finished. A failure is not
 * thrown here; it surfaces when the proxy is used. A resolved proxy is left as it is.
 */
export function resolveAsync(proxy: unknown): void {
  // resolve() checks its argument synchronously enough for us to want the error now.
  if (!isProxy(proxy)) throw new UsageError(`resolveAsync() takes a proxy (made by store.proxy()), not ${proxy === null ? 'null' : typeof proxy}`)
  resolve(proxy).catch(() => {})
}

/**
 * The registered store of the config's name, or a new one from the config; `register: false`
 * leaves a new one out of the registry (ProxyStore's `get_or_create_store`).
 */
export function getOrCreateStore(config: StoreConfig, options: { register?: boolean } = {}): Store {
  const known = getStore(config.name)
  if (known) return known
  if (options.register === false) {
    return new Store(config.name, config.connector, { cacheSize: config.cacheSize, serializer: config.serializer, populateTarget: config.populateTarget, metrics: config.metrics, register: false })
  }
  return Store.fromConfig(config)
}

/**
 * Registers the stores for a scope: `using _ = storeRegistration(a, b)` unregisters them at its
 * end (ProxyStore's `store_registration` context manager). Another store already registered under
 * one of the names is refused unless `replace`.
 */
export function storeRegistration(...args: Array<Store | { replace?: boolean }>): Disposable {
  const last = args.at(-1)
  const options = last !== undefined && !(last instanceof Store) ? (args.pop() as { replace?: boolean }) : {}
  const stores = args as Store[]
  const added: Store[] = []
  try {
    for (const store of stores) {
      registerStore(store, options)
      added.push(store)
    }
  } catch (error) {
    added.forEach(unregisterStore)
    throw error
  }
  return { [Symbol.dispose]: () => stores.forEach(unregisterStore) }
}

/**
 * Holds a proxy so that nothing resolves it by looking at it (ProxyStore's `ProxyLocker`): code
 * that inspects its arguments (a logger, a framework walking an object) sees the locker, not the
 * proxy. `unlock()` gives the proxy back, still unresolved. Encoded with the codec, a locker
 * travels as a locker of the proxy's factory.
 */
export class ProxyLocker<T> {
  readonly #proxy: T
  constructor(proxy: T) {
    if (!isProxy(proxy)) throw new UsageError('ProxyLocker takes a proxy (made by store.proxy())')
    this.#proxy = proxy
  }

  unlock(): T {
    return this.#proxy
  }

  // The codec asks `value instanceof ProxyLocker` of every object it encodes, proxies included: a
  // brand check runs no proxy trap, so encoding a proxy never resolves it here.
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && #proxy in value
  }
}
// 0x29: the codec's extension for a locker (0x28 is the proxy's); the inner proxy uses its own.
addExtension({
  Class: ProxyLocker,
  type: 0x29,
  write: (locker: ProxyLocker<unknown>) => ({ proxy: locker.unlock() }),
  read: (data: { proxy: unknown }) => new ProxyLocker(data.proxy),
})

/** `store.proxy` wrapped in a ProxyLocker; with `skipNonProxiable`, such a value comes back as it is. */
export async function lockedProxy<T>(store: Store, value: T, options: ProxyOptions = {}): Promise<ProxyLocker<T> | T> {
  const proxy = await store.proxy(value, options)
  return isProxy(proxy) ? new ProxyLocker(proxy) : proxy
}
