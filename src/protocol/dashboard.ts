/**
 * The dashboard boundary (issue 12, docs/monitoring.md "Dashboard"): the HTTP API that
 * `tsflow monitor` serves to its web page (and to anyone's scripts: it is plain JSON), read from
 * the monitoring database. One spec for the server (`src/monitoring/dashboard/`) and the page
 * (`src/monitoring/dashboard/web/`): routes, query parameters with their defaults and limits, and
 * the response shapes. Times are ms since the epoch; durations are ms.
 *
 * Routes (GET; HEAD too):
 *   /                                         the page
 *   /static/<file>                            the page's script and style, vega and vega-lite builds
 *   /api/workflows                            WorkflowList
 *   /api/workflows/<run>                      WorkflowDetail
 *   /api/workflows/<run>/tasks?<TaskQuery>    TaskPage
 *   /api/workflows/<run>/tasks/<taskId>       TaskDetail
 *   /api/workflows/<run>/gantt?limit=N        Gantt
 *   /api/workflows/<run>/states?buckets=N     StatesOverTime
 *   /api/workflows/<run>/apps                 AppSummaries
 *   /api/workflows/<run>/infrastructure       Infrastructure (blocks and managers with lifetimes)
 *   /api/workflows/<run>/resources?limit=N&buckets=N
 *                                             Resources (per task and per node)
 *   /api/events[?run=<run>]                   server-sent events: `workflows` (WorkflowList) and,
 *                                             with `run`, `workflow` (WorkflowDetail) whenever the
 *                                             database changed; a comment line every 15 s
 *   /metrics                                  Prometheus text format (tsflow_dashboard_* metrics)
 * Errors are JSON `{ error: string }` with 400 (a bad parameter, named; an unknown parameter is
 * one too), 404 (no such workflow, task or route), 405 (not GET/HEAD) or 500. A parameter given
 * empty (`state=`) counts as absent. The page is also served at `/workflows/<run>` and
 * `/workflows/<run>/tasks/<taskId>` so that a page using history URLs survives a reload.
 */

import type { ResourceSample } from './monitoring.js'

/** `<run>` in the routes: the workflow's integer key (`workflow.run` in the schema). */
export type RunKey = number

/** How often the server looks for new rows to push as events (ms). */
export const DASHBOARD_POLL_MS = 500
/** The keep-alive comment interval of the event stream (ms). */
export const DASHBOARD_KEEPALIVE_MS = 15_000

/** Tasks per final and live state; states as the schema stores them (`STATE_CODES`). */
export type StateCounts = Readonly<Record<string, number>>

export interface WorkflowSummary {
  readonly run: RunKey
  readonly runId: string
  readonly runDir: string
  readonly executors: readonly string[]
  readonly startMs: number
  /** undefined while running (or when the process died without an end record) */
  readonly endMs: number | undefined
  readonly tasks: number
  readonly counts: StateCounts
  /** the newest row's time for this workflow: a live page shows how fresh it is */
  readonly lastEventMs: number
}

export interface WorkflowList {
  readonly workflows: readonly WorkflowSummary[]
  /** the database file being served */
  readonly db: string
}

export interface WorkflowDetail extends WorkflowSummary {
  readonly apps: readonly string[]
  /** failed and dep_fail tasks */
  readonly failed: number
  /** tasks per second over the last 10 s of rows (0 when ended) */
  readonly recentRate: number
}

export const TASK_SORT_KEYS = ['task_id', 'app', 'state', 'executor', 'submit_ms', 'end_ms', 'duration'] as const
export type TaskSortKey = (typeof TASK_SORT_KEYS)[number]
export const TASK_PAGE_DEFAULT = 50
export const TASK_PAGE_MAX = 1000

/** `/tasks` query parameters; every one optional. */
export interface TaskQuery {
  readonly app?: string
  readonly state?: string
  readonly executor?: string
  /** default task_id */
  readonly sort?: TaskSortKey
  /** default asc */
  readonly order?: 'asc' | 'desc'
  /** default 0 */
  readonly offset?: number
  /** default TASK_PAGE_DEFAULT, at most TASK_PAGE_MAX */
  readonly limit?: number
}

export interface TaskRow {
  readonly taskId: number
  readonly app: string
  readonly executor: string | undefined
  readonly state: string
  readonly lastTry: number
  readonly submitMs: number
  readonly endMs: number | undefined
  /** end - submit, when ended */
  readonly durationMs: number | undefined
  /** first line of the error, for failed tasks */
  readonly error: string | undefined
}

export interface TaskPage {
  /** rows matching the filters (all pages) */
  readonly total: number
  readonly offset: number
  readonly limit: number
  readonly tasks: readonly TaskRow[]
}

