/**
 * Iteration planning: how many tasks the next batch gets, given the batches measured so far.
 * Pure functions, so the sizing rules can be tested with made-up rates.
 *
 * - estimate (parsl-perf's default): start small, then size each batch to fill the target time
 *   at the last measured completion rate; stop once a batch (from the second on) lasted at least
 *   75% of the target. The first batch mostly measures start-up (managers connecting, workers
 *   importing the app), which is why one batch is never enough.
 * - exponential: start small and double until a batch lasts the target time.
 * - list: exactly the given sizes, in order.
 */
import type { IterateMode } from './args.js'

/** Tasks in the first batch of the estimate and exponential modes. */
export const FIRST_BATCH = 20
/** A batch lasting this fraction of the target ends the estimate mode (as in parsl-perf). */
export const ESTIMATE_THRESHOLD = 0.75
/** The estimate mode always runs at least this many batches. */
export const MIN_ESTIMATE_ITERATIONS = 2
/** Most batches the estimate mode runs before reporting what it has. */
export const MAX_ESTIMATE_ITERATIONS = 10
/** Most batches the exponential mode runs (20 x 2^29 tasks is beyond any machine). */
export const MAX_EXPONENTIAL_ITERATIONS = 30
/** Largest batch either adaptive mode asks for, to bound memory (every task is outstanding at once). */
export const MAX_BATCH = 20_000_000

/** What the planner needs from a finished batch. */
export interface Measurement {
  tasks: number
  /** from the first submit to the last result */
  completeSeconds: number
}

/** Why the planner stopped; undefined while it still has batches to run. */
export type StopReason = 'target reached' | 'list done' | 'iteration limit'

export interface Plan {
  /** tasks in the next batch, or undefined when done */
  next: number | undefined
  stop?: StopReason
}

/** Decides the next batch after the measurements so far (empty: the first batch). */
export function planNext(iterate: IterateMode, targetSeconds: number, done: readonly Measurement[]): Plan {
  if (iterate.mode === 'list') {
    const next = iterate.sizes[done.length]
    return next === undefined ? { next: undefined, stop: 'list done' } : { next }
  }
  const last = done.at(-1)
  if (!last) return { next: FIRST_BATCH }
  if (iterate.mode === 'exponential') {
    if (last.completeSeconds >= targetSeconds) return { next: undefined, stop: 'target reached' }
    if (done.length >= MAX_EXPONENTIAL_ITERATIONS) return { next: undefined, stop: 'iteration limit' }
    return { next: Math.min(MAX_BATCH, last.tasks * 2) }
  }
  if (done.length >= MIN_ESTIMATE_ITERATIONS && last.completeSeconds >= ESTIMATE_THRESHOLD * targetSeconds) {
    return { next: undefined, stop: 'target reached' }
  }
  if (done.length >= MAX_ESTIMATE_ITERATIONS) return { next: undefined, stop: 'iteration limit' }
  return { next: estimateBatch(last, targetSeconds) }
}

/** Tasks that fill `targetSeconds` at the rate `last` was completed at (at least 1). */
export function estimateBatch(last: Measurement, targetSeconds: number): number {
  // A batch finished within the clock's resolution says "very fast", not "infinitely fast".
  const seconds = Math.max(last.completeSeconds, 1e-6)
  const rate = last.tasks / seconds
  return Math.max(1, Math.min(MAX_BATCH, Math.floor(rate * targetSeconds)))
}
