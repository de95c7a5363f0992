// The dashboard's HTTP API (docs/monitoring.md "Dashboard", src/protocol/dashboard.ts) over real
// HTTP, against databases written by real monitored runs (DataFlowKernel + ThreadPoolExecutor,
// the recorder and its writer thread) and, for the views a thread pool does not fill (blocks,
// managers, resource samples), by the real writer thread fed synthetic records. Numbers are
// checked against the database read directly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataFlowKernel, ThreadPoolExecutor, awaitAllSettled } from 'tsflow'
import type { AppSummaries, Gantt, Infrastructure, Resources, StatesOverTime, TaskDetail, TaskPage, WorkflowDetail, WorkflowList } from 'tsflow/protocol'
import { startDashboard, type Dashboard } from '../dist/monitoring/dashboard/server.js'
import { SCHEMA_VERSION } from '../dist/monitoring/schema.js'
import { writeSyntheticRun } from '../bench/lib/monitoring-synthetic.js'
import * as apps from './fixtures/apps.js'
import { checkHistograms, parseExposition } from './helpers/prometheus-text.js'
import { waitFor } from './helpers/wait.js'
import { Database, openDb as openDbAt } from './helpers/sqlite.js'
import { spawnSync } from 'node:child_process'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-dashboard-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

async function serve(t: Test, db: string, pollMs = 50): Promise<Dashboard> {
  const dashboard = await startDashboard({ db, pollMs, keepAliveMs: 200 })
  t.teardown(() => dashboard.close())
  return dashboard
}

async function get<T = any>(dashboard: Dashboard, path: string, status = 200): Promise<T> {
  const response = await fetch(new URL(path, dashboard.url))
  const text = await response.text()
  if (response.status !== status) throw new Error(`GET ${path}: ${response.status} ${text.slice(0, 300)} (expected ${status})`)
  return (response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text) as T
}

// One real run for most tests: 300 doubles, 20 short sleeps, 3 tasks that fail both of their tries.
const runDir = join(scratch, 'real', 'runinfo')
const dbPath = join(runDir, 'monitoring.db')
const N = 300
let runId = ''
t.before(async () => {
  const dfk = new DataFlowKernel({ runDir, retries: 1, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true } })
  await dfk.start()
  try {
    const futures = []
    for (let i = 0; i < N; i++) futures.push(apps.double.with({ dfk })(i))
    for (let i = 0; i < 20; i++) futures.push(apps.sleep.with({ dfk })(5 + i))
    for (let i = 0; i < 3; i++) futures.push(apps.failWithCause.with({ dfk })(`f${i}`))
    await awaitAllSettled(futures)
    runId = dfk.runId!
  } finally {
    await dfk.cleanup()
  }
})

const openDb = (t: Test, path = dbPath) => openDbAt(t, path)

t.test('workflows and a workflow: counts match the task table', async (t) => {
  const dashboard = await serve(t, dbPath)
  const db = openDb(t)
  const list = await get<WorkflowList>(dashboard, '/api/workflows')
  t.equal(list.db, dbPath, 'names the database it serves')
  t.equal(list.workflows.length, 1)
  const w = list.workflows[0]!
  t.equal(w.runId, runId)
  t.same(w.executors, ['pool'])
  t.equal(w.tasks, N + 23, 'every task')
  t.same(w.counts, { exec_done: N + 20, failed: 3 }, 'tasks per state')
  t.ok(w.endMs !== undefined && w.endMs >= w.startMs, 'ended')
  const newest = db.prepare('SELECT max(time_ms) AS t FROM task_history').get().t as number
  t.equal(w.lastEventMs, Math.max(newest, w.endMs!), 'lastEventMs is the newest row (the end record here)')

  const detail = await get<WorkflowDetail>(dashboard, `/api/workflows/${w.run}`)
  t.same(detail.apps, ['double', 'failWithCause', 'sleep'], 'apps, sorted')
  t.equal(detail.failed, 3)
  t.equal(detail.recentRate, 0, 'no rate once ended')
  t.equal(detail.tasks, w.tasks)
})

