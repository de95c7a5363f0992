/**
 * The dashboard's SQL (docs/monitoring.md "Dashboard") for the workflow and task routes of
 * protocol/dashboard.ts (the chart views are in views.ts): index probes and single passes, never
 * a million task rows into JavaScript. Costs on a 1,000,000-task workflow: bench/dashboard-queries.ts.
 */
import type { StateCounts, TaskDetail, TaskPage, TaskQuery, TaskRow, TaskSortKey, WorkflowDetail, WorkflowSummary } from '../../protocol/dashboard.js'
import type { DashboardDb } from './db.js'

const FINAL_STATES = ['exec_done', 'memo_done', 'failed', 'dep_fail', 'cancelled'] as const
const FINAL_SQL = FINAL_STATES.map((s) => `'${s}'`).join(', ')
/** How far back from the newest status row a workflow's own newest row is looked for. */
const LAST_EVENT_SCAN = 200_000
const RATE_WINDOW_MS = 10_000

export const orUndefined = <T>(value: T | null | undefined): T | undefined => (value === null ? undefined : value)
const firstLine = (text: string | null | undefined): string | undefined => (text == null ? undefined : (text.split('\n', 1)[0] ?? text))

export interface WorkflowRow {
  run: number
  run_id: string
  run_dir: string
  executors: string
  start_ms: number
  end_ms: number | null
}

/** Facts of an ended workflow do not change: computed once per (run, runId). */
const endedFacts = new WeakMap<DashboardDb, Map<string, { counts: StateCounts; tasks: number; lastEventMs: number }>>()

export function rows<T>(d: DashboardDb, sql: string, ...params: unknown[]): T[] {
  return (d.statement(sql)?.all(...params) ?? []) as T[]
}
export function row<T>(d: DashboardDb, sql: string, ...params: unknown[]): T | undefined {
  return d.statement(sql)?.get(...params) as T | undefined
}

function countsOf(d: DashboardDb, run: number): { counts: Record<string, number>; tasks: number } {
  const counts: Record<string, number> = {}
  let tasks = 0
  for (const r of rows<{ state: string; n: number }>(d, 'SELECT state, count(*) AS n FROM task WHERE run = ? GROUP BY state', run)) {
    counts[r.state] = r.n
    tasks += r.n
  }
  return { counts, tasks }
}

/** The newest task's submission: ids are handed out at submission, so one primary-key probe (no submit_ms index since schema 3). */
const NEWEST_SUBMIT = 'SELECT submit_ms AS t FROM task WHERE run = ? ORDER BY task_id DESC LIMIT 1'

/**
 * The newest row's time: the workflow's start or end, its newest task submission, and the
 * writer's workflow.last_event_ms (schema 3) or, in older files, its newest status row among the
 * last LAST_EVENT_SCAN rows of the table (status rows are appended in arrival order, so a live
 * workflow's newest is near the end; `+run`: scan that rowid range, not the (run, ...) index).
 */
function lastEventOf(d: DashboardDb, w: WorkflowRow): number {
  if (d.columns().workflowProgress) {
    const p = row<{ t: number | null }>(d, 'SELECT last_event_ms AS t FROM workflow WHERE run = ?', w.run)?.t ?? 0
    const submitted = row<{ t: number | null }>(d, NEWEST_SUBMIT, w.run)?.t ?? 0
    return Math.max(w.start_ms, w.end_ms ?? 0, submitted, p)
  }
  const submitted = row<{ t: number | null }>(d, NEWEST_SUBMIT, w.run)?.t ?? null
  const status =
    row<{ t: number | null }>(
      d,
      'SELECT max(time_ms) AS t FROM status WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM status) - ? AND +run = ?',
      LAST_EVENT_SCAN,
      w.run,
    )?.t ?? null
  return Math.max(w.start_ms, w.end_ms ?? 0, submitted ?? 0, status ?? 0)
}

