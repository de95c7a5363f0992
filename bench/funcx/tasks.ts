/**
 * The task bodies of the funcX experiments (scaling, fault-tolerance, prefetching, memoization).
 * Workers import this module to find the apps, so it defines apps and nothing that runs on import.
 * Sleeping tasks wait on a timer, not the CPU: many of them fit on a few cores (oversubscription).
 */
import { randomUUID } from 'node:crypto'
import { app, taskContext } from 'tsflow'

/** No-op: the dispatch cost alone. */
export const noopTask = app(function funcxNoop(i: number) {
  return i
})

/** Sleeps `ms` milliseconds on a timer (0: returns at once, like the no-op). */
export const sleepTask = app(async function funcxSleep(ms: number) {
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
  return ms
})

/**
 * Sleeps `ms` and reports which try of the task this was, so the fault-tolerance experiment can
 * count the tasks that were retried after their manager died.
 */
export const sleepTry = app(async function funcxSleepTry(ms: number) {
  const tryNumber = taskContext().tryNumber
  await new Promise((resolve) => setTimeout(resolve, ms))
  return tryNumber
})

/**
 * A memoized request: `ms` of work on `input` (in namespace `ns`, one per measured fraction so a
 * fraction's primed results do not serve another) returning a nonce made on the worker, so the
 * caller can tell a result served from the cache (a nonce it saw while priming) from a fresh run.
 */
export const cachedRequest = app(
  async function funcxCachedRequest(ns: string, input: number, ms: number) {
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
    return { ns, input, nonce: randomUUID() }
  },
  { cache: true },
)
