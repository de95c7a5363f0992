// The monitoring store (docs/monitoring.md "Storage"): a real workflow recorded into a real SQLite
// file through the writer thread, read back with a second better-sqlite3 connection; a reader in
// another process querying all through the run; retention; the option's errors.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, DataFlowKernel, ThreadPoolExecutor, awaitAllSettled, resolveConfig } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'
import { Database, openDb } from './helpers/sqlite.js'
import { MonitoringRecorder } from '../dist/monitoring/recorder.js'

const require = createRequire(import.meta.url)

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-monitoring-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

// A reader in its own process: a second connection querying as a dashboard would, with no busy
// timeout, so any lock the writer held would surface as SQLITE_BUSY. It stops when stdin closes
// and prints what it saw.
const READER = `
const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))})
const fs = require('node:fs')
const path = process.argv[1]
let queries = 0, errors = [], maxTasks = 0, stop = false
process.stdin.on('end', () => { stop = true }); process.stdin.resume()
const loop = () => {
  if (stop) { process.stdout.write(JSON.stringify({ queries, errors, maxTasks })); process.exit(0) }
  try {
    if (fs.existsSync(path)) {
      const db = loop.db ??= new Database(path)
      db.pragma('busy_timeout = 0')
      const n = db.prepare('SELECT count(*) AS n FROM task').get().n
      if (n > maxTasks) maxTasks = n
      db.prepare('SELECT state, count(*) FROM task WHERE run = (SELECT run FROM workflow ORDER BY start_ms DESC LIMIT 1) GROUP BY state').all()
      db.prepare('SELECT * FROM task_history WHERE run = ? AND task_id = ? ORDER BY time_ms, try_number, step').all(1, 1)
      queries++
    }
  } catch (error) { errors.push(String(error && error.code) + ' ' + error.message + ' at query ' + queries + ' tasks ' + maxTasks) }
  setImmediate(loop)
}
loop()
`