function summaryOf(d: DashboardDb, w: WorkflowRow): WorkflowSummary {
  let facts: { counts: StateCounts; tasks: number; lastEventMs: number } | undefined
  const key = `${w.run} ${w.run_id}`
  let cache = endedFacts.get(d)
  if (!cache) endedFacts.set(d, (cache = new Map()))
  if (w.end_ms !== null) facts = cache.get(key)
  if (!facts) {
    facts = { ...countsOf(d, w.run), lastEventMs: lastEventOf(d, w) }
    if (w.end_ms !== null) cache.set(key, facts)
  }
  let executors: string[] = []
  try {
    executors = JSON.parse(w.executors) as string[]
  } catch {
    // a hand-edited row: show none rather than fail the list
  }
  return {
    run: w.run,
    runId: w.run_id,
    runDir: w.run_dir,
    executors,
    startMs: w.start_ms,
    endMs: orUndefined(w.end_ms),
    tasks: facts.tasks,
    counts: facts.counts,
    lastEventMs: facts.lastEventMs,
  }
}

const WORKFLOW_COLUMNS = 'run, run_id, run_dir, executors, start_ms, end_ms'

export function workflowSummaries(d: DashboardDb): WorkflowSummary[] {
  return rows<WorkflowRow>(d, `SELECT ${WORKFLOW_COLUMNS} FROM workflow ORDER BY start_ms DESC, run DESC`).map((w) => summaryOf(d, w))
}

export function workflowRow(d: DashboardDb, run: number): WorkflowRow | undefined {
  return row<WorkflowRow>(d, `SELECT ${WORKFLOW_COLUMNS} FROM workflow WHERE run = ?`, run)
}

