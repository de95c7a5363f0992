/**
 * The monitoring boundary (issue 12, docs/monitoring.md "Storage"): the `monitoring` option and
 * the event records every monitoring source (the kernel's recorder now; executors, the
 * interchange and managers later) sends to the one writer thread that owns the SQLite database.
 *
 * Records travel in batches as short arrays, not objects: a batch of 10,000 task state changes is
 * then a few flat arrays to structured-clone, and strings that repeat (app names, executor labels,
 * run ids) are sent once as a `name` record and referred to by number afterwards.
 */
import { dirname, join, resolve } from 'node:path'
import { boolean, integer, isPlainObject, object, positiveNumber, string, type Check } from '../util/schema.js'
import { ConfigError } from '../errors.js'

/** The user's `monitoring` option (docs/monitoring.md "Storage"). */
export interface MonitoringOptions {
  /** record this run (default false; `monitoring: true` is `{ enabled: true }`) */
  enabled?: boolean
  /** how often managers sample each running task's /proc (ms, default 1000) */
  resourceIntervalMs?: number
  /**
   * The SQLite file. Default `monitoring.db` beside the numbered run directories
   * (`<runDir>/../monitoring.db`, i.e. `runinfo/monitoring.db`), one database shared by every run
   * of that runinfo directory as in Parsl, so the dashboard lists them all.
   */
  db?: string
  /** what is deleted when the writer starts and every hour */
  retention?: { maxAgeDays?: number; maxRuns?: number }
  /**
   * The writer thread's nice value, 0 to 19 (default 10: the tasks get the CPU first when they
   * fill every core, and the writer catches up after the flood; cleanup() waits for it, nothing is
   * lost). 0 leaves the writer at the process's priority. Linux only; ignored elsewhere.
   */
  writerNice?: number
}

export interface ResolvedMonitoring {
  readonly resourceIntervalMs: number
  /** undefined means the default, resolved against the run directory at start (`monitoringDbPath`) */
  readonly db: string | undefined
  readonly retention: Readonly<{ maxAgeDays: number | undefined; maxRuns: number | undefined }>
  readonly writerNice: number
}

/**
 * The writer's default nice value. On the 2-core development VM a flood of no-op tasks on the
 * thread pool ran 10-20% faster recorded at 10 than at 0, with the database at most a few hundred
 * ms further behind (docs/benchmarks.md "Monitoring"); a writer at 10 still gets about a tenth of
 * a busy core, enough for some 70,000 tasks/s.
 */
export const DEFAULT_WRITER_NICE = 10

const monitoringObject = object({
  enabled: boolean,
  resourceIntervalMs: integer(10, 2 ** 31 - 1, 'a whole number of ms from 10 to 2147483647'),
  db: string,
  retention: object({ maxAgeDays: positiveNumber, maxRuns: integer(1) }),
  writerNice: integer(0, 19, 'a nice value from 0 to 19 (default 10)'),
})

/**
 * Checks the option once (at config resolution); errors name the path (`monitoring.resourceIntervalMs`).
 * Returns undefined when monitoring is off.
 */
export const monitoringOption: Check<ResolvedMonitoring | undefined> = (value, path) => {
  if (value === undefined || value === false) return undefined
  if (value === true) return Object.freeze({ resourceIntervalMs: 1000, db: undefined, retention: Object.freeze({ maxAgeDays: undefined, maxRuns: undefined }), writerNice: DEFAULT_WRITER_NICE })
  if (!isPlainObject(value)) {
    throw new ConfigError(path, `must be true, false or { enabled, resourceIntervalMs, db, retention, writerNice } (got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value})`)
  }
  const options = monitoringObject(value, path)
  if (options.enabled !== true) return undefined
  return Object.freeze({
    resourceIntervalMs: options.resourceIntervalMs ?? 1000,
    db: options.db,
    retention: Object.freeze({ maxAgeDays: options.retention?.maxAgeDays, maxRuns: options.retention?.maxRuns }),
    writerNice: options.writerNice ?? DEFAULT_WRITER_NICE,
  })
}

/** The database file of a run: the option's path, else `monitoring.db` beside the run directory. */
export function monitoringDbPath(monitoring: ResolvedMonitoring, runDir: string): string {
  return monitoring.db !== undefined ? resolve(monitoring.db) : join(dirname(resolve(runDir)), 'monitoring.db')
}

