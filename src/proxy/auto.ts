import { encode } from '../serialize/codec.js'
import { factoryOf, isProxy, proxyOf } from './proxy.js'
import type { Store } from './store.js'

/**
 * Automatic proxying, the executor `proxy: { store, threshold }` option (docs/proxy.md "Executor
 * option"): what both sides share. The executor proxies large arguments on the caller's side; the
 * worker proxies large results; both decide with `largerThan` and store with `putLarge`.
 */

// Nodes visited before the bounds walk gives up and the value is encoded to be measured exactly.
const NODE_BUDGET = 2048

type Bounds = 'small' | 'large' | 'unknown'

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * Whether `value` surely encodes (with tsflow's codec) to more than `threshold` bytes, surely not,
 * or cannot be told without encoding. A walk sums a lower and an upper bound of the encoded size:
 * a typed array or buffer counts its byteLength, a string its length (UTF-8 has at least one byte
 * per UTF-16 unit, at most three), containers their items. It stops as soon as the lower bound
 * passes the threshold (a 100 MB Float64Array is decided at once) or after NODE_BUDGET nodes.
 * Proxies and class instances it does not know are 'unknown' (never touched: a proxy would fetch).
 */
function bounds(root: unknown, threshold: number): Bounds {
  let low = 0
  let high = 0
  let nodes = 0
  const stack: unknown[] = [root]
  let seen: Set<object> | undefined
  while (stack.length > 0) {
    if (++nodes > NODE_BUDGET) return 'unknown'
    const value = stack.pop()
    switch (typeof value) {
      case 'string':
        low += value.length
        high += 3 * value.length + 5
        break
      case 'number':
        low += 1
        high += 9
        break
      case 'boolean':
      case 'undefined':
        low += 1
        high += 3
        break
      case 'bigint':
        low += 1
        high += 16 + value.toString(16).length
        break
      case 'object': {
        if (value === null) {
          low += 1
          high += 1
          break
        }
        // Repeated objects are encoded once, then referenced (structured-clone mode): no lower bound.
        if ((seen ??= new Set()).has(value)) {
          high += 16
          break
        }
        seen.add(value)
        if (isProxy(value)) return 'unknown'
        if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
          low += value.byteLength
          high += value.byteLength + 16
        } else if (Array.isArray(value)) {
          low += 1
          high += 12
          if (nodes + value.length > NODE_BUDGET) return low > threshold ? 'large' : 'unknown'
          for (let i = 0; i < value.length; i++) stack.push(value[i])
        } else if (value instanceof Date) {
          low += 1
          high += 16
        } else if (value instanceof Map || value instanceof Set) {
          low += 1
          high += 16
          if (nodes + 2 * value.size > NODE_BUDGET) return low > threshold ? 'large' : 'unknown'
          if (value instanceof Map) {
            for (const [k, v] of value) stack.push(k, v)
          } else {
            for (const v of value) stack.push(v)
          }
        } else if (isPlain(value)) {
          // Keys may be written once per shape (msgpackr records): no lower bound for them.
          low += 1
          high += 16
          for (const key in value) {
            if (++nodes > NODE_BUDGET) return low > threshold ? 'large' : 'unknown'
            high += 3 * key.length + 5
            stack.push((value as Record<string, unknown>)[key])
          }
        } else {
          return low > threshold ? 'large' : 'unknown'
        }
        break
      }
      default:
        // functions and symbols: the codec refuses them; let the encode say so.
        return 'unknown'
    }
    if (low > threshold) return 'large'
  }
  return high <= threshold ? 'small' : 'unknown'
}

/**
 * Whether `value` encodes to more than `threshold` bytes: false, true (decided without encoding),
 * or the encoded bytes when they had to be made to tell (then `putLarge` stores those bytes, so
 * a large value is never encoded twice). At most `threshold` bytes are encoded only to be measured.
 */
export function largerThan(value: unknown, threshold: number): boolean | Uint8Array {
  const decided = bounds(value, threshold)
  if (decided !== 'unknown') return decided === 'large'
  const bytes = encode(value)
  return bytes.byteLength > threshold ? bytes : false
}

/**
 * Stores a value `largerThan` found large and returns an automatic proxy of it (`auto: true`).
 * `evict`: evicted by whoever resolves it (results: the caller reads and evicts; arguments are
 * shared and evicted by the executor instead).
 */
export async function putLarge<T>(store: Store, value: T, measured: true | Uint8Array, evict: boolean): Promise<T> {
  // The store's msgpack serializer is the codec that made `measured`: its bytes go as they are.
  const key = measured instanceof Uint8Array && store.serializerName === 'msgpack' ? await store.connector.put(measured) : await store.put(value)
  return proxyOf<T>({ ...store.factory(key, { evict }), auto: true })
}

/** Whether `value` is a proxy an executor's `proxy` option made (not one the user made). */
export function isAutoProxy(value: unknown): boolean {
  return isProxy(value) && factoryOf(value).auto === true
}
