/**
 * bench/monitoring-million: issue 12's second figure. A million no-op tasks (ThreadPoolExecutor,
 * 2 threads) with monitoring on, while a reader in another process (better-sqlite3, read-only, no
 * busy timeout) runs dashboard-like queries in a loop. Checks, and prints:
 *  - every event recorded: the database's task rows, try rows and final states against the
 *    kernel's counts, and the recorder's records sent == written with no writer error;
 *  - no "database is locked" (SQLITE_BUSY) or any other error in the reader;
 *  - the writer's lag at the end: from the last task state change (seen on the
 *    `tsflow:task:state` channel) to the moment a separate connection sees it committed (< 1 s).
 *
 *   node out/bench/monitoring-million.js [--tasks 1000000] [--window 100000] [--executor threads|htex] [--workers 2]
 *
 * The reader repeats its round of queries (workflows, tasks by state, the newest page, failed
 * tasks, a task's history and tries, per-app summary of the newest 10,000) every 100 ms, five
 * times as often as the dashboard server polls.
 * Tasks are submitted in chunks with at most --window outstanding, as a long workflow would.
 * Appends a line to bench/results/monitoring-million.jsonl; exits 1 when a check fails.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, app, channels, main, type AppFuture } from 'tsflow'
import { appendResult, parseFlags } from './lib/results.js'
import { threadCpu, writerCpu } from './lib/threads.js'

export const noop = app(function noop(x: number) {
  return x
})

interface Db {
  prepare(sql: string): { get(...p: unknown[]): any; all(...p: unknown[]): any[] }
  pragma(sql: string): unknown
  close(): void
}
const require = createRequire(import.meta.url)
const Database = require('better-sqlite3') as new (path: string, options?: { readonly?: boolean; fileMustExist?: boolean }) => Db

// The reader: its own process, read-only, busy_timeout 0 so that any lock would surface at once
// as SQLITE_BUSY ("database is locked"). The queries a dashboard page makes for a live run.
const READER = `
const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))})
const fs = require('node:fs')
const path = process.argv[1]
let queries = 0, rounds = 0, maxQueryMs = 0, errors = [], maxTasks = 0, stop = false, db
process.stdin.on('end', () => { stop = true }); process.stdin.resume()
const timed = (statement, ...params) => {
  const started = performance.now()
  const rows = statement.all(...params)
  const ms = performance.now() - started
  if (ms > maxQueryMs) maxQueryMs = ms
  queries++
  return rows
}
let q
const loop = () => {
  if (stop) { process.stdout.write(JSON.stringify({ queries, rounds, maxQueryMs, errors: errors.slice(0, 20), errorCount: errors.length, maxTasks })); process.exit(0) }
  try {
    if (!db && fs.existsSync(path)) {
      db = new Database(path, { readonly: true, fileMustExist: true })
      db.pragma('busy_timeout = 0')
      q = {
        runs: db.prepare('SELECT run, run_id, start_ms, end_ms FROM workflow ORDER BY start_ms DESC LIMIT 20'),
        states: db.prepare('SELECT state, count(*) AS n FROM task WHERE run = ? GROUP BY state'),
        page: db.prepare('SELECT * FROM task WHERE run = ? ORDER BY task_id DESC LIMIT 50'),
        failed: db.prepare("SELECT * FROM task WHERE run = ? AND state = 'failed' ORDER BY task_id LIMIT 50"),
        history: db.prepare('SELECT * FROM task_history WHERE run = ? AND task_id = ? ORDER BY time_ms, try_number, step'),
        tries: db.prepare('SELECT * FROM try WHERE run = ? AND task_id = ?'),
        apps: db.prepare('SELECT app, count(*) AS n, avg(end_ms - submit_ms) AS mean FROM task WHERE run = ? AND task_id > ? GROUP BY app'),
      }
    }
    if (db) {
      const [latest] = timed(q.runs)
      if (latest) {
        let tasks = 0
        for (const row of timed(q.states, latest.run)) tasks += row.n
        if (tasks > maxTasks) maxTasks = tasks
        const page = timed(q.page, latest.run)
        timed(q.failed, latest.run)
        if (page.length > 0) {
          timed(q.history, latest.run, page[0].task_id)
          timed(q.tries, latest.run, page[0].task_id)
          // per-app summary of the newest 10,000 tasks (a live page's recent window)
          timed(q.apps, latest.run, page[0].task_id - 10000)
        }
        rounds++
      }
    }
  } catch (error) { errors.push(String(error && error.code) + ' ' + error.message + ' at round ' + rounds) }
  setTimeout(loop, 100)
}
loop()
`

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '1000000', window: '100000', executor: 'threads', workers: '2', reader: 'on' })
  const workers = Number(flags.workers)
  const executor =
    flags.executor === 'htex'
      ? new HighThroughputExecutor({ maxWorkersPerNode: workers, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }) })
      : flags.executor === 'threads'
        ? new ThreadPoolExecutor({ maxThreads: workers })
        : undefined
  if (!executor) throw new Error(`--executor: threads or htex (got ${flags.executor})`)
  const total = Number(flags.tasks)
  const window = Number(flags.window)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-monitoring-million-'))
  const runDir = join(scratch, 'runinfo')
  const dbPath = join(runDir, 'monitoring.db')
  // --reader off: the same run without the reader, to see what it costs the writer
  const reader = spawn(process.execPath, ['-e', flags.reader === 'off' ? "process.stdin.resume(); process.stdin.on('end', () => { process.stdout.write('{}'); process.exit(0) })" : READER, dbPath], { stdio: ['pipe', 'pipe', 'inherit'] })
  let readerOut = ''
  reader.stdout!.setEncoding('utf8').on('data', (chunk: string) => (readerOut += chunk))
  const readerDone = new Promise<void>((resolve) => reader.on('exit', () => resolve()))
  const load1 = loadavg()[0]!
  try {
    // The last task state change the kernel published: its task and time.
    let lastChange = { taskId: 0, to: '', timeMs: 0 }
    const onState = (m: { taskId: number; to: string; timeMs: number }) => (lastChange = m)
    channels.taskState.subscribe(onState)

    const dfk = await new DataFlowKernel({ runDir, executors: [executor], monitoring: { enabled: true, resourceIntervalMs: 1000 } }).start()
    const submit = noop.with({ dfk })
    const started = performance.now()
    let submitted = 0
    let done = 0
    let failed = 0
    let wake: (() => void) | undefined
    let draining = false // after the last submission: wake only when every task settled
    const settled = (future: AppFuture<number>) => {
      done++
      if (!future.succeeded) failed++
      if (wake && (draining ? done === total : submitted - done < window / 2)) {
        const resume = wake
        wake = undefined
        resume()
      }
    }
    let nextReport = 100_000
    while (submitted < total) {
      const chunk = Math.min(total - submitted, 2048)
      for (let i = 0; i < chunk; i++) {
        const future = submit(submitted++)
        future.onSettled(() => settled(future))
      }
      if (submitted - done >= window) await new Promise<void>((resolve) => (wake = resolve))
      else await new Promise<void>((resolve) => setImmediate(resolve))
      if (done >= nextReport) {
        const seconds = (performance.now() - started) / 1000
        console.log(`${done.toLocaleString('en')} done in ${seconds.toFixed(1)} s (${Math.round(done / seconds).toLocaleString('en')} tasks/s); writer: ${JSON.stringify(writerProgress(dfk))}`)
        nextReport += 100_000
      }
    }
    draining = true
    if (done < total) await new Promise<void>((resolve) => (wake = resolve))
    const runSeconds = (performance.now() - started) / 1000
    channels.taskState.unsubscribe(onState)
    const runId = dfk.runId!
    const counts = { ...dfk.taskCounts() }

    // Writer lag: from the last state change to a separate connection seeing it committed.
    const db = new Database(dbPath, { readonly: true, fileMustExist: true })
    const run = (db.prepare('SELECT run FROM workflow WHERE run_id = ?').get(runId) as { run: number }).run
    const probe = db.prepare('SELECT state FROM task WHERE run = ? AND task_id = ?')
    let visibleAt = 0
    for (;;) {
      const row = probe.get(run, lastChange.taskId) as { state: string } | undefined
      if (row?.state === lastChange.to) {
        visibleAt = Date.now()
        break
      }
      if (Date.now() - lastChange.timeMs > 30_000) break
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const lagMs = visibleAt === 0 ? undefined : visibleAt - lastChange.timeMs

    // CPU of this process's threads now that the writer has caught up: the writer's own, the rest.
    const threads = threadCpu()
    const writerCpuS = writerCpu(threads)
    const mainCpuS = threads.get(String(process.pid))?.cpuS ?? 0
    let processCpuS = 0
    for (const thread of threads.values()) processCpuS += thread.cpuS
    const walMiB = Math.round((statSync(`${dbPath}-wal`, { throwIfNoEntry: false })?.size ?? 0) / 2 ** 20)
    const cleanupStarted = performance.now()
    await dfk.cleanup()
    const cleanupMs = performance.now() - cleanupStarted
    const stats = dfk.recorderStats!
    reader.stdin!.end()
    await readerDone
    const seen = JSON.parse(readerOut || '{}') as { queries: number; rounds: number; maxQueryMs: number; errors: string[]; errorCount: number; maxTasks: number }

    const taskRows = (db.prepare('SELECT count(*) AS n FROM task WHERE run = ?').get(run) as { n: number }).n
    const tryRows = (db.prepare('SELECT count(*) AS n FROM try WHERE run = ?').get(run) as { n: number }).n
    const doneRows = (db.prepare("SELECT count(*) AS n FROM task WHERE run = ? AND state = 'exec_done' AND end_ms IS NOT NULL").get(run) as { n: number }).n
    const tryDone = (db.prepare("SELECT count(*) AS n FROM try WHERE run = ? AND state = 'exec_done' AND launched_ms IS NOT NULL AND end_ms IS NOT NULL").get(run) as { n: number }).n
    const workflow = db.prepare('SELECT end_ms, counts FROM workflow WHERE run = ?').get(run) as { end_ms: number | null; counts: string | null }
    db.close()
    const dbMiB = Math.round((statSync(dbPath).size / 2 ** 20) * 10) / 10

    const checks = {
      'task rows = tasks': taskRows === total,
      'try rows = tasks (no retries)': tryRows === total,
      'exec_done rows = kernel exec_done count': doneRows === counts.exec_done && tryDone === counts.exec_done,
      'workflow end and counts recorded': workflow.end_ms !== null && JSON.parse(workflow.counts ?? '{}').exec_done === counts.exec_done,
      'records sent = written': stats.sent === stats.written,
      'no writer error': stats.errors.length === 0,
      'no reader error (no "database is locked")': flags.reader === 'off' || (seen.errorCount === 0 && seen.rounds > 0),
      'writer lag at the end < 1 s': lagMs !== undefined && lagMs < 1000,
    }
    const row = {
      tasks: total,
      window,
      executor: flags.executor,
      workers,
      walMiB,
      load1Before: load1,
      load1After: loadavg()[0],
      runSeconds: Math.round(runSeconds * 10) / 10,
      tasksPerSec: Math.round(total / runSeconds),
      failed,
      kernelCounts: counts,
      taskRows,
      tryRows,
      recorder: { sent: stats.sent, written: stats.written, batches: stats.batches, lagMs: stats.lagMs, maxLagMs: stats.maxLagMs, errors: stats.errors },
      endLagMs: lagMs,
      cpuS: { writer: writerCpuS, main: mainCpuS, process: Math.round(processCpuS * 100) / 100 },
      writerCpuUsPerTask: Math.round((writerCpuS * 1e6) / total * 100) / 100,
      cleanupMs: Math.round(cleanupMs),
      reader: seen,
      dbMiB,
      checks,
    }
    console.log(`${total.toLocaleString('en')} tasks in ${row.runSeconds} s (${row.tasksPerSec.toLocaleString('en')} tasks/s), load average ${load1.toFixed(1)} before, ${row.load1After!.toFixed(1)} after`)
    console.log(`database: ${taskRows.toLocaleString('en')} task rows, ${tryRows.toLocaleString('en')} try rows, ${dbMiB} MiB (WAL ${walMiB} MiB at the end of the run); kernel exec_done ${counts.exec_done}, failed ${failed}`)
    console.log(`recorder: ${stats.written.toLocaleString('en')} of ${stats.sent.toLocaleString('en')} records written in ${stats.batches} batches, max batch lag ${stats.maxLagMs} ms; errors ${JSON.stringify(stats.errors)}`)
    console.log(`CPU: writer thread ${writerCpuS.toFixed(2)} s (${row.writerCpuUsPerTask} us per task), main thread ${mainCpuS.toFixed(2)} s, whole process ${processCpuS.toFixed(2)} s`)
    console.log(`writer lag at the end (last state change -> visible to another connection): ${lagMs ?? 'never'} ms; cleanup ${row.cleanupMs} ms`)
    console.log(`reader: ${seen.rounds} rounds, ${seen.queries} queries, slowest ${seen.maxQueryMs?.toFixed(1)} ms, errors ${seen.errorCount} ${JSON.stringify(seen.errors)}`)
    for (const [check, ok] of Object.entries(checks)) console.log(`${ok ? 'ok  ' : 'FAIL'} ${check}`)
    console.log(`results appended to ${appendResult('monitoring-million', row)}`)
    if (!Object.values(checks).every(Boolean)) process.exitCode = 1
  } finally {
    reader.kill('SIGKILL')
    rmSync(scratch, { recursive: true, force: true })
  }
})

/** What the recorder has sent and written so far (its stats while running). */
function writerProgress(dfk: DataFlowKernel): { sent: number; written: number; lagMs: number } | undefined {
  const recorder = (dfk as unknown as { recorder?: { stats(): { sent: number; written: number; lagMs: number } } }).recorder
  if (!recorder) return undefined
  const { sent, written, lagMs } = recorder.stats()
  return { sent, written, lagMs }
}