/** Record kinds: the first element of every record array. */
export const Rec = {
  /** [Rec.name, id, text]: interns a string; later records carry `id` */
  name: 0,
  /** [Rec.workflowStart, runName, runDir(text), executorsJson(text), timeMs] */
  workflowStart: 1,
  /** [Rec.workflowEnd, runName, countsJson(text), timeMs] */
  workflowEnd: 2,
  /** [Rec.taskState, runName, taskId, tryNumber, state(code), appName, executorName(-1 none), timeMs] */
  taskState: 3,
  /** [Rec.retry, runName, taskId, failedTry, cause(text), free(0|1), failCost, timeMs, stack(text|null)] */
  retry: 4,
  /** [Rec.depWait, runName, taskId, waitingOn(count), timeMs]: a task starts waiting for futures */
  depWait: 5,
  /** [Rec.block, runName, executorName, blockId(text), jobId(text|null), state(text), timeMs, reason(text|null)] */
  block: 6,
  /** [Rec.manager, runName, executorName, managerId(text), hostname(text), blockId(text|null), workers, event(text), timeMs, reason(text|null)] */
  manager: 7,
  /** [Rec.resource, runName, taskId, tryNumber, managerId(text), cpuUserS, cpuSystemS, rssBytes, readBytes, writeBytes, timeMs] */
  resource: 8,
  /**
   * [Rec.taskError, runName, taskId, tryNumber, error(text), stack(text|null), timeMs]: what a task
   * that ended `failed` or `dep_fail` failed with; `stack` is the remote stack with its causes.
   * For dep_fail, tryNumber is -1 (no try ran) and stack null (the root task's row has it).
   */
  taskError: 9,
} as const
export type RecKind = (typeof Rec)[keyof typeof Rec]

/** Numbers per packed state change: run, taskId, tryNumber, state code, app, executor (-1 none), timeMs. */
export const STATE_FIELDS = 7

/**
 * Numbers per packed task summary: run, taskId, tryNumber, state code, app, executor (-1 none),
 * submitMs, launchedMs, runningMs (-1 none), endMs (-1 none). The kernel's recorder sends a task
 * that launches and ends without anything unusual (nearly every task) as one summary at its end,
 * not as three state changes: the writer upserts its task row straight from it. A task still
 * going after a second is sent as a summary of its state then (a snapshot), and again at its end.
 */
export const SUMMARY_FIELDS = 10

/** Task states as small numbers on the wire; the database stores the names. */
export const STATE_CODES = ['unsched', 'pending', 'launched', 'running', 'joining', 'exec_done', 'memo_done', 'failed', 'dep_fail', 'cancelled'] as const
const CODE_OF: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(STATE_CODES.map((state, code) => [state, code])))
/** A state's code (-1 for no state): one property lookup, on the recorder's per-change path. */
export const stateCode = (state: string): number => CODE_OF[state] ?? -1

export type NameRecord = [typeof Rec.name, number, string]
export type WorkflowStartRecord = [typeof Rec.workflowStart, number, string, string, number]
export type WorkflowEndRecord = [typeof Rec.workflowEnd, number, string, number]
export type TaskStateRecord = [typeof Rec.taskState, number, number, number, number, number, number, number]
export type RetryRecord = [typeof Rec.retry, number, number, number, string, 0 | 1, number, number, (string | null)?]
export type DepWaitRecord = [typeof Rec.depWait, number, number, number, number]
export type BlockRecord = [typeof Rec.block, number, number, string, string | null, string, number, (string | null)?]
export type ManagerRecord = [typeof Rec.manager, number, number, string, string, string | null, number, string, number, (string | null)?]
export type ResourceRecord = [typeof Rec.resource, number, number, number, string, number, number, number, number, number, number]
export type TaskErrorRecord = [typeof Rec.taskError, number, number, number, string, string | null, number]
export type MonitoringRecord =
  | NameRecord
  | WorkflowStartRecord
  | WorkflowEndRecord
  | TaskStateRecord
  | RetryRecord
  | DepWaitRecord
  | BlockRecord
  | ManagerRecord
  | ResourceRecord
  | TaskErrorRecord

