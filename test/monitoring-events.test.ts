// Monitoring events (docs/monitoring.md "Run, block and error events"): real monitored runs, with
// a thread pool and with HTEX on a LocalProvider, read back from the SQLite file: the workflow,
// tasks, tries, statuses, dependency waits, a failed task's error with the stack from where it
// ran, blocks with their job id and states; manager and resource rows from the channels; kernels
// in one process, one after another and at once, in their own workflow rows; what channel
// subscribers see.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { listen } from './helpers/channels.js'
import {
  DataFlowKernel,
  HighThroughputExecutor,
  LocalProvider,
  ThreadPoolExecutor,
  awaitAllSettled,
  channels,
  type BlockMessage,
  type Executor,
  type TaskStateMessage,
} from 'tsflow'
import { MonitoringRecorder } from '../dist/monitoring/recorder.js'
import { ADDED_COLUMNS, DDL, SCHEMA_VERSION } from '../dist/monitoring/schema.js'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'
import { Database, openDb, type Db } from './helpers/sqlite.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-monitoring-events-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))


/**
 * A small workflow with each kind of event: a chain with dependency waits (1 and 2 futures), a
 * task that fails both its tries (retries: 1) with an error that has a cause, and a dependent of
 * it that is not run.
 */
async function workflow(dfk: DataFlowKernel) {
  const a = apps.double.with({ dfk })(1)
  const b = apps.add.with({ dfk })(a, 1)
  const c = apps.add.with({ dfk })(a, b)
  const failing = apps.failWithCause.with({ dfk })('m')
  const dependent = apps.double.with({ dfk })(failing as unknown as number)
  await awaitAllSettled([a, b, c, failing, dependent])
  return { a, b, c, failing, dependent }
}