t.test('20,000 tasks: every task, state change, retry and the workflow recorded, with a reader querying throughout', async (t) => {
  const runDir = join(scratch, 'big', 'runinfo')
  const dbPath = join(scratch, 'big', 'runinfo', 'monitoring.db')
  const reader = spawn(process.execPath, ['-e', READER, dbPath], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => void reader.kill('SIGKILL'))
  let readerOut = ''
  reader.stdout!.on('data', (chunk) => (readerOut += chunk))
  const readerDone = new Promise<void>((resolve) => reader.on('exit', () => resolve()))

  const dfk = new DataFlowKernel({ runDir, retries: 2, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const N = 20_000
  const futures = []
  for (let i = 0; i < N; i++) futures.push(apps.double.with({ dfk })(i))
  // three tasks that fail every try, with two retries each: two retry records with their cause
  const failing = [0, 1, 2].map((i) => apps.failWithCause.with({ dfk })(`m${i}`))
  await waitFor(() => existsSync(dbPath), 'the database file')
  await awaitAllSettled([...futures, ...failing])
  const runId = dfk.runId!
  await dfk.cleanup()
  reader.stdin!.end()
  await readerDone

  const stats = dfk.recorderStats!
  t.same(stats.errors, [], 'the writer reported no error')
  t.equal(stats.written, stats.sent, `every record sent was written (${stats.sent} in ${stats.batches} batches, last lag ${stats.lagMs} ms)`)
  t.ok(stats.batches < stats.sent / 10, 'records travel in batches, not one by one')

  const db = openDb(t, dbPath)
  const workflow = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(runId)
  const run = workflow.run as number
  t.ok(workflow.start_ms > 0 && workflow.end_ms >= workflow.start_ms, 'the workflow row has its start and end')
  t.equal(JSON.parse(workflow.counts).exec_done, N, 'and the final counts')
  t.equal(db.prepare('SELECT count(*) AS n FROM task WHERE run = ?').get(run).n, N + 3, 'a row per task')
  t.equal(db.prepare("SELECT count(*) AS n FROM task WHERE run = ? AND state = 'exec_done' AND app = 'double' AND executor = 'pool' AND end_ms IS NOT NULL").get(run).n, N, 'each done, with app, executor and end')
  t.equal(db.prepare('SELECT count(*) AS n FROM try WHERE run = ?').get(run).n, N + 9, 'a row per try')

  // state changes in order for every task (status rows and try columns, through the view): the same sequence each time
  const sequences = db.prepare("SELECT group_concat(state, '>') AS s, count(*) AS c FROM (SELECT task_id, state FROM task_history WHERE run = ? AND task_id IN (SELECT task_id FROM task WHERE run = ? AND app = 'double') ORDER BY task_id, time_ms, try_number, step) GROUP BY task_id").all(run, run)
  const distinct = new Set(sequences.map((row) => row.s))
  t.equal(sequences.length, N, 'every task has a history')
  // a task that ran normally costs no status row: its try row holds launched, running and the end
  t.equal(db.prepare("SELECT count(*) AS n FROM status WHERE run = ? AND state IN ('launched', 'running', 'exec_done')").get(run).n, 0, 'no status row for what a try row holds')
  const retried = db.prepare("SELECT group_concat(state, '>') AS s FROM (SELECT state FROM task_history WHERE run = ? AND task_id = (SELECT min(task_id) FROM task WHERE run = ? AND app != 'double') ORDER BY time_ms, try_number, step)").get(run, run)
  t.match(retried.s, /^launched>(running>)?failed>retry>pending>launched>(running>)?failed>retry>pending>launched>(running>)?failed$/, `a retried task's history: ${retried.s}`)
  for (const sequence of distinct) t.match(sequence, /^(pending>)?launched>(running>)?exec_done$/, `an ordered sequence: ${sequence}`)

  const retries = db.prepare("SELECT task_id, try_number, fail_cause FROM try WHERE run = ? AND fail_cause IS NOT NULL ORDER BY task_id, try_number").all(run)
  t.equal(retries.length, 9, 'two retried tries per failing task, and its final try, have their cause')
  t.match(retries[0].fail_cause, /outer m\d/, 'with the cause')
  t.equal(db.prepare("SELECT count(*) AS n FROM task WHERE run = ? AND state = 'failed' AND last_try = 2").get(run).n, 3, 'the failing tasks end failed after try 2')

  const seen = JSON.parse(readerOut) as { queries: number; errors: string[]; maxTasks: number }
  t.same(seen.errors, [], `the reader never saw an error (${seen.queries} queries; most tasks it counted ${seen.maxTasks})`)
  t.ok(seen.queries > 0, 'and it did query')
})

t.test('a writer opening an existing file never shows a reader the schema half made (the views are remade in one transaction)', async (t) => {
  const runDir = join(scratch, 'reopen', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const run = async () => {
    const dfk = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'one', maxThreads: 1 })], monitoring: { enabled: true } })
    t.teardown(() => dfk.cleanup())
    await dfk.start()
    await apps.double.with({ dfk })(1)
    await dfk.cleanup()
  }
  await run()
  const reader = spawn(process.execPath, ['-e', READER, dbPath], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => void reader.kill('SIGKILL'))
  let readerOut = ''
  reader.stdout!.on('data', (chunk) => (readerOut += chunk))
  const readerDone = new Promise<void>((resolve) => reader.on('exit', () => resolve()))
  // each writer opens the file again and runs the DDL while the reader queries task_history
  for (let i = 0; i < 20; i++) {
    const recorder = await new MonitoringRecorder({ db: dbPath, retention: { maxAgeDays: undefined, maxRuns: undefined } }).start()
    await recorder.close()
  }
  reader.stdin!.end()
  await readerDone
  const seen = JSON.parse(readerOut) as { queries: number; errors: string[] }
  t.ok(seen.queries > 0, `the reader queried (${seen.queries} times)`)
  t.same(seen.errors.slice(0, 3), [], 'and never found a table or view missing')
})

t.test('a running task shows while it runs (non-final states are held back at most 2 s), then its end', async (t) => {
  const runDir = join(scratch, 'live', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const dfk = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'one', maxThreads: 1 })], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const slow = apps.sleep.with({ dfk })(6000)
  let finished = false
  void slow.then(() => (finished = true))
  await waitFor(() => existsSync(dbPath), 'the database file')
  const db = openDb(t, dbPath)
  const row = () => db.prepare('SELECT t.state, y.launched_ms FROM task t LEFT JOIN try y USING (run, task_id) WHERE t.task_id = ? AND t.run = (SELECT run FROM workflow WHERE run_id = ?)').get(1, dfk.runId)
  await waitFor(() => row() !== undefined || finished, 'the running task in the database')
  t.notOk(finished, 'the task (6 s) was written while it still ran')
  t.match(row(), { state: /^(launched|running)$/, launched_ms: Number })
  await slow
  await waitFor(() => row()?.state === 'exec_done', 'its end committed')
  t.pass('and its end')
})