t.test('the task table: filters, sorting, paging, totals', async (t) => {
  const dashboard = await serve(t, dbPath)
  const db = openDb(t)
  const run = (db.prepare('SELECT run FROM workflow WHERE run_id = ?').get(runId) as { run: number }).run
  const base = `/api/workflows/${run}/tasks`

  const first = await get<TaskPage>(dashboard, base)
  t.equal(first.total, N + 23)
  t.equal(first.limit, 50, 'TASK_PAGE_DEFAULT')
  t.same(first.tasks.map((r) => r.taskId), db.prepare('SELECT task_id FROM task WHERE run = ? ORDER BY task_id LIMIT 50').all(run).map((r) => r.task_id), 'by task id')
  const second = await get<TaskPage>(dashboard, `${base}?offset=50&limit=25`)
  t.same(second.tasks.map((r) => r.taskId), db.prepare('SELECT task_id FROM task WHERE run = ? ORDER BY task_id LIMIT 25 OFFSET 50').all(run).map((r) => r.task_id), 'the next page')
  const all = await get<TaskPage>(dashboard, `${base}?limit=1000`)
  t.equal(all.tasks.length, N + 23, 'one page of all')
  const row = all.tasks.find((r) => r.app === 'double')!
  t.equal(row.executor, 'pool')
  t.equal(row.state, 'exec_done')
  t.equal(row.durationMs, row.endMs! - row.submitMs)

  const doubles = await get<TaskPage>(dashboard, `${base}?app=double&limit=1`)
  t.equal(doubles.total, N, 'filter by app')
  const failed = await get<TaskPage>(dashboard, `${base}?state=failed`)
  t.equal(failed.total, 3, 'filter by state')
  for (const task of failed.tasks) {
    t.equal(task.app, 'failWithCause')
    t.equal(task.lastTry, 1, 'two tries')
    t.match(task.error, /outer f\d/, 'with the first line of its error')
    t.notMatch(task.error, /\n/)
  }
  t.notOk(all.tasks.find((r) => r.state === 'exec_done' && r.error !== undefined), 'no error on tasks that succeeded')
  t.equal((await get<TaskPage>(dashboard, `${base}?executor=pool&state=exec_done&app=sleep`)).total, 20, 'filters combine')
  t.equal((await get<TaskPage>(dashboard, `${base}?executor=elsewhere`)).total, 0, 'an executor with no tasks')
  t.equal((await get<TaskPage>(dashboard, `${base}?app=&state=`)).total, N + 23, 'empty parameters count as absent')

  const expectOrder = (rows: TaskPage['tasks'], key: (r: TaskPage['tasks'][number]) => number | string, desc: boolean, what: string) => {
    const keys = rows.map(key)
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    if (desc) sorted.reverse()
    t.same(keys, sorted, what)
  }
  const byDuration = await get<TaskPage>(dashboard, `${base}?sort=duration&order=desc&limit=1000`)
  expectOrder(byDuration.tasks, (r) => r.durationMs!, true, 'sorted by duration, longest first')
  t.equal(byDuration.tasks[0]!.durationMs, db.prepare('SELECT max(end_ms - submit_ms) AS d FROM task WHERE run = ?').get(run).d, 'the longest first')
  expectOrder((await get<TaskPage>(dashboard, `${base}?sort=end_ms&limit=1000`)).tasks, (r) => r.endMs!, false, 'by end time')
  expectOrder((await get<TaskPage>(dashboard, `${base}?sort=app&order=desc&limit=1000`)).tasks, (r) => r.app, true, 'by app, descending')
  expectOrder((await get<TaskPage>(dashboard, `${base}?sort=submit_ms&limit=1000`)).tasks, (r) => r.submitMs, false, 'by submission')
  const byState = await get<TaskPage>(dashboard, `${base}?sort=state&limit=3`)
  t.same(byState.tasks.map((r) => r.state), ['exec_done', 'exec_done', 'exec_done'], 'by state')
  const last = await get<TaskPage>(dashboard, `${base}?offset=${N + 20}`)
  t.equal(last.tasks.length, 3, 'the last, short page')
  t.equal((await get<TaskPage>(dashboard, `${base}?offset=100000`)).tasks.length, 0, 'past the end: empty')
})