/** What every monitored run of `workflow` must have in the database. */
function checkRun(t: Test, db: Db, dfk: DataFlowKernel, label: string, ids: Awaited<ReturnType<typeof workflow>>, remoteFrame: RegExp) {
  const workflowRow = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(dfk.runId)
  t.ok(workflowRow, 'the workflow row')
  const run = workflowRow.run as number
  t.equal(workflowRow.run_dir, dfk.runDir, 'with its run directory')
  t.same(JSON.parse(workflowRow.executors), [label], 'its executors')
  t.ok(workflowRow.end_ms >= workflowRow.start_ms, 'its start and end')
  t.match(JSON.parse(workflowRow.counts), { exec_done: 3, failed: 1, dep_fail: 1 }, 'and the final counts')

  const tasks = db.prepare('SELECT * FROM task WHERE run = ? ORDER BY task_id').all(run)
  t.same(
    tasks.map((row) => [row.task_id, row.app, row.state]),
    [
      [ids.a.taskId, 'double', 'exec_done'],
      [ids.b.taskId, 'add', 'exec_done'],
      [ids.c.taskId, 'add', 'exec_done'],
      [ids.failing.taskId, 'failWithCause', 'failed'],
      [ids.dependent.taskId, 'double', 'dep_fail'],
    ],
    'a row per task with its app and final state',
  )
  t.ok(tasks.filter((row) => row.state === 'exec_done').every((row) => row.error === null && row.error_stack === null), 'done tasks have no error')

  const failed = tasks.find((row) => row.task_id === ids.failing.taskId)
  t.equal(failed.error, 'Error: outer m', "the failed task's error")
  t.match(failed.error_stack, /^Error: outer m\n\s+at (Object\.)?failWithCause\b/, 'its stack, from the app function down')
  t.match(failed.error_stack, remoteFrame, 'taken where the task ran')
  t.notMatch(failed.error_stack, /dataflow\/kernel/, 'not in the kernel')
  t.match(failed.error_stack, /\ncaused by:\nRangeError: inner m\n\s+at (Object\.)?failWithCause\b/, 'with its cause and the cause’s stack')
  t.equal(failed.last_try, 1, 'after its second try')
  const dependent = tasks.find((row) => row.task_id === ids.dependent.taskId)
  t.match(dependent.error, new RegExp(`was not run because its dependency #${ids.failing.taskId} failed: Error: outer m`), "the dependent's error names the failed task")
  t.equal(dependent.error_stack, null, 'and keeps no stack of its own (the root task has it)')

  const tries = db.prepare('SELECT * FROM try WHERE run = ? AND task_id = ? ORDER BY try_number').all(run, ids.failing.taskId)
  t.same(tries.map((row) => [row.try_number, row.state, row.executor]), [[0, 'failed', label], [1, 'failed', label]], 'a row per try of the failed task')
  for (const row of tries) {
    t.equal(row.fail_cause, 'Error: outer m', `try ${row.try_number}: its cause`)
    t.match(row.fail_stack, /^Error: outer m\n\s+at (Object\.)?failWithCause\b[^]*caused by:\nRangeError: inner m/, `try ${row.try_number}: its stack`)
    t.ok(row.launched_ms <= row.end_ms, `try ${row.try_number}: launched before it ended`)
  }

  const states = (taskId: number) =>
    db.prepare('SELECT state, detail FROM task_history WHERE run = ? AND task_id = ? ORDER BY time_ms, try_number, step').all(run, taskId).map((row) => (row.detail && row.state === 'dep_wait' ? `dep_wait(${row.detail})` : row.state))
  t.match(states(ids.a.taskId).join('>'), /^launched>(running>)?exec_done$/, 'statuses of a task with no dependency')
  t.match(states(ids.b.taskId).join('>'), /^pending>dep_wait\(1\)>launched>(running>)?exec_done$/, 'a task waiting on one future records the wait')
  t.match(states(ids.c.taskId).join('>'), /^pending>dep_wait\(2\)>launched>(running>)?exec_done$/, 'and on two')
  t.match(states(ids.failing.taskId).join('>'), /^launched>(running>)?failed>retry>pending>launched>(running>)?failed$/, 'the failed task: its retry between its tries')
  t.same(states(ids.dependent.taskId), ['pending', 'dep_wait(1)', 'dep_fail'], 'the dependent waited, then failed')
  t.equal(db.prepare('SELECT count(*) AS n FROM try WHERE run = ? AND task_id = ?').get(run, ids.dependent.taskId).n, 0, 'and has no try row: it never ran')
  return run
}