/** Source -> writer messages. */
export type ToWriter =
  /**
   * A batch. Task state changes, the bulk, travel packed in `states` (a transferred buffer,
   * STATE_FIELDS numbers each: the taskState record without its kind); the other records in
   * `records`, each with its place among the state changes in `at` (applied before state change
   * number `at[i]`), so the writer sees everything in the order it happened.
   */
  | {
      readonly t: 'batch'
      readonly seq: number
      readonly records: MonitoringRecord[]
      readonly at: number[]
      readonly states: Float64Array
      readonly stateCount: number
      /**
       * Task summaries (SUMMARY_FIELDS numbers each; a transferred buffer), applied before the
       * batch's records and state changes: a task's changes only follow its summaries.
       */
      readonly summaries?: Float64Array
      readonly summaryCount?: number
      readonly sentMs: number
    }
  /** write what was sent, close the database, answer `closed` */
  | { readonly t: 'close' }

/** Writer -> source messages. */
export type FromWriter =
  | { readonly t: 'ready'; readonly schemaVersion: number; readonly retentionDeleted: number }
  /** a batch was committed: `written` records so far in total; `lagMs` from its send to its commit */
  | { readonly t: 'written'; readonly seq: number; readonly written: number; readonly lagMs: number }
  | { readonly t: 'error'; readonly message: string }
  | { readonly t: 'closed'; readonly written: number }
  /**
   * A batch's packed buffers, transferred back once applied, for the source to fill again: a
   * flood of tasks then allocates (and zeroes, and makes the garbage collector count) no buffer
   * per batch.
   */
  | { readonly t: 'buffers'; readonly buffers: Float64Array[] }

/** What the writer thread is started with (its `workerData`). */
export interface WriterData {
  readonly db: string
  readonly retention: ResolvedMonitoring['retention']
  /** how often retention runs again while the writer lives (ms; an hour) */
  readonly retentionEveryMs: number
  /** the writer thread's nice value (0: unchanged) */
  readonly nice?: number
}

// ---------------------------------------------------------------------------------------------
// Executor -> kernel monitoring events (issue 12). Executors report what only they see (blocks,
// managers, per-task resource samples) through `ExecutorHost.monitor`; the kernel publishes them
// on its diagnostics channels (`tsflow:block`, `tsflow:manager`, `tsflow:task:resource`), where
// the monitoring recorder and any user subscriber pick them up. Remote processes (managers, the
// interchange) carry the same shapes in their messages.

/** A provider block's lifecycle, as the executor that scales it sees it. */
export const BLOCK_STATES = ['submitted', 'pending', 'running', 'finished', 'failed', 'cancelled'] as const
export type BlockState = (typeof BLOCK_STATES)[number]

export interface BlockEvent {
  /** the executor's label */
  readonly executor: string
  readonly blockId: string
  /** the provider's job id (Slurm job id, pid for LocalProvider...), once known */
  readonly jobId: string | undefined
  readonly state: BlockState
  /** why a block failed or was cancelled (the scheduler's reason, walltime, scale-in) */
  readonly reason?: string
  readonly timeMs: number
}

export const MANAGER_EVENTS = ['registered', 'lost', 'stopped'] as const
export type ManagerEventKind = (typeof MANAGER_EVENTS)[number]

export interface ManagerEvent {
  readonly executor: string
  readonly managerId: string
  readonly hostname: string
  readonly blockId: string | undefined
  readonly workers: number
  readonly event: ManagerEventKind
  /** why a manager was lost (missed heartbeats, its block ended...) */
  readonly reason?: string
  readonly timeMs: number
}

/**
 * One sample of one running task's resource use, taken by its manager from /proc (the worker
 * process, or the worker thread's /proc/<pid>/task/<tid>). Counters are cumulative for the try.
 */
export interface ResourceSample {
  /** the kernel's task id and try number */
  readonly taskId: number
  readonly tryNumber: number
  readonly managerId: string
  readonly hostname: string
  readonly timeMs: number
  readonly cpuUserS: number
  readonly cpuSystemS: number
  readonly rssBytes: number
  readonly readBytes: number
  readonly writeBytes: number
}

/** What the kernel hands every executor in `ExecutorHost.monitor`. Calls never throw and never block. */
export interface ExecutorMonitor {
  /**
   * How often managers sample their running tasks (ms); 0 when monitoring is off, and then an
   * executor samples nothing (block and manager events are still reported: they are rare).
   */
  readonly resourceIntervalMs: number
  block(event: BlockEvent): void
  manager(event: ManagerEvent): void
  /** a batch of samples (an executor forwards them as they arrive, never one call per task) */
  resources(executor: string, samples: readonly ResourceSample[]): void
}