t.test("a failed task's detail: its error, tries, statuses", async (t) => {
  const dashboard = await serve(t, dbPath)
  const run = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!.run
  const failed = await get<TaskPage>(dashboard, `/api/workflows/${run}/tasks?state=failed&limit=1`)
  const id = failed.tasks[0]!.taskId
  const detail = await get<TaskDetail>(dashboard, `/api/workflows/${run}/tasks/${id}`)
  t.equal(detail.task.taskId, id)
  t.equal(detail.task.state, 'failed')
  t.match(detail.error, /outer f\d/, 'the error')
  t.equal(detail.tries.length, 2, 'both tries')
  t.same(detail.tries.map((y) => y.tryNumber), [0, 1])
  t.match(detail.tries[0]!.failCause, /outer f\d/, 'why try 0 failed')
  t.match(detail.tries[1]!.failCause, /outer f\d/, 'and the last')
  t.match(detail.tries[0]!.failStack, /failWithCause/, "each failed try's remote stack")
  t.match(detail.errorStack, /failWithCause/, "and the task's")
  t.ok(detail.tries.every((y) => y.executor === 'pool' && y.launchedMs !== undefined && y.endMs !== undefined))
  const states = detail.statuses.map((s) => s.state)
  t.ok(states.includes('retry') && states.at(-1) === 'failed', `statuses in order: ${states.join(' > ')}`)
  t.same(detail.resources, [], 'a thread pool samples no resources')

  const ok = await get<TaskPage>(dashboard, `/api/workflows/${run}/tasks?state=exec_done&limit=1`)
  const done = await get<TaskDetail>(dashboard, `/api/workflows/${run}/tasks/${ok.tasks[0]!.taskId}`)
  t.equal(done.error, undefined)
  t.equal(done.tries.length, 1)
})

t.test('gantt, states over time and per-app durations', async (t) => {
  const dashboard = await serve(t, dbPath)
  const db = openDb(t)
  const run = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!.run
  const total = N + 23
  const full = await get<Gantt>(dashboard, `/api/workflows/${run}/gantt`)
  t.equal(full.total, total)
  t.equal(full.sampled, false)
  t.equal(full.bars.length, total, 'a bar per task under the limit')
  const bar = full.bars.find((b) => b.app === 'sleep')!
  t.ok(bar.launchedMs! >= bar.submitMs && bar.runningMs! >= bar.launchedMs! && bar.endMs! >= bar.runningMs!, 'submit <= launched <= running <= end')
  const sampled = await get<Gantt>(dashboard, `/api/workflows/${run}/gantt?limit=10`)
  t.equal(sampled.sampled, true)
  t.equal(sampled.bars.length, 10, 'sampled evenly to the limit')
  const ids = sampled.bars.map((b) => b.taskId)
  t.equal(ids[0], full.bars[0]!.taskId, 'from the first task')
  t.equal(ids.at(-1), full.bars.at(-1)!.taskId, 'to the last')

  const states = await get<StatesOverTime>(dashboard, `/api/workflows/${run}/states?buckets=20`)
  const times = [...new Set(states.points.map((p) => p.timeMs))]
  t.equal(times.length, 20, '20 sample times')
  t.ok(times.every((time, i) => i === 0 || time > times[i - 1]!), 'increasing')
  const at = (time: number) => Object.fromEntries(states.points.filter((p) => p.timeMs === time).map((p) => [p.state, p.tasks]))
  t.match(at(times.at(-1)!), { exec_done: N + 20, failed: 3, pending: 0, running: 0 }, 'at the end: every task in its final state')
  for (const time of times) {
    const sum = Object.values(at(time)).reduce((a, b) => a + b, 0)
    t.ok(sum <= total, `never more tasks than exist (${sum} at ${time - states.startMs} ms)`)
  }

  const summaries = await get<AppSummaries>(dashboard, `/api/workflows/${run}/apps`)
  t.same(summaries.apps.map((a) => a.app), ['double', 'failWithCause', 'sleep'])
  for (const a of summaries.apps) {
    const durations = db.prepare('SELECT end_ms - submit_ms AS d FROM task WHERE run = ? AND app = ? ORDER BY d').all(run, a.app).map((r) => r.d as number)
    t.equal(a.tasks, durations.length, `${a.app}: tasks`)
    t.equal(a.medianMs, durations[Math.floor((durations.length + 1) / 2) - 1], `${a.app}: the median (lower, nearest rank)`)
    t.equal(a.p95Ms, durations[Math.ceil(0.95 * durations.length) - 1], `${a.app}: p95 by nearest rank`)
    t.equal(a.maxMs, durations.at(-1))
    t.ok(Math.abs(a.meanMs! - durations.reduce((x, y) => x + y, 0) / durations.length) < 1e-9, `${a.app}: mean`)
  }
  t.match(summaries.apps[0], { app: 'double', tasks: N, done: N, failed: 0 })
  t.match(summaries.apps[1], { app: 'failWithCause', tasks: 3, done: 0, failed: 3 })
})

