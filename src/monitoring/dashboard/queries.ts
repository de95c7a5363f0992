/**
 * The dashboard's SQL (docs/monitoring.md "Dashboard"): one function per route of
 * protocol/dashboard.ts, each answering from indexes or one pass over a workflow's rows, never
 * loading a million task rows into JavaScript. What each costs on a 1,000,000-task workflow is
 * measured by bench/dashboard-queries.ts.
 */
import { STATE_CODES } from '../../protocol/monitoring.js'
import type {
  AppSummaries,
  AppSummary,
  BlockLifetime,
  Gantt,
  Infrastructure,
  ManagerLifetime,
  Resources,
  StateCounts,
  StatesOverTime,
  TaskDetail,
  TaskPage,
  TaskQuery,
  TaskRow,
  TaskSortKey,
  WorkflowDetail,
  WorkflowSummary,
} from '../../protocol/dashboard.js'
import type { DashboardDb } from './db.js'

const FINAL_STATES = ['exec_done', 'memo_done', 'failed', 'dep_fail', 'cancelled'] as const
const FINAL_SQL = FINAL_STATES.map((s) => `'${s}'`).join(', ')
/** How far back from the newest status row a workflow's own newest row is looked for. */
const LAST_EVENT_SCAN = 200_000
const RATE_WINDOW_MS = 10_000

const orUndefined = <T>(value: T | null | undefined): T | undefined => (value === null ? undefined : value)
const firstLine = (text: string | null | undefined): string | undefined => (text == null ? undefined : (text.split('\n', 1)[0] ?? text))

interface WorkflowRow {
  run: number
  run_id: string
  run_dir: string
  executors: string
  start_ms: number
  end_ms: number | null
}

/** Facts of an ended workflow do not change: computed once per (run, runId). */
const endedFacts = new WeakMap<DashboardDb, Map<string, { counts: StateCounts; tasks: number; lastEventMs: number }>>()