/** The first status rowid whose time is at or after `timeMs` (binary search: rowid follows arrival, hence time). */
function firstStatusRowAt(d: DashboardDb, timeMs: number): number {
  const bounds = row<{ lo: number | null; hi: number | null }>(d, 'SELECT min(rowid) AS lo, max(rowid) AS hi FROM status')
  let lo = bounds?.lo ?? 0
  let hi = (bounds?.hi ?? 0) + 1
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    const at = row<{ t: number }>(d, 'SELECT time_ms AS t FROM status WHERE rowid >= ? ORDER BY rowid LIMIT 1', mid)
    if (at === undefined || at.t >= timeMs) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** Per database and run: (time, tasks ended) as the detail was asked for, over the rate window. */
const rateSamples = new WeakMap<DashboardDb, Map<number, { atMs: number; ended: number }[]>>()

/**
 * Tasks ended per second over the last RATE_WINDOW_MS, from the writer's running count
 * (workflow.tasks_ended) sampled whenever the detail is asked for (the live page asks on every
 * change); until a sample is a second old, the run's average so far.
 */
function rateOf(d: DashboardDb, run: number, ended: number, lastEventMs: number, startMs: number, nowMs = Date.now()): number {
  let byRun = rateSamples.get(d)
  if (!byRun) rateSamples.set(d, (byRun = new Map()))
  let samples = byRun.get(run)
  if (!samples) byRun.set(run, (samples = []))
  samples.push({ atMs: nowMs, ended })
  while (samples.length > 2 && nowMs - samples[1]!.atMs >= RATE_WINDOW_MS) samples.shift()
  const first = samples[0]!
  if (nowMs - first.atMs >= 1000) return (ended - first.ended) / ((nowMs - first.atMs) / 1000)
  const spanMs = lastEventMs - startMs
  return spanMs > 0 ? ended / (spanMs / 1000) : 0
}

/** `undefined` when there is no such workflow. */
export function workflowDetail(d: DashboardDb, run: number): WorkflowDetail | undefined {
  const w = workflowRow(d, run)
  if (!w) return undefined
  const summary = summaryOf(d, w)
  // Schema 4 lists a workflow's apps in the app table; before, distinct apps by skipping through
  // the (run, app) index: one probe per app, not a scan.
  const apps = d.columns().latestTryInTask
    ? rows<{ app: string }>(d, 'SELECT app FROM app WHERE run = ? ORDER BY app', run).map((r) => r.app)
    : rows<{ app: string }>(
        d,
        `WITH RECURSIVE a(app) AS (SELECT min(app) FROM task WHERE run = @run
       UNION ALL SELECT (SELECT min(app) FROM task WHERE run = @run AND app > a.app) FROM a WHERE a.app IS NOT NULL)
     SELECT app FROM a WHERE app IS NOT NULL`,
        { run },
      ).map((r) => r.app)
  let recentRate = 0
  if (w.end_ms === null && d.columns().workflowProgress) {
    const ended = row<{ n: number }>(d, 'SELECT tasks_ended AS n FROM workflow WHERE run = ?', run)?.n ?? 0
    recentRate = rateOf(d, run, ended, summary.lastEventMs, w.start_ms)
  } else if (w.end_ms === null) {
    const windowMs = Math.max(1000, Math.min(RATE_WINDOW_MS, summary.lastEventMs - w.start_ms))
    const from = firstStatusRowAt(d, summary.lastEventMs - windowMs)
    const ended = row<{ n: number }>(d, `SELECT count(*) AS n FROM status WHERE rowid >= ? AND +run = ? AND state IN (${FINAL_SQL})`, from, run)?.n ?? 0
    recentRate = ended / (windowMs / 1000)
  }
  return { ...summary, apps, failed: (summary.counts.failed ?? 0) + (summary.counts.dep_fail ?? 0), recentRate }
}

const SORT_SQL: Record<TaskSortKey, { expr: string; nullable: boolean }> = {
  task_id: { expr: 't.task_id', nullable: false },
  app: { expr: 't.app', nullable: false },
  state: { expr: 't.state', nullable: false },
  executor: { expr: 't.executor', nullable: true },
  // ids are handed out at submission: the primary key's order is submit order (no index on submit_ms)
  submit_ms: { expr: 't.task_id', nullable: false },
  end_ms: { expr: 't.end_ms', nullable: true },
  duration: { expr: '(t.end_ms - t.submit_ms)', nullable: true },
}

/** The error column of task rows: the task's own when the schema has it, else the last retry cause. */
function errorExpr(d: DashboardDb, alias: string): string {
  return d.columns().taskError
    ? `${alias}.error`
    : `CASE WHEN ${alias}.state IN ('failed', 'dep_fail') THEN (SELECT y.fail_cause FROM try y WHERE y.run = ${alias}.run AND y.task_id = ${alias}.task_id AND y.fail_cause IS NOT NULL ORDER BY y.try_number DESC LIMIT 1) END`
}

interface TaskSqlRow {
  task_id: number
  app: string
  executor: string | null
  state: string
  last_try: number
  submit_ms: number
  end_ms: number | null
  error: string | null
}

function taskRow(r: TaskSqlRow): TaskRow {
  return {
    taskId: r.task_id,
    app: r.app,
    executor: orUndefined(r.executor),
    state: r.state,
    lastTry: r.last_try,
    submitMs: r.submit_ms,
    endMs: orUndefined(r.end_ms),
    durationMs: r.end_ms === null ? undefined : r.end_ms - r.submit_ms,
    error: firstLine(r.error),
  }
}

/** Query values are checked by the server (names, ranges) before they get here. */
export function taskPage(d: DashboardDb, run: number, query: Required<Pick<TaskQuery, 'sort' | 'order' | 'offset' | 'limit'>> & TaskQuery): TaskPage {
  const where = ['t.run = ?']
  const params: unknown[] = [run]
  for (const column of ['app', 'state', 'executor'] as const) {
    const value = query[column]
    if (value !== undefined) {
      where.push(`t.${column} = ?`)
      params.push(value)
    }
  }
  const whereSql = where.join(' AND ')
  const total = row<{ n: number }>(d, `SELECT count(*) AS n FROM task t WHERE ${whereSql}`, ...params)?.n ?? 0
  const sort = SORT_SQL[query.sort]
  const dir = query.order === 'desc' ? 'DESC' : 'ASC'
  // Tasks without an end (or executor) sort after the others either way; ties by task id.
  const order = `${sort.expr} ${dir}${sort.nullable ? ' NULLS LAST' : ''}${sort.expr === 't.task_id' ? '' : `, t.task_id ${dir}`}`
  const tasks = rows<TaskSqlRow>(
    d,
    `SELECT t.task_id, t.app, t.executor, t.state, t.last_try, t.submit_ms, t.end_ms, ${errorExpr(d, 't')} AS error
     FROM task t WHERE ${whereSql} ORDER BY ${order} LIMIT ? OFFSET ?`,
    ...params,
    query.limit,
    query.offset,
  ).map(taskRow)
  return { total, offset: query.offset, limit: query.limit, tasks }
}

export function taskDetail(d: DashboardDb, run: number, taskId: number): TaskDetail | undefined {
  const { taskError } = d.columns()
  const r = row<TaskSqlRow & { error_stack: string | null }>(
    d,
    `SELECT t.task_id, t.app, t.executor, t.state, t.last_try, t.submit_ms, t.end_ms, ${errorExpr(d, 't')} AS error,
       ${taskError ? 't.error_stack' : 'NULL'} AS error_stack
     FROM task t WHERE t.run = ? AND t.task_id = ?`,
    run,
    taskId,
  )
  if (!r) return undefined
  const task = taskRow(r)
  const failed = r.state === 'failed' || r.state === 'dep_fail'
  const tries = rows<{ try_number: number; executor: string | null; state: string; launched_ms: number | null; running_ms: number | null; end_ms: number | null; fail_cause: string | null; fail_stack: string | null }>(
    d,
    `SELECT try_number, executor, state, launched_ms, running_ms, end_ms, fail_cause, ${d.columns().tryStack ? 'fail_stack' : 'NULL'} AS fail_stack
     FROM try WHERE run = ? AND task_id = ? ORDER BY try_number`,
    run,
    taskId,
  ).map((y) => ({
    tryNumber: y.try_number,
    executor: orUndefined(y.executor),
    state: y.state,
    launchedMs: orUndefined(y.launched_ms),
    runningMs: orUndefined(y.running_ms),
    endMs: orUndefined(y.end_ms),
    // the last try of a failed task failed with the task's error
    failCause: orUndefined(y.fail_cause) ?? (failed && y.try_number === r.last_try ? orUndefined(r.error) : undefined),
    ...(y.fail_stack === null ? {} : { failStack: y.fail_stack }),
  }))
  const statuses = rows<{ try_number: number; state: string; time_ms: number }>(
    d,
    d.columns().taskHistory
      ? 'SELECT try_number, state, time_ms FROM task_history WHERE run = ? AND task_id = ? ORDER BY time_ms, try_number, step'
      : 'SELECT try_number, state, time_ms FROM status WHERE run = ? AND task_id = ? ORDER BY time_ms, rowid',
    run,
    taskId,
  ).map((s) => ({ tryNumber: s.try_number, state: s.state, timeMs: s.time_ms }))
  const resources = rows<{ try_number: number; manager_id: string; time_ms: number; cpu_user_s: number; cpu_system_s: number; rss_bytes: number; read_bytes: number; write_bytes: number }>(
    d,
    'SELECT try_number, manager_id, time_ms, cpu_user_s, cpu_system_s, rss_bytes, read_bytes, write_bytes FROM resource WHERE run = ? AND task_id = ? ORDER BY time_ms',
    run,
    taskId,
  ).map((s) => ({
    tryNumber: s.try_number,
    managerId: s.manager_id,
    timeMs: s.time_ms,
    cpuUserS: s.cpu_user_s,
    cpuSystemS: s.cpu_system_s,
    rssBytes: s.rss_bytes,
    readBytes: s.read_bytes,
    writeBytes: s.write_bytes,
  }))
  return { task, error: orUndefined(r.error), errorStack: orUndefined(r.error_stack), tries, statuses, resources }
}