t.test('dependency failures: states over time end with them, their detail names the failed dependency', async (t) => {
  const dir = join(scratch, 'depfail', 'runinfo')
  const dfk = new DataFlowKernel({ runDir: dir, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const failing = apps.failWithCause.with({ dfk })('d')
  const dependents = [1, 2].map(() => apps.double.with({ dfk })(failing as unknown as number))
  const fine = apps.double.with({ dfk })(3)
  await awaitAllSettled([failing, ...dependents, fine])
  await dfk.cleanup()
  const dashboard = await serve(t, join(dir, 'monitoring.db'))
  const w = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!
  t.same(w.counts, { exec_done: 1, failed: 1, dep_fail: 2 })
  const states = await get<StatesOverTime>(dashboard, `/api/workflows/${w.run}/states?buckets=5`)
  const end = Object.fromEntries(states.points.filter((p) => p.timeMs === states.endMs).map((p) => [p.state, p.tasks]))
  t.match(end, { pending: 0, launched: 0, running: 0, exec_done: 1, failed: 1, dep_fail: 2 }, 'no task left pending at the end')
  const page = await get<TaskPage>(dashboard, `/api/workflows/${w.run}/tasks?state=dep_fail`)
  t.equal(page.total, 2)
  const detail = await get<TaskDetail>(dashboard, `/api/workflows/${w.run}/tasks/${page.tasks[0]!.taskId}`)
  t.equal(detail.task.state, 'dep_fail')
  t.ok(detail.error, `a dep_fail task has its error: ${detail.error}`)
  t.equal((await get<WorkflowDetail>(dashboard, `/api/workflows/${w.run}`)).failed, 3, 'failed counts failed and dep_fail')
})

t.test('blocks, managers and resources from the writer (synthetic records)', async (t) => {
  const db = join(scratch, 'synthetic', 'monitoring.db')
  const result = await writeSyntheticRun({ db, runId: 'synthetic-1', tasks: 2000, failEvery: 100, managers: 4, sampleEvery: 5 })
  const dashboard = await serve(t, db)
  const w = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!
  t.same(w.counts, result.counts, 'counts as written')
  const infra = await get<Infrastructure>(dashboard, `/api/workflows/${w.run}/infrastructure`)
  t.equal(infra.blocks.length, 4)
  for (const b of infra.blocks) {
    t.match(b, { executor: 'htex', state: 'finished', jobId: `job-${b.blockId}` })
    t.ok(b.submittedMs! < b.runningMs! && b.runningMs! < b.endMs!, `block ${b.blockId}: submitted < running < end`)
  }
  t.equal(infra.managers.length, 4)
  for (const m of infra.managers) {
    t.match(m, { executor: 'htex', workers: 4, event: 'stopped' })
    t.equal(m.hostname, `node${Number(m.managerId.slice(1)) % 2}`)
    t.ok(m.registeredMs! < m.endMs!)
  }
  const resources = await get<Resources>(dashboard, `/api/workflows/${w.run}/resources?limit=5&buckets=10`)
  t.equal(resources.sampledTasks, 400, 'every sampled task try')
  t.equal(resources.tasks.length, 5, 'limited')
  for (const r of resources.tasks) {
    t.ok(Math.abs(r.cpuS - 0.036) < 1e-9, 'cpu of the last sample (user + system)')
    t.equal(r.peakRssBytes, 3_000_000, 'the peak RSS')
    t.equal(r.readBytes, 3 * 4096)
  }
  t.same([...new Set(resources.nodes.map((n) => n.hostname))], ['node0', 'node1'], 'per node by hostname')
  const cpu = resources.nodes.reduce((sum, n) => sum + n.cpuS, 0)
  t.ok(Math.abs(cpu - 400 * 0.036) < 1e-6, `the CPU seconds over the buckets add up to the tasks' (${cpu})`)
})

t.test('above 20,000 tasks: states and app durations from an even sample, saying so', async (t) => {
  const db = join(scratch, 'sampled', 'monitoring.db')
  const result = await writeSyntheticRun({ db, runId: 'big', tasks: 50_000, failEvery: 500 })
  const dashboard = await serve(t, db)
  const direct = openDb(t, db)
  const states = await get<StatesOverTime & { sampleEvery?: number }>(dashboard, '/api/workflows/1/states?buckets=10')
  t.equal(states.sampleEvery, 3, 'one task id in 3')
  const end: Record<string, number> = Object.fromEntries(states.points.filter((p) => p.timeMs === states.endMs).map((p) => [p.state, p.tasks]))
  t.ok(Math.abs(end.exec_done! - result.counts.exec_done!) / result.counts.exec_done! < 0.01, `final exec_done ${end.exec_done} within 1% of ${result.counts.exec_done}`)
  const summaries = await get<AppSummaries & { sampleEvery?: number }>(dashboard, '/api/workflows/1/apps')
  t.equal(summaries.sampleEvery, 3)
  for (const a of summaries.apps) {
    t.equal(a.tasks, direct.prepare('SELECT count(*) AS n FROM task WHERE run = 1 AND app = ?').get(a.app).n, `${a.app}: the task count is exact`)
    const median = direct.prepare('SELECT end_ms - submit_ms AS d FROM task WHERE run = 1 AND app = ? ORDER BY d LIMIT 1 OFFSET ?').get(a.app, Math.floor(a.tasks / 2)).d as number
    t.ok(Math.abs(a.medianMs! - median) <= 3, `${a.app}: the sampled median ${a.medianMs} is near the exact ${median}`)
  }
  const gantt = await get<Gantt>(dashboard, '/api/workflows/1/gantt')
  t.equal(gantt.bars.length, 2000, 'the Gantt sample is GANTT_DEFAULT bars')
  t.equal(gantt.bars.at(-1)!.taskId, 49_999)
})

t.test('errors: 404, 400, 405 as JSON naming the problem', async (t) => {
  const dashboard = await serve(t, dbPath)
  const run = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!.run
  t.match(await get(dashboard, '/api/workflows/999', 404), { error: /no workflow 999 in .*monitoring\.db/ })
  t.match(await get(dashboard, '/api/workflows/abc', 404), { error: /no workflow 'abc'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks/999999`, 404), { error: /no task 999999/ })
  t.match(await get(dashboard, `/api/workflows/${run}/nothing`, 404), { error: /no route/ })
  t.match(await get(dashboard, '/api/elsewhere', 404), { error: /no route/ })
  t.match(await get(dashboard, '/nowhere', 404), { error: /no route/ })
  t.match(await get(dashboard, '/static/missing.js', 404), { error: /no file/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?limit=0`, 400), { error: /'limit' must be a whole number from 1 to 1000/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?limit=1001`, 400), { error: /'limit'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?offset=-1`, 400), { error: /'offset'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?sort=speed`, 400), { error: /'sort' must be one of task_id, app/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?order=up`, 400), { error: /'order'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?state=done`, 400), { error: /'state' must be one of unsched, pending/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?colour=red`, 400), { error: /unknown parameter 'colour'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/tasks?limit=1&limit=2`, 400), { error: /given twice/ })
  t.match(await get(dashboard, `/api/workflows/${run}/gantt?limit=20001`, 400), { error: /'limit'/ })
  t.match(await get(dashboard, `/api/workflows/${run}/states?buckets=1`, 400), { error: /'buckets'/ })
  t.match(await get(dashboard, '/api/events?run=999', 404), { error: /no workflow 999/ })
  const post = await fetch(new URL('/api/workflows', dashboard.url), { method: 'POST' })
  t.equal(post.status, 405)
  t.equal(post.headers.get('allow'), 'GET, HEAD')
})

t.test('the page, its assets and the chart libraries', async (t) => {
  const dashboard = await serve(t, dbPath)
  const html = await fetch(dashboard.url)
  t.equal(html.status, 200)
  t.match(html.headers.get('content-type'), /^text\/html/)
  t.match(await html.text(), /<html/i)
  t.equal((await fetch(new URL('/workflows/1', dashboard.url))).status, 200, 'the page at a workflow URL too')
  for (const name of ['vega.min.js', 'vega-lite.min.js', 'dashboard.js', 'dashboard.css']) {
    const response = await fetch(new URL(`/static/${name}`, dashboard.url))
    t.equal(response.status, 200, name)
    t.ok((await response.text()).length > 0, `${name} has content`)
  }
  const vega = await (await fetch(new URL('/static/vega.min.js', dashboard.url))).text()
  t.ok(vega.length > 100_000 && vega.includes('vega'), 'the vega build from node_modules')
  const head = await fetch(new URL('/api/workflows', dashboard.url), { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(await head.text(), '', 'HEAD has no body')
})

t.test('/metrics: Prometheus text with tasks by state, running workflows, writer freshness', async (t) => {
  const db = join(scratch, 'metrics', 'monitoring.db')
  const ended = await writeSyntheticRun({ db, runId: 'ended-run', tasks: 500, failEvery: 50 })
  const live = await writeSyntheticRun({ db, runId: 'live "run"', tasks: 300, liveTail: 7 })
  const dashboard = await serve(t, db)
  const response = await fetch(new URL('/metrics', dashboard.url))
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await response.text()
  const parsed = parseExposition(text)
  checkHistograms(parsed, t)
  const value = (name: string, labels: Record<string, string> = {}) =>
    parsed.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
  t.equal(value('tsflow_dashboard_workflows'), 2)
  t.equal(value('tsflow_dashboard_workflows_running'), 1)
  t.equal(value('tsflow_dashboard_tasks', { run_id: 'ended-run', state: 'exec_done' }), ended.counts.exec_done)
  t.equal(value('tsflow_dashboard_tasks', { run_id: 'ended-run', state: 'failed' }), ended.counts.failed)
  t.equal(value('tsflow_dashboard_tasks', { run_id: 'live "run"', state: 'running' }), 7, 'label values escaped and read back')
  t.ok(value('tsflow_dashboard_last_event_age_seconds', { run_id: 'live "run"' })! > 0, 'freshness of the running workflow')
  t.equal(value('tsflow_dashboard_last_event_age_seconds', { run_id: 'ended-run' }), undefined, 'none for an ended one')
  t.ok(value('tsflow_dashboard_db_bytes')! > 0)
  t.ok(live.counts.exec_done! > 0)
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' })
  if (probe.error) t.pass('promtool check metrics', { skip: 'promtool is not installed (apt-get install prometheus)' })
  else {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
    t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`)
  }
})

t.test('the database: missing, not yet written, newer schema', async (t) => {
  const missing = join(scratch, 'none', 'monitoring.db')
  await t.rejects(startDashboard({ db: missing }), { message: new RegExp(`no monitoring database at ${missing}.*monitoring: \\{ enabled: true \\}`) })
  // An empty file: a database being created; served as empty until its schema appears.
  const empty = join(scratch, 'empty.db')
  writeFileSync(empty, '')
  const dashboard = await serve(t, empty)
  t.same(await get<WorkflowList>(dashboard, '/api/workflows'), { workflows: [], db: empty })
  const newer = join(scratch, 'newer', 'monitoring.db')
  await writeSyntheticRun({ db: newer, runId: 'n', tasks: 1 })
  const writable = new Database(newer)
  writable.prepare('UPDATE schema_version SET version = 99').run()
  writable.close()
  await t.rejects(startDashboard({ db: newer }), { message: new RegExp(`schema version 99, newer than this tsflow reads \\(${SCHEMA_VERSION}\\)`) })
})

/** Reads an event stream: the events so far, by name, parsed. */
function subscribe(t: Test, url: string) {
  const events: { event: string; data: any }[] = []
  let comments = 0
  let closed = false
  const req = request(url, (response) => {
    let buffer = ''
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => {
      buffer += chunk
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        if (block.startsWith(':')) comments++
        const event = /^event: (.*)$/m.exec(block)?.[1]
        const data = /^data: (.*)$/m.exec(block)?.[1]
        if (event && data) events.push({ event, data: JSON.parse(data) })
      }
    })
    response.on('close', () => (closed = true))
  })
  req.end()
  const stop = () => req.destroy()
  t.teardown(stop)
  return { events, comments: () => comments, closed: () => closed, stop }
}

