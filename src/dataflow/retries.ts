/**
 * Whether a failed try is tried again: the retry policy the kernel applies to every failure.
 * Cancellations end the task; a try stopped by its block's walltime is retried for free a bounded
 * number of times; other failures are retried while their cost (1 each, or what the config's
 * `retryHandler` says) stays within `retries`, except those that would fail the same way again.
 */
import { ErrorCode } from '../errors.js'
import type { ResolvedConfig, RetryTaskInfo } from '../config/config.js'
import type { Logger } from '../util/logger.js'
import type { TaskRecord } from './task-record.js'

// Failures that will fail the same way on every try; retrying them only delays the error.
const NOT_RETRIED = new Set<string>([
  ErrorCode.CANCELLED,
  ErrorCode.SERIALIZATION,
  ErrorCode.FUNCTION_TRANSPORT,
  ErrorCode.APP_NOT_FOUND,
  ErrorCode.WORKFLOW_IN_WORKER,
  ErrorCode.SHUTDOWN,
  ErrorCode.NO_EXECUTOR,
  ErrorCode.WALLTIME_EXCEEDS_BLOCK,
])

/**
 * Tries of one task ended by its block's walltime (BlockWalltimeReached) that are retried without
 * counting against `retries`: the scheduler took the node, the task did nothing wrong. Bounded, so
 * a task that always outlives its blocks ends instead of looping.
 */
export const BLOCK_WALLTIME_FREE_RETRIES = 3

/** What to do with a failed try: end it as cancelled or failed, or retry it (free or counted). */
export type RetryDecision = 'cancelled' | 'failed' | 'free' | 'counted'

/**
 * Decides, and books the decision on the record (free retries used, failure cost); the error of
 * a task out of free retries says so. `running`: retries only while the kernel runs.
 */
export function decideRetry(record: TaskRecord, error: unknown, config: ResolvedConfig, running: boolean, logger: Logger): RetryDecision {
  const code = (error as { code?: unknown })?.code
  if (code === ErrorCode.CANCELLED) return 'cancelled'
  if (code === ErrorCode.BLOCK_WALLTIME && running) {
    if (record.freeRetries < BLOCK_WALLTIME_FREE_RETRIES) {
      record.freeRetries++
      logger.info(
        `task #${record.id} ${record.appName} try ${record.tries} was stopped by its block's walltime; ` +
          `retrying (free retry ${record.freeRetries} of ${BLOCK_WALLTIME_FREE_RETRIES}, not counted against retries)`,
      )
      return 'free'
    }
    if (error instanceof Error) {
      error.message += ` (its blocks reached their walltime on ${record.freeRetries + 1} tries; ${BLOCK_WALLTIME_FREE_RETRIES} free retries used, further tries count against retries)`
    }
  }
  const retries = record.app.options.retries ?? config.retries
  if (retries > 0 && !(typeof code === 'string' && NOT_RETRIED.has(code)) && running) {
    let cost = 1
    if (config.retryHandler) {
      try {
        cost = Number(config.retryHandler(error, retryInfo(record)))
        if (!Number.isFinite(cost)) cost = Infinity
      } catch (handlerError) {
        logger.error(`retryHandler threw for task #${record.id}; not retrying`, handlerError)
        cost = Infinity
      }
    }
    record.failCost += cost
    if (record.failCost <= retries) {
      logger.debug(`task #${record.id} ${record.appName} try ${record.tries} failed; retrying`)
      return 'counted'
    }
  }
  return 'failed'
}

function retryInfo(record: TaskRecord): RetryTaskInfo {
  return { id: record.id, appName: record.appName, tries: record.tries, failCost: record.failCost, executor: record.executor }
}
