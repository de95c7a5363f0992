import { Future } from './future.js'

/** How far a set of futures has come, as `awaitAll` reports it. */
export interface Progress {
  total: number
  /** settled, successfully or not */
  done: number
  failed: number
  pending: number
  elapsedMs: number
  /** settled per second since the wait began */
  perSecond: number
  /** ms until all are settled at the rate so far; undefined before the first settles */
  etaMs: number | undefined
}

export interface AwaitAllOptions {
  /** Called at most every `progressEveryMs` while futures settle, and once when all have. */
  onProgress?: (progress: Progress) => void
  /** Default 200 ms. */
  progressEveryMs?: number
  /**
   * true (default): reject with the first failure as soon as it happens, like Promise.all;
   * false: wait for every future, then reject with the failure (one) or an AggregateError of all
   * failures in order.
   */
  failFast?: boolean
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

/**
 * Waits for every future (or promise, or plain value) and resolves with their values in order.
 * Cheaper than Promise.all over many futures (no promise per future), with progress reports.
 */
export async function awaitAll<T>(futures: Iterable<T | PromiseLike<T>>, options: AwaitAllOptions = {}): Promise<Awaited<T>[]> {
  const settled = await settleAll(futures, options, options.failFast !== false)
  const failures = settled.filter((s): s is { ok: false; error: unknown } => !s.ok)
  if (failures.length === 1) throw failures[0]!.error
  if (failures.length > 1) {
    throw new AggregateError(
      failures.map((f) => f.error),
      `${failures.length} of ${settled.length} futures failed; the first: ${describe(failures[0]!.error)}`,
    )
  }
  return settled.map((s) => (s as { ok: true; value: Awaited<T> }).value)
}

/** Waits for every future and resolves with each outcome in order; never rejects. */
export function awaitAllSettled<T>(futures: Iterable<T | PromiseLike<T>>, options: Omit<AwaitAllOptions, 'failFast'> = {}): Promise<Settled<Awaited<T>>[]> {
  return settleAll(futures, options, false)
}

function settleAll<T>(futures: Iterable<T | PromiseLike<T>>, options: AwaitAllOptions, failFast: boolean): Promise<Settled<Awaited<T>>[]> {
  if (futures === null || typeof futures !== 'object' || typeof (futures as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    return Promise.reject(new TypeError(`awaitAll() needs an array (or iterable) of futures (got ${futures === null ? 'null' : typeof futures})`))
  }
  const items = [...futures]
  const total = items.length
  const results: Settled<Awaited<T>>[] = new Array(total)
  const started = Date.now()
  const every = options.progressEveryMs ?? 200
  let done = 0
  let failed = 0
  let lastReport = 0
  return new Promise((resolve, reject) => {
    let finished = false
    const report = (final: boolean) => {
      if (!options.onProgress) return
      const now = Date.now()
      if (!final && now - lastReport < every) return
      lastReport = now
      const elapsedMs = now - started
      const perSecond = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0
      try {
        options.onProgress({ total, done, failed, pending: total - done, elapsedMs, perSecond, etaMs: done > 0 ? ((total - done) * elapsedMs) / done : undefined })
      } catch (error) {
        // A throwing progress callback ends the wait with its error instead of escaping into
        // whichever task's settlement called it.
        finished = true
        reject(error)
      }
    }
    const settle = (index: number, outcome: Settled<Awaited<T>>) => {
      if (finished) return
      results[index] = outcome
      done++
      if (!outcome.ok) {
        failed++
        if (failFast) {
          report(true)
          finished = true
          reject(outcome.error)
          return
        }
      }
      if (done === total) {
        report(true)
        finished = true
        resolve(results)
      } else report(false)
    }
    if (total === 0) {
      report(true)
      finished = true
      resolve(results)
      return
    }
    items.forEach((item, index) => {
      if (item instanceof Future) {
        // A plain callback per future: no promise is made for futures that are already settled.
        const future = item as Future<Awaited<T>>
        future.onSettled(() => {
          const error = future.exception()
          settle(index, future.succeeded ? { ok: true, value: future.settledResult() } : { ok: false, error })
        })
      } else if (item !== null && typeof item === 'object' && typeof (item as PromiseLike<T>).then === 'function') {
        ;(item as PromiseLike<Awaited<T>>).then(
          (value) => settle(index, { ok: true, value }),
          (error: unknown) => settle(index, { ok: false, error }),
        )
      } else {
        settle(index, { ok: true, value: item as Awaited<T> })
      }
    })
  })
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
