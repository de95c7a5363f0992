import type { TaskContextWire } from '../protocol/task.js'
// Every built-in connector type is registered wherever tasks run, so a proxy (or the executor
// option) works for apps whose modules never import tsflow/proxy, and for apps sent as source.
import '../proxy/index.js'
import { isAutoProxy, largerThan, putLarge } from '../proxy/auto.js'
// Also registers the codec extension that decodes proxies, in every process that runs tasks.
import { extract, factoryOf, isProxy, isResolved, proxiesMade } from '../proxy/proxy.js'
import { getStore, Store, type StoreConfig } from '../proxy/store.js'

/**
 * What a worker does with proxies around a task's call (docs/proxy.md "Proxies as task
 * arguments", "Executor option"): resolve the proxies among the arguments first, hand the task
 * the target of the proxies the executor made, store a large result when the executor asks, and
 * forget the targets when the task ends.
 */

let madeAtLastBatch = proxiesMade()

/**
 * Whether a proxy was made in this thread since the last batch: decoding a batch makes one for
 * each proxy among its arguments, so a batch without any skips the walk over arguments (the fast
 * path of tasks without proxies pays one comparison). Call once per batch, after decoding it.
 */
export function batchMayHoldProxies(): boolean {
  const made = proxiesMade()
  if (made === madeAtLastBatch) return false
  madeAtLastBatch = made
  return true
}

/**
 * The unresolved proxies among a task's arguments, at the top level and nested in arrays and
 * plain objects (the containers the kernel also looks into for futures). A proxy's own target is
 * not looked into.
 */
export function proxiesIn(args: readonly unknown[]): unknown[] {
  let found: unknown[] | undefined
  let seen: Set<object> | undefined
  const stack: unknown[] = [...args]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value !== 'object' || value === null) continue
    if (isProxy(value)) {
      if (!isResolved(value)) (found ??= []).push(value)
      continue
    }
    if ((seen ??= new Set()).has(value)) continue
    seen.add(value)
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push(value[i])
    } else {
      const prototype = Object.getPrototypeOf(value)
      if (prototype === Object.prototype || prototype === null) for (const key in value) stack.push((value as Record<string, unknown>)[key])
    }
  }
  return found ?? []
}

/**
 * Fetches the proxies together (any connector works, sync or not), then puts in `args` the target
 * of each top-level proxy the executor made: the task sees the value it was called with
 * (Array.isArray, typed-array identity, typeof of a string), as if the option were off.
 */
export async function resolveArguments(args: unknown[], proxies: readonly unknown[]): Promise<void> {
  const targets = await Promise.all(proxies.map((proxy) => extract(proxy)))
  for (let i = 0; i < args.length; i++) {
    const at = proxies.indexOf(args[i])
    if (at >= 0 && isAutoProxy(args[i])) args[i] = targets[at]
  }
}

/**
 * The task ended: its proxies' targets leave this worker's store caches, so a large object is not
 * kept alive here after the task that needed it (the object stays in the store). Proxies made
 * with `evict` were already dropped when they resolved.
 */
export function forgetTargets(proxies: readonly unknown[]): void {
  for (const proxy of proxies) {
    const factory = factoryOf(proxy)
    if (!factory.evict) getStore(factory.store.name)?.uncache(factory.key)
  }
}

/**
 * A task's result as it goes back (undefined: as it is; else what to send instead): with the
 * executor option on (`px`), a result larger than the threshold is stored here and replaced by an
 * automatic proxy (the caller fetches and evicts it); if the store fails, the value itself.
 * A proxy the task returns goes back as it is (its factory travels). A value the codec refuses is
 * left for the result encoder, which fails the task with a message naming it.
 */
export function storeLargeResult(value: unknown, px: TaskContextWire['px']): Promise<unknown> | undefined {
  if (px === undefined || value === undefined || value === null || isProxy(value)) return undefined
  let large: boolean | Uint8Array
  try {
    large = largerThan(value, px.threshold)
  } catch {
    return undefined
  }
  if (large === false) return undefined
  // A store that cannot take it (full, unreachable, or a zmq connector in a worker thread, which
  // cannot own objects): the result goes back with the task, as without the option.
  return putLarge(Store.fromConfig(px.store as unknown as StoreConfig), value, large, true).catch(() => value)
}
