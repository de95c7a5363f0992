/**
 * The dashboard's SQL for the chart views of protocol/dashboard.ts (docs/monitoring.md
 * "Dashboard"): Gantt, states over time, per-app durations, infrastructure, resources. Each is
 * index probes or one pass over a workflow's rows in SQL; those over every task read an even
 * sample of them above SAMPLE_TASKS. Costs on a 1,000,000-task workflow: bench/dashboard-queries.ts.
 */
import { STATE_CODES } from '../../protocol/monitoring.js'
import type { AppSummaries, AppSummary, BlockLifetime, Gantt, Infrastructure, ManagerLifetime, Resources, StatesOverTime } from '../../protocol/dashboard.js'
import type { DashboardDb } from './db.js'
import { orUndefined, row, rows, workflowRow } from './queries.js'

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
const SAMPLED_IDS = `ids(i, id) AS (SELECT 0, @lo WHERE @lo <= @hi
    UNION ALL SELECT i + 1, @lo + (i + 1) * @k + ((i + 1) * 2654435761) % @k FROM ids WHERE @lo + (i + 1) * @k <= @hi)`
const SAMPLED_CTE = `${SAMPLED_IDS},
  st AS MATERIALIZED (SELECT t.task_id, t.app, t.state, t.last_try, t.submit_ms, t.end_ms FROM ids CROSS JOIN task t ON t.run = @run AND t.task_id = ids.id),
  sy AS MATERIALIZED (SELECT y.task_id, y.try_number, y.state, y.launched_ms, y.running_ms, y.end_ms FROM ids CROSS JOIN try y ON y.run = @run AND y.task_id = ids.id)`
/** The sampled tasks alone (either schema). */
const SAMPLED_TASKS = SAMPLED_CTE.slice(0, SAMPLED_CTE.indexOf(',\n  sy AS'))
/**
 * Schema 4: the sampled tasks with their latest try's times (`st`), their earlier tries (`se`),
 * and every try (`sy`: the earlier ones, and the latest where the task has one, as the try view).
 */
const SAMPLED_CTE_4 = `${SAMPLED_IDS},
  st AS MATERIALIZED (SELECT t.task_id, t.app, t.state, t.last_try, t.submit_ms, t.launched_ms, t.running_ms, t.end_ms FROM ids CROSS JOIN task t ON t.run = @run AND t.task_id = ids.id),
  se AS MATERIALIZED (SELECT y.task_id, y.try_number, y.state, y.launched_ms, y.running_ms, y.end_ms FROM ids CROSS JOIN earlier_try y ON y.run = @run AND y.task_id = ids.id),
  sy AS (SELECT task_id, try_number, state, launched_ms, running_ms, end_ms FROM se
    UNION ALL SELECT task_id, last_try, state, launched_ms, running_ms, end_ms FROM st WHERE launched_ms IS NOT NULL OR (end_ms IS NOT NULL AND state <> 'dep_fail'))`

/**
 * The bucket of an event at time x: the first sample time (@start + k * @step) at or after it.
 * CAST: better-sqlite3 binds JS numbers as REAL, and REAL division does not truncate.
 */
const bucketSql = (x: string) => `min(@last, CASE WHEN ${x} <= @start THEN 0 ELSE CAST((${x} - @start + @step - 1) / @step AS INTEGER) END)`

const GANTT_COLUMNS = `t.task_id, t.app, t.executor, t.state, t.submit_ms, y.launched_ms, y.running_ms, t.end_ms
  FROM task t LEFT JOIN try y ON y.run = t.run AND y.task_id = t.task_id AND y.try_number = t.last_try`
/** Schema 4: the latest try's times are the task row's own. */
const GANTT_COLUMNS_4 = 't.task_id, t.app, t.executor, t.state, t.submit_ms, t.launched_ms, t.running_ms, t.end_ms FROM task t'

/**
 * All bars when there are at most `limit` tasks; else `limit` task ids spread evenly from the
 * first to the last, each found by its primary key (a workflow's ids are dense, so each exists;
 * CROSS JOIN keeps the id list outside, else SQLite may scan the tasks once per id).
 */
