import type { ResultWire, TaskWire } from '../protocol/task.js'
import { dropOwnedNow, ownedArrivalCount, ownershipOf, type OwnedProxy } from '../proxy/ownership.js'
import { isProxy } from '../proxy/proxy.js'

/**
 * A task owns the owned proxies it was called with (docs/proxy.md, "Ownership"). Like a function
 * that took ownership, what it neither returned, passed on nor disposed is dropped when it ends:
 * its object is evicted then, instead of whenever the worker's garbage collector gets to it.
 *
 * "Returned" is known from the encoding: encoding a result moves every owned proxy in it, however
 * deep, so what is still usable after the result was encoded was not returned. Hence the order:
 * the callers (the batch runners) encode a result first, then call `dropOwnedArguments`.
 *
 * Only after a success: a failed task may be tried again with the same arguments (the kernel
 * sends the same factory again), so its objects must stay; the collector's backstop remains for
 * those. An owned argument that is still borrowed (a borrow the task kept) is left to the
 * backstop too: disposing it would break the rule that an owner outlives its borrows.
 */

/** Called before a batch is decoded; `ownedArrived(mark)` after it says whether owned proxies came with it. */
export function ownedArrivalMark(): number {
  return ownedArrivalCount()
}

/** Whether owned proxies were decoded since `mark` was taken (the fast path skips the walk). */
export function ownedArrived(mark: number): boolean {
  return ownedArrivalCount() !== mark
}

/**
 * Disposes the owned proxies among each successful task's arguments that are still usable (not
 * returned, not sent on, not disposed) and not borrowed. `tasks[i]` goes with `results[i]`;
 * holes are skipped. Connectors with `evictSync` (local, file, shm) evict before this returns:
 * a pool thread may block waiting for its next task right after, and an asynchronous eviction
 * (redis, zmq) would wait with it. A failure to evict is not the task's failure.
 */
export function dropOwnedArguments(tasks: readonly (TaskWire | undefined)[], results: readonly (ResultWire | undefined)[]): void {
  for (let i = 0; i < results.length; i++) {
    const task = tasks[i]
    if (!task || !results[i]?.ok) continue
    for (const owned of ownedIn(task.args)) dropOwnedNow(owned)
  }
}

/**
 * The owned proxies among arguments: top level, and nested in arrays and plain objects (the
 * containers the kernel looks into for futures). A proxy's target is never looked into.
 */
function ownedIn(args: readonly unknown[]): OwnedProxy<unknown>[] {
  const found: OwnedProxy<unknown>[] = []
  const seen = new Set<object>()
  const stack: unknown[] = [...args]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value !== 'object' || value === null) continue
    if (isProxy(value)) {
      if (ownershipOf(value) === 'owned') found.push(value as OwnedProxy<unknown>)
      continue
    }
    if (seen.has(value)) continue
    seen.add(value)
    if (Array.isArray(value)) for (const item of value) stack.push(item)
    else {
      const prototype = Object.getPrototypeOf(value)
      if (prototype === Object.prototype || prototype === null) for (const key in value) stack.push((value as Record<string, unknown>)[key])
    }
  }
  return found
}
