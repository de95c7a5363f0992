import { decode } from '../serialize/codec.js'
import { decodeResults, type WorkAnswer } from '../worker/run.js'
import type { EarlyResultsWire } from '../protocol/worker.js'
import type { SampleTarget } from './sampler.js'
/**
 * The seam between the manager's scheduler and its workers. Two implementations: worker threads
 * (pool-threads.ts, piscina) and worker processes (pool-processes.ts). The scheduler decides
 * what goes together in a batch; a pool decides which worker runs it, enforces walltimes and
 * replaces workers that die.
 */

/** A task as the manager holds it: routing fields plus the untouched payload for the worker. */
export interface QueuedTask {
  id: number
  try: number
  priority: number
  /** encode(TaskArgsWire), forwarded as is */
  payload: Uint8Array
  /** function table id */
  fn: number
  /** TaskKind */
  kind: number
  appName: string
  /** seconds, from TaskWire.wt */
  walltime: number | undefined
  bash: boolean
  /** run alone: it shared a batch with a task that killed its worker, and may be the culprit */
  isolated: boolean
}

export interface Batch {
  tasks: QueuedTask[]
  /** encode(TaskBatchHead) for these tasks; a worker gets it followed by their payloads */
  head: Uint8Array
  /** the batch runs alone on its worker (one task with a walltime, or isolated) */
  alone: boolean
  /**
   * stop the worker after this long (walltime plus any grace); only for batches of one. The clock
   * starts when the worker calls the task's function, not when the batch is handed over.
   */
  walltimeMs?: number
}

export type BatchFailure =
  /** the worker died; `started` is false for a batch that was waiting behind the running one */
  | { why: 'lost'; started: boolean; exitCode: number | null; signal: string | null; where: string }
  | { why: 'walltime' }
  | { why: 'cancel' }
  /** the worker could not run the batch at all (it answered with an error instead of results) */
  | { why: 'error'; error: Error }

export interface PoolEvents {
  /** results of some tasks of a running batch (by task index), before the batch ends */
  partial(batch: Batch, indexes: readonly number[], answers: readonly Uint8Array[]): void
  /** the batch ended; null for the tasks already answered through partial(); its longest task took `slowestMs` */
  done(batch: Batch, answers: readonly (Uint8Array | null)[], slowestMs: number): void
  failed(batch: Batch, failure: BatchFailure): void
  /** a worker became ready or was replaced: there may be room for more batches */
  changed(): void
  /** the pool cannot keep workers running (e.g. every start fails); the manager should exit */
  fatal(message: string): void
}

export interface WorkerPool {
  readonly size: number
  /** starts the workers; does not wait for them to be ready */
  start(): void
  /** workers with no batch at all */
  idle(): number
  /** workers being started (or restarted) that will take batches soon */
  starting(): number
  /** how many more batches the pool would take now (ignoring batches that must run alone) */
  room(): number
  /** whether a batch can be handed over now; with `idleOnly`, only to a worker with nothing to do */
  canTake(idleOnly: boolean): boolean
  /** hands a batch over; `idleOnly` as for canTake (always for `alone` batches) */
  dispatch(batch: Batch, idleOnly: boolean): void
  /** stops the task if it runs alone; true if it will be reported as `cancel` */
  cancelRunning(taskId: number): boolean
  /** asks workers to exit, waits up to `graceMs`, then kills what is left */
  stop(graceMs: number): Promise<void>
  /** last resort on process exit: kill every worker now, synchronously */
  killNow(): void
  /**
   * For the resource sampler (monitoring on): each task running alone on its worker now, and its
   * worker's /proc directory. A batch of several tasks is skipped: which of them runs at this
   * instant is unknown here, and such batches hold only tasks known to take under a millisecond.
   */
  sampleTargets(out: SampleTarget[]): void
}

/** Hands a worker's encoded answer for `batch` to the scheduler; an unreadable answer fails the batch. */
export function deliverAnswer(events: PoolEvents, batch: Batch, answer: Uint8Array): void {
  let decoded: WorkAnswer
  try {
    decoded = decodeResults(answer)
  } catch (error) {
    events.failed(batch, { why: 'error', error: error as Error })
    return
  }
  events.done(batch, decoded.answers, decoded.slowestMs)
}

/** Hands a worker's early results for `batch` to the scheduler; an unreadable message is left to the batch's answer. */
export function deliverEarly(events: PoolEvents, batch: Batch, body: Uint8Array): number {
  let early: EarlyResultsWire
  try {
    early = decode<EarlyResultsWire>(body)
  } catch {
    return 0
  }
  events.partial(batch, early[0], early[1])
  return early[0].length
}

/** What a worker is sent for a batch: its head, then its tasks' payloads. */
export function workOf(batch: Batch): Uint8Array[] {
  const parts: Uint8Array[] = new Array(batch.tasks.length + 1)
  parts[0] = batch.head
  for (let i = 0; i < batch.tasks.length; i++) parts[i + 1] = batch.tasks[i]!.payload
  return parts
}