export function gantt(d: DashboardDb, run: number, limit: number): Gantt {
  const total = row<{ n: number }>(d, 'SELECT count(*) AS n FROM task WHERE run = ?', run)?.n ?? 0
  type Bar = { task_id: number; app: string; executor: string | null; state: string; submit_ms: number; launched_ms: number | null; running_ms: number | null; end_ms: number | null }
  let bars: Bar[]
  const columns = d.columns().latestTryInTask ? GANTT_COLUMNS_4 : GANTT_COLUMNS
  if (total <= limit) bars = rows<Bar>(d, `SELECT ${columns} WHERE t.run = ? ORDER BY t.task_id`, run)
  else {
    const ids = idRange(d, run)
    const lo = ids.lo!
    const span = ids.hi! - lo
    bars = rows<Bar>(
      d,
      `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < @limit - 1)
       SELECT ${columns.replace('FROM task t', 'FROM s CROSS JOIN task t ON t.run = @run AND t.task_id = @lo + CAST(s.i * @span / (@limit - 1) AS INTEGER)')}
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
  // Schema 4: a task that ended without a try is a dependency failure (memo_done and cancelled
  // count as a try), and every earlier try returned its task to pending.
  const v4 = d.columns().latestTryInTask
  const deltas = rows<{ b: number; state: string; d: number }>(
    d,
    `WITH RECURSIVE ${v4 ? SAMPLED_CTE_4 : SAMPLED_CTE}
     SELECT b, state, sum(d) AS d FROM (
       SELECT ${b('submit_ms')} AS b, 'pending' AS state, 1 AS d FROM st
       UNION ALL SELECT ${b('end_ms')}, state, 1 FROM st WHERE end_ms IS NOT NULL
       UNION ALL SELECT ${b('st.end_ms')}, 'pending', -1 FROM st WHERE st.end_ms IS NOT NULL
         AND ${v4 ? "st.state = 'dep_fail'" : 'NOT EXISTS (SELECT 1 FROM try y WHERE y.run = @run AND y.task_id = st.task_id)'}
       UNION ALL SELECT ${b('launched_ms')}, 'pending', -1 FROM sy WHERE launched_ms IS NOT NULL
       UNION ALL SELECT ${b('launched_ms')}, 'launched', 1 FROM sy WHERE launched_ms IS NOT NULL
       UNION ALL SELECT ${b('running_ms')}, 'launched', -1 FROM sy WHERE running_ms IS NOT NULL AND launched_ms IS NOT NULL
       UNION ALL SELECT ${b('running_ms')}, 'running', 1 FROM sy WHERE running_ms IS NOT NULL
       UNION ALL SELECT ${b('end_ms')}, CASE WHEN running_ms IS NOT NULL THEN 'running' WHEN launched_ms IS NOT NULL THEN 'launched' ELSE 'pending' END, -1
         FROM sy WHERE end_ms IS NOT NULL
       ${
         v4
           ? `UNION ALL SELECT ${b('se.end_ms')}, 'pending', 1 FROM se WHERE se.end_ms IS NOT NULL`
           : `UNION ALL SELECT ${b('sy.end_ms')}, 'pending', 1 FROM sy WHERE sy.end_ms IS NOT NULL AND sy.state = 'failed'
         AND sy.try_number < (SELECT t.last_try FROM task t WHERE t.run = @run AND t.task_id = sy.task_id)`
       }
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
 * Per app: exact counts from one pass over its rows, and the exact median and p95 (nearest rank) of its
 * ended tasks' durations from one sort of the workflow's ended tasks by (app, duration) with
 * window functions, returning two rows per app rather than the durations.
 */
export function appSummaries(d: DashboardDb, run: number): AppSummaries {
  const { k, lo, hi } = sampleOf(d, run)
  // exact task counts per app: one pass over the workflow's rows (no (run, app) index since schema 4)
  const counts = new Map(rows<{ app: string; n: number }>(d, 'SELECT app, count(*) AS n FROM task WHERE run = ? GROUP BY app', run).map((r) => [r.app, r.n]))
  const base = rows<{ app: string; tasks: number; done: number; failed: number; ended: number; mean: number | null; max: number | null }>(
    d,
    `WITH RECURSIVE ${SAMPLED_TASKS}
     SELECT app, count(*) AS tasks,
       sum(state IN ('exec_done', 'memo_done')) AS done, sum(state IN ('failed', 'dep_fail')) AS failed,
       count(end_ms) AS ended, avg(end_ms - submit_ms) AS mean, max(end_ms - submit_ms) AS max
     FROM st GROUP BY app ORDER BY app`,
    { run, k, lo, hi },
  )
  const ranks = rows<{ app: string; rn: number; n: number; duration: number }>(
    d,
    `WITH RECURSIVE ${SAMPLED_TASKS}
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