export interface TryRow {
  readonly tryNumber: number
  readonly executor: string | undefined
  readonly state: string
  readonly launchedMs: number | undefined
  readonly runningMs: number | undefined
  readonly endMs: number | undefined
  /** why this try failed (the retry's cause, or the task's error for the last try) */
  readonly failCause: string | undefined
  /** the stack from where that try ran, when the database has it (schema 2 on) */
  readonly failStack?: string
}

export interface StatusRow {
  readonly tryNumber: number
  readonly state: string
  readonly timeMs: number
}

/** A task's resource sample as stored: the manager's sample without the ids the route already names. */
export type ResourceRow = Omit<ResourceSample, 'taskId' | 'hostname'>

export interface TaskDetail {
  readonly task: TaskRow
  /** the whole error: message, and the remote stack where the task ran */
  readonly error: string | undefined
  readonly errorStack: string | undefined
  readonly tries: readonly TryRow[]
  readonly statuses: readonly StatusRow[]
  readonly resources: readonly ResourceRow[]
}

export const GANTT_DEFAULT = 2000
export const GANTT_MAX = 20_000

/** One bar per task (launched .. end, running from runningMs); a run with more tasks is sampled evenly by task id. */
export interface Gantt {
  readonly total: number
  readonly sampled: boolean
  readonly bars: readonly {
    readonly taskId: number
    readonly app: string
    readonly executor: string | undefined
    readonly state: string
    readonly submitMs: number
    readonly launchedMs: number | undefined
    readonly runningMs: number | undefined
    readonly endMs: number | undefined
  }[]
}

export const STATE_BUCKETS_DEFAULT = 100
export const STATE_BUCKETS_MAX = 1000

/** Tasks in each state at `buckets` evenly spaced times from the start to the end (or now). */
export interface StatesOverTime {
  /** set when the workflow has more than 20,000 tasks: counted on every k-th task id, counts scaled by k */
  readonly sampleEvery?: number
  readonly startMs: number
  readonly endMs: number
  readonly points: readonly { readonly timeMs: number; readonly state: string; readonly tasks: number }[]
}

export interface AppSummary {
  readonly app: string
  readonly tasks: number
  readonly done: number
  readonly failed: number
  /** durations (end - submit) of ended tasks, ms; undefined when none ended */
  readonly meanMs: number | undefined
  readonly medianMs: number | undefined
  readonly p95Ms: number | undefined
  readonly maxMs: number | undefined
}

export interface AppSummaries {
  /**
   * set when the workflow has more than 20,000 tasks: `tasks` stays exact, the rest is estimated
   * from every k-th task id (done and failed scaled to the app's count)
   */
  readonly sampleEvery?: number
  readonly apps: readonly AppSummary[]
}

export interface BlockLifetime {
  readonly executor: string
  readonly blockId: string
  readonly jobId: string | undefined
  /** the latest state (`BLOCK_STATES`) */
  readonly state: string
  readonly submittedMs: number | undefined
  readonly runningMs: number | undefined
  readonly endMs: number | undefined
  readonly reason: string | undefined
}

export interface ManagerLifetime {
  readonly executor: string
  readonly managerId: string
  readonly hostname: string
  readonly blockId: string | undefined
  readonly workers: number
  readonly registeredMs: number | undefined
  readonly endMs: number | undefined
  /** registered, lost or stopped */
  readonly event: string
  readonly reason: string | undefined
}

export interface Infrastructure {
  readonly blocks: readonly BlockLifetime[]
  readonly managers: readonly ManagerLifetime[]
}

export const RESOURCE_TASKS_DEFAULT = 1000
export const RESOURCE_TASKS_MAX = 20_000

/** `/resources?limit=N&buckets=N`: `limit` task tries (most CPU first), node series in `buckets` (STATE_BUCKETS_*). */
export interface Resources {
  /** task tries with samples in all (`tasks` holds at most `limit` of them) */
  readonly sampledTasks?: number
  /** per task: the last sample of each try (cumulative counters) and the peak RSS */
  readonly tasks: readonly { readonly taskId: number; readonly tryNumber: number; readonly app: string; readonly cpuS: number; readonly peakRssBytes: number; readonly readBytes: number; readonly writeBytes: number }[]
  /**
   * per node (hostname) over time, in buckets: `cpuS` the CPU seconds its tasks used in the
   * bucket, `rssBytes` the mean over the bucket's sample times of its tasks' summed RSS
   */
  readonly nodes: readonly { readonly hostname: string; readonly timeMs: number; readonly cpuS: number; readonly rssBytes: number }[]
}