t.test('a monitored thread-pool run: tasks, tries, statuses, dependency waits, the error and stack of a failed task; manager and resource rows from the channels', async (t) => {
  const runDir = join(scratch, 'threads', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const dfk = new DataFlowKernel({ runDir, retries: 1, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  const states = listen<TaskStateMessage>(t, channels.taskState)
  await dfk.start()
  const ids = await workflow(dfk)
  // What events-remote's executors report through host.monitor arrives on these channels; here
  // published straight onto them, the recorder's subscription is the same. Another run's event
  // must not land in this run's rows.
  const now = Date.now()
  channels.manager.publish({ runId: dfk.runId!, executor: 'pool', managerId: 'm1', hostname: 'node1', blockId: '0', workers: 2, event: 'registered', timeMs: now })
  channels.manager.publish({ runId: dfk.runId!, executor: 'pool', managerId: 'm1', hostname: 'node1', blockId: '0', workers: 2, event: 'lost', reason: 'missed 3 heartbeats', timeMs: now + 1 })
  const sample = { tryNumber: 0, managerId: 'm1', hostname: 'node1', cpuUserS: 1.5, cpuSystemS: 0.25, rssBytes: 50e6, readBytes: 4096, writeBytes: 8192 }
  channels.taskResource.publish({ runId: dfk.runId!, executor: 'pool', samples: [{ ...sample, taskId: ids.a.taskId, timeMs: now }, { ...sample, taskId: ids.b.taskId, timeMs: now + 5 }] })
  channels.block.publish({ runId: 'another-run', executor: 'pool', blockId: '9', jobId: '99', state: 'submitted', timeMs: now })
  await dfk.cleanup()
  t.same(dfk.recorderStats!.errors, [], 'the writer reported no error')
  t.equal(dfk.recorderStats!.written, dfk.recorderStats!.sent, 'and wrote every record')
  t.ok(states.every((m) => m.runId === dfk.runId), 'channel subscribers see the run id on every state change')

  const db = openDb(t, dbPath)
  const run = checkRun(t, db, dfk, 'pool', ids, /\/runtime\/execute\.[jt]s:\d+/)
  t.same(
    db.prepare('SELECT manager_id, hostname, block_id, workers, event, reason FROM node WHERE run = ? ORDER BY time_ms').all(run),
    [
      { manager_id: 'm1', hostname: 'node1', block_id: '0', workers: 2, event: 'registered', reason: null },
      { manager_id: 'm1', hostname: 'node1', block_id: '0', workers: 2, event: 'lost', reason: 'missed 3 heartbeats' },
    ],
    'node rows: the manager registered, then was lost with the reason',
  )
  t.same(
    db.prepare('SELECT task_id, try_number, manager_id, cpu_user_s, cpu_system_s, rss_bytes, read_bytes, write_bytes FROM resource WHERE run = ? ORDER BY task_id').all(run),
    [ids.a.taskId, ids.b.taskId].map((taskId) => ({ task_id: taskId, try_number: 0, manager_id: 'm1', cpu_user_s: 1.5, cpu_system_s: 0.25, rss_bytes: 50e6, read_bytes: 4096, write_bytes: 8192 })),
    'a resource row per sample',
  )
  t.equal(db.prepare("SELECT count(*) AS n FROM block WHERE job_id = '99'").get().n, 0, "another run's block event is not in this run's database")
  t.equal(db.prepare('SELECT count(*) AS n FROM workflow').get().n, 1, 'nor its workflow')
})

t.test('a monitored HTEX run on a LocalProvider: the same rows, the remote stack, and the block with its job id and states', async (t) => {
  const runDir = join(scratch, 'htex', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const blocks = listen<BlockMessage>(t, channels.block)
  const executor = new HighThroughputExecutor({ label: 'htex', maxWorkersPerNode: 2, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }) })
  const dfk = new DataFlowKernel({ runDir, retries: 1, executors: [executor], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const ids = await workflow(dfk)
  await dfk.cleanup()
  t.same(dfk.recorderStats!.errors, [], 'the writer reported no error')

  const mine = blocks.filter((m) => m.runId === dfk.runId)
  t.equal(mine.length, blocks.length, 'block messages carry the run id')
  t.match(mine[0], { executor: 'htex', blockId: '0', state: 'submitted', jobId: /^\d+$/ }, 'the first says the block was submitted, with the job id (the pid)')
  t.match(mine.map((m) => m.state), ['submitted', 'running', /^(finished|cancelled)$/], 'then running, then ended')

  const db = openDb(t, dbPath)
  // The worker process's frames (this process never runs the task): the stack is from where it ran.
  const run = checkRun(t, db, dfk, 'htex', ids, /\/runtime\/execute\.[jt]s:\d+/)
  const rows = db.prepare('SELECT block_id, job_id, state, reason FROM block WHERE run = ? ORDER BY rowid').all(run)
  t.match(rows.map((row) => row.state), ['submitted', 'running', /^(finished|cancelled)$/], 'block rows: submitted, running, ended')
  t.ok(rows.every((row) => row.block_id === '0' && row.job_id === mine[0]!.jobId), 'each with the block id and the provider job id')
  t.match(rows[1].reason, /manager .* registered|the provider reports it running/, 'running says who saw it run')
  t.match(rows[2].reason, /the executor shut down/, 'the end says why')
  const executors = db.prepare('SELECT DISTINCT executor FROM try WHERE run = ? AND launched_ms IS NOT NULL').all(run)
  t.same(executors, [{ executor: 'htex' }], 'tries that were launched name the executor')
})

const oneThread = (label: string): Executor[] => [new ThreadPoolExecutor({ label, maxThreads: 1 })]

t.test('kernels in one process, one after another and at once, each in its own workflow rows', async (t) => {
  const runDir = join(scratch, 'many', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  const kernel = (label: string) => {
    const dfk = new DataFlowKernel({ runDir, executors: oneThread(label), monitoring: { enabled: true } })
    t.teardown(() => dfk.cleanup())
    return dfk
  }
  const runTasks = async (dfk: DataFlowKernel, n: number) => {
    const futures = []
    for (let i = 0; i < n; i++) futures.push(apps.double.with({ dfk })(i))
    await awaitAllSettled(futures)
  }
  // one after another
  const first = await kernel('first').start()
  await runTasks(first, 30)
  await first.cleanup()
  const second = await kernel('second').start()
  await runTasks(second, 40)
  await second.cleanup()
  // at once: both recorders hear both kernels' messages and each keeps its own run's
  const [third, fourth] = await Promise.all([kernel('third').start(), kernel('fourth').start()])
  await Promise.all([runTasks(third, 200), runTasks(fourth, 300)])
  await Promise.all([third.cleanup(), fourth.cleanup()])
  for (const dfk of [first, second, third, fourth]) t.same(dfk.recorderStats!.errors, [], `run ${dfk.runId}: no writer error`)

  const db = openDb(t, dbPath)
  const expected = new Map([
    [first, 30],
    [second, 40],
    [third, 200],
    [fourth, 300],
  ])
  t.equal(db.prepare('SELECT count(*) AS n FROM workflow').get().n, 4, 'four workflow rows')
  for (const [dfk, n] of expected) {
    const row = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(dfk.runId)
    const label = JSON.parse(row.executors)[0]
    t.equal(db.prepare('SELECT count(*) AS n FROM task WHERE run = ? AND executor = ?').get(row.run, label).n, n, `${label}: its ${n} tasks, on its executor`)
    t.equal(db.prepare('SELECT count(*) AS n FROM task WHERE run = ?').get(row.run).n, n, `${label}: and no other`)
    const statuses = db.prepare("SELECT count(*) AS n FROM task_history WHERE run = ? AND state = 'exec_done'").get(row.run).n
    t.equal(statuses, n, `${label}: one final status per task (none recorded twice)`)
    t.equal(JSON.parse(row.counts).exec_done, n, `${label}: its counts`)
  }
})

t.test('the other paths a task takes: a join app, a cache hit, a task long enough for a snapshot, a cancelled waiting task', async (t) => {
  const runDir = join(scratch, 'paths', 'runinfo')
  const dfk = new DataFlowKernel({ runDir, executors: oneThread('p'), monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const joined = apps.fanOut.with({ dfk })(2)
  const first = apps.stamped.with({ dfk })(7)
  await first
  const hit = apps.stamped.with({ dfk })(7)
  const long = apps.sleep.with({ dfk })(2500)
  const blocker = apps.sleep.with({ dfk })(3000)
  const waiting = apps.double.with({ dfk })(blocker as unknown as number)
  const db = openDb(t, join(runDir, 'monitoring.db'))
  const runOf = () => db.prepare('SELECT run FROM workflow WHERE run_id = ?').get(dfk.runId)?.run as number | undefined
  // the long task appears while it runs: a snapshot after a second, before its end
  await waitFor(() => db.prepare('SELECT state FROM task WHERE run = ? AND task_id = ?').get(runOf(), long.taskId)?.state === 'running' || long.done, 'the long task as running')
  t.notOk(long.done, 'the snapshot came while it ran')
  t.ok(waiting.cancel(), 'the waiting task cancels')
  await awaitAllSettled<unknown>([joined, hit, long, blocker, waiting])
  t.equal(await hit, await first, 'a cache hit')
  await dfk.cleanup()
  t.same(dfk.recorderStats!.errors, [], 'no writer error')
  t.equal(dfk.recorderStats!.written, dfk.recorderStats!.sent, 'every record written')
  const run = runOf()
  const history = (taskId: number) =>
    db.prepare('SELECT state FROM task_history WHERE run = ? AND task_id = ? ORDER BY time_ms, try_number, step').all(run, taskId).map((r: { state: string }) => r.state).join('>')
  t.match(history(joined.taskId), /^launched>joining>exec_done$/, 'the join app: launched, joining, done')
  t.equal(history(hit.taskId), 'memo_done', 'the cache hit: its end only')
  t.match(history(long.taskId), /^launched>running>exec_done$/, 'the long task: its whole history after the snapshot')
  const longRow = db.prepare('SELECT * FROM task WHERE run = ? AND task_id = ?').get(run, long.taskId)
  t.ok(longRow.launched_ms <= longRow.running_ms && longRow.running_ms < longRow.end_ms && longRow.end_ms - longRow.launched_ms >= 2400, 'and its times in its row')
  t.match(history(waiting.taskId), /^pending>dep_wait>cancelled$/, 'the cancelled task: waited, then cancelled')
  for (const [label, future] of [['join', joined], ['first', first], ['hit', hit], ['long', long], ['cancelled', waiting]] as const) {
    t.equal(db.prepare('SELECT count(*) AS n FROM try WHERE run = ? AND task_id = ?').get(run, future.taskId).n, 1, `${label}: one try row`)
  }
})

t.test('a recorder of every run: a run it heard start, and one first heard of mid-run', async (t) => {
  const dbPath = join(scratch, 'all', 'monitoring.db')
  const recorder = await new MonitoringRecorder({ db: dbPath, retention: { maxAgeDays: undefined, maxRuns: undefined }, batchMs: 20 }).start()
  t.teardown(() => recorder.close())
  const heard = new DataFlowKernel({ runDir: join(scratch, 'all', 'runinfo'), executors: oneThread('heard') })
  t.teardown(() => heard.cleanup())
  await heard.start()
  await apps.double.with({ dfk: heard })(1)
  await heard.cleanup()

  // A kernel that started before the recorder: its start was missed, its tasks are not.
  const unmonitored = new DataFlowKernel({ runDir: join(scratch, 'all', 'runinfo'), executors: oneThread('late') })
  t.teardown(() => unmonitored.cleanup())
  await recorder.close()
  await unmonitored.start()
  const late = await new MonitoringRecorder({ db: dbPath, retention: { maxAgeDays: undefined, maxRuns: undefined }, batchMs: 20 }).start()
  t.teardown(() => late.close())
  await apps.double.with({ dfk: unmonitored })(2)
  await unmonitored.cleanup()
  const stats = await late.close()
  t.same(stats.errors, [], 'no writer error')

  const db = openDb(t, dbPath)
  const heardRow = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(heard.runId)
  t.equal(heardRow.run_dir, heard.runDir, 'the run it heard start has its directory')
  t.equal(db.prepare('SELECT count(*) AS n FROM task WHERE run = ?').get(heardRow.run).n, 1, 'and its task')
  const lateRow = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(unmonitored.runId)
  t.ok(lateRow, 'a run first heard of in a task record gets its workflow row')
  t.equal(db.prepare("SELECT count(*) AS n FROM task WHERE run = ? AND state = 'exec_done'").get(lateRow.run).n, 1, 'with its task')
  t.ok(lateRow.end_ms > 0 && JSON.parse(lateRow.counts).exec_done === 1, 'and its end')
})

t.test("a kernel whose executor fails to start: its workflow row is ended, not left running", async (t) => {
  const runDir = join(scratch, 'broken', 'runinfo')
  // A user's executor plug-in whose start fails (a real one: the Executor interface is public).
  const broken: Executor = {
    label: 'broken',
    type: 'broken',
    outstanding: 0,
    validate() {},
    async start() {
      throw new Error('no cluster today')
    },
    submit() {},
    cancel: () => false,
    async shutdown() {},
    describe: () => ({}),
  }
  const dfk = new DataFlowKernel({ runDir, executors: [broken], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await t.rejects(dfk.start(), /no cluster today/)
  const db = openDb(t, join(runDir, 'monitoring.db'))
  const row = db.prepare('SELECT * FROM workflow WHERE run_id = ?').get(dfk.runId)
  t.ok(row && row.end_ms >= row.start_ms, 'the row has its end')
  t.same(JSON.parse(row.executors), ['broken'], 'and names the executors it was to start')
})

/** Today's tables as an earlier writer made them: `try` a table of every try, no app table, without `dropped` columns. */
function oldVersionFile(path: string, dropped: readonly (readonly [string, string, string])[]) {
  const old = new Database(path)
  old.pragma('journal_mode = WAL')
  old.exec(DDL)
  old.exec('DROP VIEW try; DROP VIEW task_history; DROP TABLE app; ALTER TABLE earlier_try RENAME TO try')
  for (const [table, column] of dropped) old.exec(`ALTER TABLE ${table} DROP COLUMN ${column}`)
  return old
}

t.test('a version 3 database (every try in the try table) is migrated: latest tries into their task rows, the rest kept', async (t) => {
  const runDir = join(scratch, 'upgrade3', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  mkdirSync(runDir, { recursive: true })
  const old = oldVersionFile(dbPath, ADDED_COLUMNS.filter(([table, column]) => table === 'task' && (column === 'launched_ms' || column === 'running_ms')))
  old.exec('INSERT INTO schema_version (version) VALUES (3)')
  old.exec(`INSERT INTO workflow (run, run_id, run_dir, executors, start_ms) VALUES (1, 'v3', '/old', '["x"]', 1000)`)
  // task 1 ran once; task 2 failed its first try and its second succeeded
  old.exec(`INSERT INTO task (run, task_id, app, executor, state, last_try, submit_ms, end_ms) VALUES (1, 1, 'a', 'x', 'exec_done', 0, 1000, 1030), (1, 2, 'b', 'x', 'exec_done', 1, 1000, 1090)`)
  old.exec(`INSERT INTO try (run, task_id, try_number, executor, launched_ms, running_ms, end_ms, state, fail_cause) VALUES
    (1, 1, 0, 'x', 1001, 1002, 1030, 'exec_done', NULL), (1, 2, 0, 'x', 1001, 1003, 1040, 'failed', 'Error: first'), (1, 2, 1, 'x', 1050, 1060, 1090, 'exec_done', NULL)`)
  old.close()

  const dfk = new DataFlowKernel({ runDir, executors: oneThread('x'), monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  t.equal(await apps.double.with({ dfk })(4), 8)
  await dfk.cleanup()
  t.same(dfk.recorderStats!.errors, [], 'no writer error')
  const db = openDb(t, dbPath)
  t.equal(db.prepare('SELECT max(version) AS v FROM schema_version').get().v, SCHEMA_VERSION, 'the file now says the current version')
  t.same(db.prepare('SELECT task_id, launched_ms, running_ms FROM task WHERE run = 1 ORDER BY task_id').all(), [
    { task_id: 1, launched_ms: 1001, running_ms: 1002 },
    { task_id: 2, launched_ms: 1050, running_ms: 1060 },
  ], 'the latest tries are in their task rows')
  t.same(db.prepare('SELECT task_id, try_number, fail_cause FROM earlier_try WHERE run = 1').all(), [{ task_id: 2, try_number: 0, fail_cause: 'Error: first' }], 'the retried try is kept')
  t.same(
    db.prepare('SELECT task_id, try_number, launched_ms, end_ms, state FROM try WHERE run = 1 ORDER BY task_id, try_number').all(),
    [
      { task_id: 1, try_number: 0, launched_ms: 1001, end_ms: 1030, state: 'exec_done' },
      { task_id: 2, try_number: 0, launched_ms: 1001, end_ms: 1040, state: 'failed' },
      { task_id: 2, try_number: 1, launched_ms: 1050, end_ms: 1090, state: 'exec_done' },
    ],
    'the try view gives every try as the table did',
  )
  t.same(db.prepare('SELECT app FROM app WHERE run = 1 ORDER BY app').all().map((r: { app: string }) => r.app), ['a', 'b'], 'the app table is filled')
  const own = db.prepare('SELECT t.launched_ms, t.end_ms FROM task t JOIN workflow w USING (run) WHERE w.run_id = ?').get(dfk.runId)
  t.ok(own.launched_ms > 0 && own.end_ms >= own.launched_ms, 'and the new run is written in the new form')
})

t.test('a version 1 database (before the error and reason columns) is upgraded when a run opens it', async (t) => {
  const runDir = join(scratch, 'upgrade', 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  mkdirSync(runDir, { recursive: true })
  // A version 1 file as the earlier writer left it: a try table with every try, no app table,
  // and none of the added columns.
  const old = oldVersionFile(dbPath, ADDED_COLUMNS)
  old.exec('INSERT INTO schema_version (version) VALUES (1)')
  old.exec(`INSERT INTO workflow (run_id, run_dir, executors, start_ms) VALUES ('earlier', '/old', '[]', ${Date.now() - 1000})`)
  old.close()

  const dfk = new DataFlowKernel({ runDir, executors: oneThread('one'), monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const failing = apps.failWithCause.with({ dfk })('u')
  await awaitAllSettled([failing])
  await dfk.cleanup()
  t.same(dfk.recorderStats!.errors, [], 'no writer error')
  const db = openDb(t, dbPath)
  t.equal(db.prepare('SELECT max(version) AS v FROM schema_version').get().v, SCHEMA_VERSION, 'the file now says the current version')
  t.equal(db.prepare("SELECT count(*) AS n FROM workflow WHERE run_id = 'earlier'").get().n, 1, 'the earlier run is kept')
  const row = db.prepare('SELECT t.error, t.error_stack FROM task t JOIN workflow w USING (run) WHERE w.run_id = ?').get(dfk.runId)
  t.equal(row.error, 'Error: outer u', 'the new run has its error in the added column')
  t.match(row.error_stack, /caused by:/, 'and its stack')
})

t.test('an idle HTEX block scaled in ends with that reason; the next block has its own rows', async (t) => {
  const runDir = join(scratch, 'scale', 'runinfo')
  const blocks = listen<BlockMessage>(t, channels.block)
  const executor = new HighThroughputExecutor({
    label: 'auto',
    maxWorkersPerNode: 1,
    heartbeatPeriodMs: 200,
    heartbeatThresholdMs: 2000,
    strategy: 'htex_auto_scale',
    strategyPeriodMs: 200,
    maxIdleTimeMs: 1000,
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const dfk = new DataFlowKernel({ runDir, executors: [executor], monitoring: { enabled: true } })
  t.teardown(() => dfk.cleanup({ deadlineMs: 3000 }))
  await dfk.start()
  t.equal(await apps.double.with({ dfk })(1), 2)
  const ended = (blockId: string) => blocks.find((m) => m.blockId === blockId && ['finished', 'cancelled', 'failed'].includes(m.state))
  await waitFor(() => ended('0') !== undefined, 'the idle block to be scaled in', 20_000)
  t.match(ended('0'), { runId: dfk.runId, executor: 'auto', reason: /^scaled in/ }, 'its end says it was scaled in')
  t.equal(await apps.double.with({ dfk })(2), 4, 'a new task brings a new block')
  await dfk.cleanup({ deadlineMs: 3000 })

  const db = openDb(t, join(runDir, 'monitoring.db'))
  const rows = db.prepare('SELECT block_id, job_id, state, reason FROM block ORDER BY rowid').all()
  const of = (blockId: string) => rows.filter((row) => row.block_id === blockId)
  t.match(of('0').map((row) => row.state), ['submitted', 'running', /^(finished|cancelled)$/], 'block 0: submitted, running, ended')
  t.match(of('0')[2].reason, /^scaled in/, 'with the reason')
  t.match(of('1').map((row) => row.state), ['submitted', 'running', /^(finished|cancelled)$/], 'block 1 too')
  t.not(of('1')[0].job_id, of('0')[0].job_id, 'each with its own job id')
})