t.test('server-sent events: updates while a run is live, keep-alives, clients dropped', async (t) => {
  const dir = join(scratch, 'live', 'runinfo')
  const db = join(dir, 'monitoring.db')
  const dfk = new DataFlowKernel({ runDir: dir, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  await apps.double.with({ dfk })(1)
  await waitFor(() => {
    try {
      const probe = new Database(db, { readonly: true })
      const n = probe.prepare('SELECT count(*) AS n FROM task').get().n as number
      probe.close()
      return n === 1
    } catch {
      return false
    }
  }, 'the first task in the database')
  const dashboard = await serve(t, db)
  const run = (await get<WorkflowList>(dashboard, '/api/workflows')).workflows[0]!.run
  const stream = subscribe(t, new URL(`/api/events?run=${run}`, dashboard.url).href)
  const listStream = subscribe(t, new URL('/api/events', dashboard.url).href)
  await waitFor(() => stream.events.some((e) => e.event === 'workflow') && listStream.events.some((e) => e.event === 'workflows'), 'the events sent on connecting')
  t.equal(dashboard.listeners(), 2)
  t.equal((stream.events.find((e) => e.event === 'workflow')!.data as WorkflowDetail).tasks, 1, 'current at once')
  t.notOk(listStream.events.some((e) => e.event === 'workflow'), 'no workflow events without ?run=')

  const futures = []
  for (let i = 0; i < 50; i++) futures.push(apps.sleep.with({ dfk })(2))
  await awaitAllSettled(futures)
  await waitFor(() => stream.events.some((e) => e.event === 'workflow' && (e.data as WorkflowDetail).counts.exec_done === 51), 'a workflow event with all 51 tasks done')
  const live = stream.events.filter((e) => e.event === 'workflow').map((e) => e.data as WorkflowDetail)
  t.ok(live.every((w) => w.endMs === undefined), 'while the run is live')
  t.ok(listStream.events.some((e) => e.event === 'workflows' && (e.data as WorkflowList).workflows[0]!.tasks === 51), 'the list stream too')
  await waitFor(() => stream.comments() > 0, 'a keep-alive comment')

  await dfk.cleanup()
  await waitFor(() => stream.events.some((e) => e.event === 'workflow' && (e.data as WorkflowDetail).endMs !== undefined), 'the end pushed')
  stream.stop()
  listStream.stop()
  await waitFor(() => dashboard.listeners() === 0, 'disconnected clients dropped')
})