function rows<T>(d: DashboardDb, sql: string, ...params: unknown[]): T[] {
  return (d.statement(sql)?.all(...params) ?? []) as T[]
}
function row<T>(d: DashboardDb, sql: string, ...params: unknown[]): T | undefined {
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

/**
 * The newest row's time: the workflow's start or end, its newest task submission (an index
 * probe), and its newest status row among the last LAST_EVENT_SCAN rows of the table (status rows
 * are appended in arrival order, so a live workflow's newest is near the end). `+run`: scan that
 * rowid range, not the workflow's entries of the (run, ...) index.
 */
function lastEventOf(d: DashboardDb, w: WorkflowRow): number {
  if (d.columns().workflowProgress) {
    const p = row<{ t: number | null }>(d, 'SELECT last_event_ms AS t FROM workflow WHERE run = ?', w.run)?.t ?? 0
    const submitted = row<{ t: number | null }>(d, 'SELECT max(submit_ms) AS t FROM task WHERE run = ?', w.run)?.t ?? 0
    return Math.max(w.start_ms, w.end_ms ?? 0, submitted, p)
  }
  const submitted = row<{ t: number | null }>(d, 'SELECT max(submit_ms) AS t FROM task WHERE run = ?', w.run)?.t ?? null
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

function workflowRow(d: DashboardDb, run: number): WorkflowRow | undefined {
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
  // Distinct apps by skipping through the (run, app) index: one probe per app, not a scan.
  const apps = rows<{ app: string }>(
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

/**
 * Views over every task of a workflow (states over time, per-app durations) read one task id in
 * k when a workflow has more than SAMPLE_TASKS tasks, and scale counts by k: a workflow's ids are
 * dense and assigned in submission order, so the sample is spread evenly over time.
 */
export const SAMPLE_TASKS = 20_000

/** The first and last task id: two primary-key probes (min and max in one query would scan). */
function idRange(d: DashboardDb, run: number): { lo: number | undefined; hi: number | undefined } {
  const lo = row<{ v: number | null }>(d, 'SELECT min(task_id) AS v FROM task WHERE run = ?', run)?.v ?? undefined
  const hi = row<{ v: number | null }>(d, 'SELECT max(task_id) AS v FROM task WHERE run = ?', run)?.v ?? undefined
  return { lo, hi }
}

/** One task id in k (k = 1 up to SAMPLE_TASKS tasks), from the first id to the last. */
function sampleOf(d: DashboardDb, run: number): { k: number; lo: number; hi: number } {
  const { lo, hi } = idRange(d, run)
  if (lo === undefined || hi === undefined) return { k: 1, lo: 0, hi: -1 }
  return { k: Math.max(1, Math.ceil((hi - lo + 1) / SAMPLE_TASKS)), lo, hi }
}

/**
 * The sampled tasks (`st`) and their tries (`sy`), found by primary key from a list of ids: about
 * SAMPLE_TASKS lookups however large the workflow, not a scan of its rows. One id from each run of
 * k ids, at an offset that varies (a multiplicative hash of the run's number): a plain stride
 * would alias with a workflow that submits its apps in a repeating pattern (every k-th task the
 * same app).
 */
const SAMPLED_CTE = `ids(i, id) AS (SELECT 0, @lo WHERE @lo <= @hi
    UNION ALL SELECT i + 1, @lo + (i + 1) * @k + ((i + 1) * 2654435761) % @k FROM ids WHERE @lo + (i + 1) * @k <= @hi),
  st AS MATERIALIZED (SELECT t.task_id, t.app, t.state, t.last_try, t.submit_ms, t.end_ms FROM ids CROSS JOIN task t ON t.run = @run AND t.task_id = ids.id),
  sy AS MATERIALIZED (SELECT y.task_id, y.try_number, y.state, y.launched_ms, y.running_ms, y.end_ms FROM ids CROSS JOIN try y ON y.run = @run AND y.task_id = ids.id)`

/**
 * The bucket of an event at time x: the first sample time (@start + k * @step) at or after it.
 * CAST: better-sqlite3 binds JS numbers as REAL, and REAL division does not truncate.
 */
const bucketSql = (x: string) => `min(@last, CASE WHEN ${x} <= @start THEN 0 ELSE CAST((${x} - @start + @step - 1) / @step AS INTEGER) END)`

const GANTT_COLUMNS = `t.task_id, t.app, t.executor, t.state, t.submit_ms, y.launched_ms, y.running_ms, t.end_ms
  FROM task t LEFT JOIN try y ON y.run = t.run AND y.task_id = t.task_id AND y.try_number = t.last_try`

/**
 * All bars when there are at most `limit` tasks; else `limit` task ids spread evenly from the
 * first to the last, each found by its primary key (a workflow's ids are dense, so each exists;
 * CROSS JOIN keeps the id list outside, else SQLite may scan the tasks once per id).
 */
export function gantt(d: DashboardDb, run: number, limit: number): Gantt {
  const total = row<{ n: number }>(d, 'SELECT count(*) AS n FROM task WHERE run = ?', run)?.n ?? 0
  type Bar = { task_id: number; app: string; executor: string | null; state: string; submit_ms: number; launched_ms: number | null; running_ms: number | null; end_ms: number | null }
  let bars: Bar[]
  if (total <= limit) bars = rows<Bar>(d, `SELECT ${GANTT_COLUMNS} WHERE t.run = ? ORDER BY t.task_id`, run)
  else {
    const ids = idRange(d, run)
    const lo = ids.lo!
    const span = ids.hi! - lo
    bars = rows<Bar>(
      d,
      `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < @limit - 1)
       SELECT ${GANTT_COLUMNS.replace('FROM task t', 'FROM s CROSS JOIN task t ON t.run = @run AND t.task_id = @lo + CAST(s.i * @span / (@limit - 1) AS INTEGER)')}
       ORDER BY t.task_id`,
      { run, limit, lo, span },
    )
  }
  return {
    total,
    sampled: total > limit,
    bars: bars.map((b) => ({
      taskId: b.task_id,
      app: b.app,
      executor: orUndefined(b.executor),
      state: b.state,
      submitMs: b.submit_ms,
      launchedMs: orUndefined(b.launched_ms),
      runningMs: orUndefined(b.running_ms),
      endMs: orUndefined(b.end_ms),
    })),
  }
}

/**
 * Tasks per state at `buckets` times, from the task and try tables' times with the counting done
 * in SQL: every task enters `pending` at its submission (unsched and pending are one state here)
 * and its final state at its end; every try moves pending -> launched -> running at its times,
 * leaves the state it reached at its end, and a retried try returns its task to pending; a task
 * that ended without a try (dep_fail, memo_done) leaves pending at its end. Each change is a +1/-1 in the bucket of its time; the running sums are the counts.
 */
export function statesOverTime(d: DashboardDb, run: number, buckets: number, nowMs = Date.now()): StatesOverTime | undefined {
  const w = workflowRow(d, run)
  if (!w) return undefined
  const startMs = w.start_ms
  const endMs = Math.max(startMs, w.end_ms ?? nowMs)
  const step = Math.max(1, Math.ceil((endMs - startMs) / Math.max(1, buckets - 1)))
  const b = (x: string) => bucketSql(x)
  const { k, lo, hi } = sampleOf(d, run)
  const deltas = rows<{ b: number; state: string; d: number }>(
    d,
    `WITH RECURSIVE ${SAMPLED_CTE}
     SELECT b, state, sum(d) AS d FROM (
       SELECT ${b('submit_ms')} AS b, 'pending' AS state, 1 AS d FROM st
       UNION ALL SELECT ${b('end_ms')}, state, 1 FROM st WHERE end_ms IS NOT NULL
       UNION ALL SELECT ${b('st.end_ms')}, 'pending', -1 FROM st WHERE st.end_ms IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM try y WHERE y.run = @run AND y.task_id = st.task_id)
       UNION ALL SELECT ${b('launched_ms')}, 'pending', -1 FROM sy WHERE launched_ms IS NOT NULL
       UNION ALL SELECT ${b('launched_ms')}, 'launched', 1 FROM sy WHERE launched_ms IS NOT NULL
       UNION ALL SELECT ${b('running_ms')}, 'launched', -1 FROM sy WHERE running_ms IS NOT NULL AND launched_ms IS NOT NULL
       UNION ALL SELECT ${b('running_ms')}, 'running', 1 FROM sy WHERE running_ms IS NOT NULL
       UNION ALL SELECT ${b('end_ms')}, CASE WHEN running_ms IS NOT NULL THEN 'running' WHEN launched_ms IS NOT NULL THEN 'launched' ELSE 'pending' END, -1
         FROM sy WHERE end_ms IS NOT NULL
       UNION ALL SELECT ${b('sy.end_ms')}, 'pending', 1 FROM sy WHERE sy.end_ms IS NOT NULL AND sy.state = 'failed'
         AND sy.try_number < (SELECT t.last_try FROM task t WHERE t.run = @run AND t.task_id = sy.task_id)
     ) GROUP BY b, state`,
    { start: startMs, step, last: buckets - 1, run, k, lo, hi },
  )
  const present = new Set(deltas.map((r) => r.state))
  // Live states first, then final states, each in the schema's order: a stable stacking order.
  const states = STATE_CODES.filter((s) => present.has(s) || s === 'pending')
  const byBucket = new Map<string, number>()
  for (const r of deltas) byBucket.set(`${r.b} ${r.state}`, r.d)
  const running = new Map<string, number>(states.map((s) => [s, 0]))
  const points: { timeMs: number; state: string; tasks: number }[] = []
  for (let i = 0; i < buckets; i++) {
    for (const state of states) {
      const now = running.get(state)! + (byBucket.get(`${i} ${state}`) ?? 0)
      running.set(state, now)
      points.push({ timeMs: Math.min(startMs + i * step, endMs), state, tasks: Math.max(0, now) * k })
    }
  }
  return { startMs, endMs, points, ...(k > 1 ? { sampleEvery: k } : {}) }
}

/**
 * Per app: counts from the (run, app) index, and the exact median and p95 (nearest rank) of its
 * ended tasks' durations from one sort of the workflow's ended tasks by (app, duration) with
 * window functions, returning two rows per app rather than the durations.
 */
export function appSummaries(d: DashboardDb, run: number): AppSummaries {
  const { k, lo, hi } = sampleOf(d, run)
  // exact task counts per app from the (run, app) index, in its order: no sort
  const counts = new Map(rows<{ app: string; n: number }>(d, 'SELECT app, count(*) AS n FROM task WHERE run = ? GROUP BY app', run).map((r) => [r.app, r.n]))
  const base = rows<{ app: string; tasks: number; done: number; failed: number; ended: number; mean: number | null; max: number | null }>(
    d,
    `WITH RECURSIVE ${SAMPLED_CTE.slice(0, SAMPLED_CTE.indexOf(',\n  sy AS'))}
     SELECT app, count(*) AS tasks,
       sum(state IN ('exec_done', 'memo_done')) AS done, sum(state IN ('failed', 'dep_fail')) AS failed,
       count(end_ms) AS ended, avg(end_ms - submit_ms) AS mean, max(end_ms - submit_ms) AS max
     FROM st GROUP BY app ORDER BY app`,
    { run, k, lo, hi },
  )
  const ranks = rows<{ app: string; rn: number; n: number; duration: number }>(
    d,
    `WITH RECURSIVE ${SAMPLED_CTE.slice(0, SAMPLED_CTE.indexOf(',\n  sy AS'))}
     SELECT app, rn, n, duration FROM (
       SELECT app, end_ms - submit_ms AS duration,
         row_number() OVER (PARTITION BY app ORDER BY end_ms - submit_ms) AS rn, count(*) OVER (PARTITION BY app) AS n
       FROM st WHERE end_ms IS NOT NULL)
     WHERE rn = (n + 1) / 2 OR rn = (95 * n + 99) / 100`,
    { run, k, lo, hi },
  )
  const quantiles = new Map<string, { median?: number; p95?: number }>()
  for (const r of ranks) {
    const q = quantiles.get(r.app) ?? {}
    if (r.rn === Math.floor((r.n + 1) / 2)) q.median = r.duration
    if (r.rn === Math.floor((95 * r.n + 99) / 100)) q.p95 = r.duration
    quantiles.set(r.app, q)
  }
  const sampled = new Map(base.map((a) => [a.app, a]))
  // Apps the sample missed (fewer than k tasks) still appear, with their exact count.
  const apps: AppSummary[] = [...counts.keys()].sort().map((app) => {
    const a = sampled.get(app) ?? { app, tasks: 0, done: 0, failed: 0, ended: 0, mean: null, max: null }
    const scale = k > 1 && a.tasks > 0 ? counts.get(app)! / a.tasks : 1
    return {
      app,
      tasks: counts.get(app)!,
      done: Math.round(a.done * scale),
      failed: Math.round(a.failed * scale),
      meanMs: orUndefined(a.mean),
      medianMs: quantiles.get(app)?.median,
      p95Ms: quantiles.get(app)?.p95,
      maxMs: orUndefined(a.max),
    }
  })
  return { apps, ...(k > 1 ? { sampleEvery: k } : {}) }
}

const BLOCK_ENDS = new Set(['finished', 'failed', 'cancelled'])

/** Blocks and managers are few (one row per change): read in index order and folded per block and manager. */
export function infrastructure(d: DashboardDb, run: number): Infrastructure {
  const { blockReason, nodeReason } = d.columns()
  const blocks = new Map<string, { -readonly [K in keyof BlockLifetime]: BlockLifetime[K] }>()
  for (const r of rows<{ executor: string; block_id: string; job_id: string | null; state: string; time_ms: number; reason: string | null }>(
    d,
    `SELECT executor, block_id, job_id, state, time_ms, ${blockReason ? 'reason' : 'NULL'} AS reason FROM block WHERE run = ? ORDER BY executor, block_id, time_ms`,
    run,
  )) {
    const key = `${r.executor}\n${r.block_id}`
    let b = blocks.get(key)
    if (!b) blocks.set(key, (b = { executor: r.executor, blockId: r.block_id, jobId: undefined, state: r.state, submittedMs: undefined, runningMs: undefined, endMs: undefined, reason: undefined }))
    b.state = r.state
    if (r.job_id !== null) b.jobId = r.job_id
    if (r.reason !== null) b.reason = r.reason
    if (r.state === 'submitted' || r.state === 'pending') b.submittedMs ??= r.time_ms
    else if (r.state === 'running') b.runningMs ??= r.time_ms
    else if (BLOCK_ENDS.has(r.state)) b.endMs ??= r.time_ms
  }
  const managers = new Map<string, { -readonly [K in keyof ManagerLifetime]: ManagerLifetime[K] }>()
  for (const r of rows<{ executor: string; manager_id: string; hostname: string; block_id: string | null; workers: number; event: string; time_ms: number; reason: string | null }>(
    d,
    `SELECT executor, manager_id, hostname, block_id, workers, event, time_ms, ${nodeReason ? 'reason' : 'NULL'} AS reason FROM node WHERE run = ? ORDER BY manager_id, time_ms`,
    run,
  )) {
    const key = `${r.executor}\n${r.manager_id}`
    let m = managers.get(key)
    if (!m) {
      managers.set(key, (m = { executor: r.executor, managerId: r.manager_id, hostname: r.hostname, blockId: undefined, workers: r.workers, registeredMs: undefined, endMs: undefined, event: r.event, reason: undefined }))
    }
    m.event = r.event
    if (r.block_id !== null) m.blockId = r.block_id
    if (r.reason !== null) m.reason = r.reason
    if (r.event === 'registered') {
      m.registeredMs ??= r.time_ms
      m.workers = r.workers
      m.hostname = r.hostname
    } else m.endMs ??= r.time_ms
  }
  const byTime = (a: number | undefined, b: number | undefined) => (a ?? Infinity) - (b ?? Infinity)
  return {
    blocks: [...blocks.values()].sort((a, b) => byTime(a.submittedMs ?? a.runningMs, b.submittedMs ?? b.runningMs)),
    managers: [...managers.values()].sort((a, b) => byTime(a.registeredMs, b.registeredMs)),
  }
}

/**
 * Per task try: its last sample (cumulative counters) and peak RSS, the `limit` tries with the
 * most CPU time first. Per node: CPU seconds its tasks used in each bucket (each sample's increase
 * over the same try's previous sample, in the (run, task_id, time_ms) index order) and the mean
 * over the bucket's sample times of its tasks' summed RSS.
 */
export function resources(d: DashboardDb, run: number, limit: number, buckets: number, nowMs = Date.now()): Resources | undefined {
  const w = workflowRow(d, run)
  if (!w) return undefined
  const taskRows = rows<{ task_id: number; try_number: number; app: string | null; cpu: number; peak: number; read_bytes: number; write_bytes: number; total: number }>(
    d,
    `SELECT count(*) OVER () AS total, r.task_id, r.try_number, (SELECT app FROM task t WHERE t.run = r.run AND t.task_id = r.task_id) AS app, r.cpu, r.peak, r.read_bytes, r.write_bytes FROM (
       SELECT run, task_id, try_number, max(time_ms), cpu_user_s + cpu_system_s AS cpu, read_bytes, write_bytes,
         (SELECT max(rss_bytes) FROM resource p WHERE p.run = q.run AND p.task_id = q.task_id AND p.try_number = q.try_number) AS peak
       FROM resource q WHERE run = ? GROUP BY task_id, try_number) r
     ORDER BY r.cpu DESC, r.task_id LIMIT ?`,
    run,
    limit,
  )
  const tasks = taskRows.map((r) => ({ taskId: r.task_id, tryNumber: r.try_number, app: r.app ?? '', cpuS: r.cpu, peakRssBytes: r.peak, readBytes: r.read_bytes, writeBytes: r.write_bytes }))
  const startMs = w.start_ms
  const endMs = Math.max(startMs, w.end_ms ?? nowMs)
  const step = Math.max(1, Math.ceil((endMs - startMs) / Math.max(1, buckets - 1)))
  const perManager = rows<{ manager_id: string; b: number; cpu: number; rss: number }>(
    d,
    `SELECT manager_id, ${bucketSql('time_ms')} AS b,
       sum(dcpu) AS cpu, sum(rss_bytes) * 1.0 / count(DISTINCT time_ms) AS rss
     FROM (SELECT manager_id, time_ms, rss_bytes, cpu_user_s + cpu_system_s - CASE
             WHEN lag(try_number) OVER w = try_number THEN lag(cpu_user_s + cpu_system_s) OVER w ELSE 0 END AS dcpu
           FROM resource WHERE run = @run WINDOW w AS (PARTITION BY task_id ORDER BY time_ms))
     GROUP BY manager_id, b`,
    { start: startMs, step, last: buckets - 1, run },
  )
  const hostOf = new Map(rows<{ manager_id: string; hostname: string }>(d, 'SELECT DISTINCT manager_id, hostname FROM node WHERE run = ?', run).map((r) => [r.manager_id, r.hostname]))
  const nodes = new Map<string, { hostname: string; timeMs: number; cpuS: number; rssBytes: number }>()
  for (const r of perManager) {
    const hostname = hostOf.get(r.manager_id) ?? r.manager_id
    const key = `${hostname}\n${r.b}`
    const n = nodes.get(key) ?? { hostname, timeMs: Math.min(startMs + r.b * step, endMs), cpuS: 0, rssBytes: 0 }
    n.cpuS += r.cpu
    n.rssBytes += Math.round(r.rss)
    nodes.set(key, n)
  }
  return { sampledTasks: taskRows[0]?.total ?? 0, tasks, nodes: [...nodes.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.timeMs - b.timeMs) }
}
