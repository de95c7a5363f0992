import { borrowsIn, release, releaseWhenSettled } from '../proxy/ownership.js'

/**
 * Calls `submit` (an app, or `app.with(options)`) with `args`, and gives the borrows among the
 * arguments (RefProxy / RefMutProxy made in this process, also inside arrays and plain objects)
 * back to their owners when the returned future settles, whether the task succeeded or failed.
 * A call that throws at once releases them at once. Returns the app's future.
 *
 * ```ts
 * const out = await submitScoped(step, borrow(table), 3)   // the borrow is released here
 * await dispose(table)
 * ```
 */
export function submitScoped<A extends unknown[], F extends PromiseLike<unknown>>(submit: (...args: A) => F, ...args: A): F {
  const refs = borrowsIn(args)
  let future: F
  try {
    future = submit(...args)
  } catch (error) {
    for (const ref of refs) release(ref)
    throw error
  }
  return releaseWhenSettled(future, refs)
}