t.test('retention removes old workflows: by age at the next start, and beyond maxRuns', async (t) => {
  const runDir = join(scratch, 'retention', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const run = async (retention?: { maxAgeDays?: number; maxRuns?: number }) => {
    const dfk = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'one', maxThreads: 1 })], monitoring: { enabled: true, retention } })
    t.teardown(() => dfk.cleanup())
    await dfk.start()
    await apps.double.with({ dfk })(1)
    await dfk.cleanup()
    return dfk.runId!
  }
  const first = await run()
  const second = await run()
  const third = await run()
  const writable = new Database(dbPath)
  writable.prepare('UPDATE workflow SET start_ms = start_ms - 30 * 86400000 WHERE run_id = ?').run(first)
  writable.close()
  const fourth = await run({ maxAgeDays: 7 })
  const db = openDb(t, dbPath)
  const ids = () => db.prepare('SELECT run_id FROM workflow ORDER BY start_ms').all().map((row) => row.run_id)
  t.same(ids(), [second, third, fourth], 'the 30-day-old workflow is gone')
  t.equal(db.prepare('SELECT count(*) AS n FROM task WHERE run NOT IN (SELECT run FROM workflow)').get().n, 0, 'with its tasks')
  t.equal(db.prepare('SELECT count(*) AS n FROM status WHERE run NOT IN (SELECT run FROM workflow)').get().n, 0, 'and its status rows')
  t.equal(db.prepare('SELECT count(DISTINCT run) AS n FROM task').get().n, 3, 'tasks of the three runs kept remain')
  const fifth = await run({ maxRuns: 2 })
  t.same(ids(), [fourth, fifth], 'maxRuns: 2 keeps the newest two, the starting run included')
})

t.test('bad monitoring options name their path', async (t) => {
  const error = (monitoring: unknown) => {
    try {
      resolveConfig({ monitoring } as never)
    } catch (caught) {
      return caught as ConfigError
    }
    throw new Error('no error')
  }
  const interval = error({ enabled: true, resourceIntervalMs: -1 })
  t.ok(interval instanceof ConfigError)
  t.equal(interval.path, 'monitoring.resourceIntervalMs')
  t.equal(error({ enabled: true, retention: { maxRuns: 1.5 } }).path, 'monitoring.retention.maxRuns')
  t.match(error({ enabeld: true }).message, /did you mean 'enabled'/)
  t.equal(resolveConfig({ monitoring: { resourceIntervalMs: 500 } }).monitoring, undefined, 'not enabled: off (after the check)')
  t.equal(resolveConfig({ monitoring: true }).monitoring?.resourceIntervalMs, 1000, 'true: on with the defaults')
})

t.test('writerNice lowers the writer thread only (Linux: its nice value in /proc)', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const { readdirSync, readFileSync } = await import('node:fs')
  const niceOf = (comm: string): number | undefined => {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== comm) continue
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
        // after "(comm) ": state is field 3, nice field 19
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
      } catch {
        // a thread that just ended
      }
    }
    return undefined
  }
  const runDir = join(scratch, 'nice', 'runinfo')
  const dfk = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 1 })], monitoring: { enabled: true, writerNice: 7 } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  await waitFor(() => niceOf('tsflow-monitor') !== undefined, 'the writer thread to name itself')
  t.equal(niceOf('tsflow-monitor'), 7, 'the writer runs at nice 7')
  t.equal(Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[16]), 0, 'the workflow thread keeps its priority')
  t.equal(await apps.double(21), 42)
  await dfk.cleanup()
  t.equal(dfk.recorderStats?.sent, dfk.recorderStats?.written, 'every record written')

  // By default the writer runs at nice 10; writerNice: 0 leaves it at the process's priority.
  for (const [option, expected] of [[undefined, 10], [0, 0]] as const) {
    await waitFor(() => niceOf('tsflow-monitor') === undefined, 'the last writer thread to end')
    const other = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 1 })], monitoring: { enabled: true, writerNice: option } })
    t.teardown(() => other.cleanup())
    await other.start()
    await waitFor(() => niceOf('tsflow-monitor') !== undefined, 'the writer thread to name itself')
    t.equal(niceOf('tsflow-monitor'), expected, `writerNice ${option}: the writer runs at nice ${expected}`)
    await other.cleanup()
  }
})
