/**
 * The monitoring writer: a worker thread that alone opens the monitoring database for writing
 * (docs/monitoring.md "Storage"). One writer means no write-write contention, so no "database is
 * locked"; WAL mode means readers (the dashboard, a user's sqlite3 shell) read a snapshot while it
 * writes and never block it. Each batch is one transaction over prepared statements, so 10,000
 * state changes cost one fsync-free commit (synchronous=NORMAL: a power cut may lose the last
 * batches, never corrupt the file), and this thread, not the workflow's event loop, pays for it.
 */
import { readlinkSync, writeFileSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { Rec, STATE_CODES, STATE_FIELDS, SUMMARY_FIELDS, stateCode, type FromWriter, type MonitoringRecord, type ToWriter, type WriterData } from '../protocol/monitoring.js'
import { RUN_TABLES, SCHEMA_VERSION } from './schema.js'
import { open } from './writer-db.js'


const port = parentPort!
// Named 'tsflow-monitor', so that `top -H`, `ps -L` and the benchmarks can tell this thread's CPU
// from the rest (Linux: a thread may rename itself through /proc; elsewhere nothing happens).
try {
  writeFileSync('/proc/thread-self/comm', 'tsflow-monitor')
} catch {
  // not Linux, or /proc not mounted
}
const data = workerData as WriterData
// monitoring.writerNice: let the tasks have the CPU first when they fill every core (Linux:
// setpriority() on a thread id changes that thread only). Only ever lowered: a process already
// niced further keeps its value (raising it back would need privileges).
if (data.nice) {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (data.nice > getPriority(tid)) setPriority(tid, data.nice)
  } catch {
    // not Linux, or not allowed: the writer runs at the process's priority
  }
}
const post = (message: FromWriter) => port.postMessage(message)

const db = open(data.db)

/** Rows per multi-row upsert: one statement step binds 32 rows, a third of the per-row cost of one statement per row. */
const CHUNK = 32
const TASK_COLUMNS = '(run, task_id, app, executor, state, last_try, submit_ms, launched_ms, running_ms, end_ms)'
// A later try's row replaces the earlier try's times (NULL until it launches); the same try's
// fills in what it did not have. (SET sees the row as it was, whatever the order.)
const TASK_CONFLICT = `ON CONFLICT (run, task_id) DO UPDATE SET state = excluded.state, last_try = max(last_try, excluded.last_try),
  executor = coalesce(excluded.executor, executor), end_ms = coalesce(excluded.end_ms, end_ms),
  launched_ms = CASE WHEN excluded.last_try > last_try THEN excluded.launched_ms ELSE coalesce(excluded.launched_ms, launched_ms) END,
  running_ms = CASE WHEN excluded.last_try > last_try THEN excluded.running_ms ELSE coalesce(excluded.running_ms, running_ms) END`
const TASK_WIDTH = 10
const values = (columns: number, rows: number) => Array(rows).fill(`(${Array(columns).fill('?').join(', ')})`).join(', ')

const sql = {
  // A run first seen in another record has a placeholder row (runKey): its start fills it in.
  workflowStart: db.prepare(
    `INSERT INTO workflow (run_id, run_dir, executors, start_ms) VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET
       run_dir = excluded.run_dir, executors = excluded.executors, start_ms = min(start_ms, excluded.start_ms) RETURNING run`,
  ),
  workflowFirstSeen: db.prepare("INSERT INTO workflow (run_id, run_dir, executors, start_ms) VALUES (?, '', '[]', ?) RETURNING run"),
  runOf: db.prepare('SELECT run FROM workflow WHERE run_id = ?'),
  workflowEnd: db.prepare('UPDATE workflow SET end_ms = ?, counts = ? WHERE run_id = ?'),
  workflowProgress: db.prepare('UPDATE workflow SET last_event_ms = max(coalesce(last_event_ms, 0), ?), tasks_ended = tasks_ended + ? WHERE run = ?'),
  // One upsert per task and per try per batch (the batch's changes are merged first, below): a
  // no-op task passes through all its states within one batch, so it costs one task row and one
  // try row, written 32 to a statement.
  // One upsert per task per batch (the batch's changes are merged first, below): a no-op task
  // passes through all its states within one batch, so it costs one task row, written 32 to a statement.
  taskUpsert: db.prepare(`INSERT INTO task ${TASK_COLUMNS} VALUES ${values(TASK_WIDTH, 1)} ${TASK_CONFLICT}`),
  taskUpserts: db.prepare(`INSERT INTO task ${TASK_COLUMNS} VALUES ${values(TASK_WIDTH, CHUNK)} ${TASK_CONFLICT}`),
  // A retried try leaves the task row for earlier_try, with the times the task row already has
  // for it (written in an earlier batch) where this batch has none. Run before the task row's
  // upsert replaces them with the next try's.
  earlierTry: db.prepare(
    `INSERT INTO earlier_try (run, task_id, try_number, executor, launched_ms, running_ms, end_ms, state, fail_cause)
     SELECT @run, @task, @try, coalesce(@executor, t.executor), coalesce(@launched, CASE WHEN t.last_try = @try THEN t.launched_ms END),
       coalesce(@running, CASE WHEN t.last_try = @try THEN t.running_ms END), @end, @state, @cause
     FROM (SELECT 1) LEFT JOIN task t ON t.run = @run AND t.task_id = @task WHERE true
     ON CONFLICT DO UPDATE SET executor = coalesce(excluded.executor, executor), launched_ms = coalesce(excluded.launched_ms, launched_ms),
       running_ms = coalesce(excluded.running_ms, running_ms), end_ms = coalesce(excluded.end_ms, end_ms), state = excluded.state,
       fail_cause = coalesce(excluded.fail_cause, fail_cause)`,
  ),
  app: db.prepare('INSERT OR IGNORE INTO app (run, app) VALUES (?, ?)'),
  status: db.prepare('INSERT INTO status (run, task_id, try_number, state, time_ms, detail) VALUES (?, ?, ?, ?, ?, ?)'),
  taskError: db.prepare('UPDATE task SET error = ?, error_stack = ? WHERE run = ? AND task_id = ?'),
  tryError: db.prepare('UPDATE earlier_try SET fail_cause = coalesce(fail_cause, ?), fail_stack = coalesce(fail_stack, ?) WHERE run = ? AND task_id = ? AND try_number = ?'),
  block: db.prepare('INSERT INTO block (run, executor, block_id, job_id, state, time_ms, reason) VALUES (?, ?, ?, ?, ?, ?, ?)'),
  node: db.prepare('INSERT INTO node (run, executor, manager_id, hostname, block_id, workers, event, time_ms, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
  resource: db.prepare(
    `INSERT INTO resource (run, task_id, try_number, manager_id, time_ms, cpu_user_s, cpu_system_s, rss_bytes, read_bytes, write_bytes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ),
}

// Interned strings of the source (one source per writer: the workflow's recorder).
const names: string[] = []
const name = (id: number): string => names[id]!
// A run's integer key by the interned number of its runId.
const runs = new Map<number, number>()
function runKey(nameId: number): number {
  let key = runs.get(nameId)
  if (key === undefined) {
    // A run first heard of in a task or block record (a recorder of every run, subscribed after
    // that run started) gets its row now; a workflow start record completes it.
    const row = (sql.runOf.get(name(nameId)) ?? sql.workflowFirstSeen.get(name(nameId), Date.now())) as { run: number }
    runs.set(nameId, (key = row.run))
  }
  return key
}

// State codes the writer tests: a try's own states, and the first final one (finals come last).
const LAUNCHED = stateCode('launched')
const RUNNING = stateCode('running')
const JOINING = stateCode('joining')
const FIRST_FINAL = stateCode('exec_done')
const DEP_FAIL = stateCode('dep_fail')

/**
 * One state change. The try row holds a try's launched, running and final state (with their
 * times), so those changes write no status row: a task that runs normally costs one task row and
 * one try row however many states it passes. Status rows are kept for the changes no column
 * holds: pending (waiting for dependencies, or for a retry), unsched, joining, and the retry and
 * dependency-wait records; the `task_history` view puts both back together.
 */
/**
 * Per run in this batch: the newest state change and how many reached a final state, written to
 * its workflow row once per batch (the dashboard's freshness and rate without scanning tasks).
 */
const progress = new Map<number, { lastMs: number; ended: number }>()

/** The interned app names of each run already in its app table. */
const appsWritten = new Map<number, Set<number>>()
function appSeen(runId: number, app: number): void {
  let seen = appsWritten.get(runId)
  if (seen === undefined) appsWritten.set(runId, (seen = new Set()))
  if (seen.has(app)) return
  seen.add(app)
  sql.app.run(runId, name(app))
}

function applyState(run: number, taskId: number, tryNumber: number, code: number, app: number, executor: number, timeMs: number): void {
  const runId = runKey(run)
  let p = progress.get(runId)
  if (p === undefined) progress.set(runId, (p = { lastMs: timeMs, ended: 0 }))
  else if (timeMs > p.lastMs) p.lastMs = timeMs
  if (code >= FIRST_FINAL) p.ended++
  const state = STATE_CODES[code]!
  const task = entryOf(runId, run, taskId)
  task.changes++
  if (task.app === undefined) {
    task.app = name(app)
    task.lastTry = tryNumber
    task.submitMs = timeMs
    appSeen(runId, app)
  }
  task.state = state
  if (tryNumber > task.lastTry) task.lastTry = tryNumber
  if (executor >= 0) task.executor = name(executor)
  // dep_fail never launched a try: a status row, not a try row that never ran.
  if (code >= LAUNCHED && code !== JOINING && code !== DEP_FAIL) {
    if (code >= FIRST_FINAL) task.endMs = timeMs
    const t = tryOf(task, tryNumber)
    t.state = state
    if (executor >= 0) t.executor = name(executor)
    if (code === LAUNCHED) t.launchedMs = timeMs
    else if (code === RUNNING) t.runningMs = timeMs
    else t.endMs = timeMs
  } else {
    if (code === DEP_FAIL) task.endMs = timeMs
    sql.status.run(runId, taskId, tryNumber, state, timeMs, null)
  }
}

function apply(record: MonitoringRecord): void {
  switch (record[0]) {
    case Rec.name:
      names[record[1]] = record[2]
      return
    case Rec.workflowStart:
      runs.set(record[1], (sql.workflowStart.get(name(record[1]), record[2], record[3], record[4]) as { run: number }).run)
      return
    case Rec.workflowEnd:
      sql.workflowEnd.run(record[3], record[2], name(record[1]))
      return
    case Rec.taskState:
      applyState(record[1], record[2], record[3], record[4], record[5], record[6], record[7])
      return
    case Rec.retry: {
      const [, run, taskId, failedTry, cause, free, failCost, timeMs] = record
      const runId = runKey(run)
      const entry = entryOf(runId, run, taskId)
      entry.urgent = true
      const t = tryOf(entry, failedTry)
      t.retried = true
      t.state = 'failed'
      t.endMs ??= timeMs
      t.failCause = cause
      if (record[8]) failures.push([runId, taskId, failedTry, null, cause, record[8]])
      sql.status.run(runId, taskId, failedTry, 'retry', timeMs, JSON.stringify({ cause, free: free === 1, failCost }))
      return
    }
    case Rec.taskError: {
      const [, run, taskId, tryNumber, error, stack] = record
      const runId = runKey(run)
      // Its rows are written now (not held), so that the error's update below finds them.
      entryOf(runId, run, taskId).urgent = true
      failures.push([runId, taskId, tryNumber, error, error, stack])
      return
    }
    case Rec.depWait:
      sql.status.run(runKey(record[1]), record[2], 0, 'dep_wait', record[4], String(record[3]))
      return
    case Rec.block:
      sql.block.run(runKey(record[1]), name(record[2]), record[3], record[4], record[5], record[6], record[7] ?? null)
      return
    case Rec.manager:
      sql.node.run(runKey(record[1]), name(record[2]), record[3], record[4], record[5], record[6], record[7], record[8], record[9] ?? null)
      return
    case Rec.resource: {
      const [, run, taskId, tryNumber, managerId, user, system, rss, read, write, timeMs] = record
      sql.resource.run(runKey(run), taskId, tryNumber, managerId, timeMs, user, system, rss, read, write)
      return
    }
  }
}

interface TryRow {
  tryNumber: number
  executor: string | null
  launchedMs: number | null
  runningMs: number | null
  endMs: number | null
  state: string
  failCause: string | null
  /** failed and retried: an earlier_try row (the latest try's times are in its task row) */
  retried: boolean
}
/**
 * A task's merged changes in this batch: its row's columns (app undefined when only a retry record
 * came: then only the try is written) and its tries'. Flat, and one try inline, because the writer's
 * garbage collection cost as much as a third of its SQL when each batch made four objects per task.
 */
interface Entry {
  runId: number
  taskId: number
  app: string | undefined
  executor: string | null
  state: string
  lastTry: number
  submitMs: number
  endMs: number | null
  try: TryRow | undefined
  moreTries: TryRow[] | undefined
  /** state changes merged into it, not yet committed (what `written` counts when it is) */
  changes: number
  /** when it was first held back (Date.now()), 0 if never */
  heldSince: number
  /** a retry or an error came: written with this batch, before the error updates its rows */
  urgent: boolean
}

/**
 * How long a task that has not reached a final state may wait before its rows are written. A
 * task that ends within it costs one insert per row instead of an insert and an update later
 * (6.0 -> 3.5 us of writer CPU per no-op task when launch and end are 0.1 s apart). A final state
 * is written with the batch it arrives in, so the end of a run is never held back; a launched or
 * running state reaches the database at most 2 x HOLD_MS late (an entry held again after a change
 * keeps its first time). A second: a flood of short tasks often waits that long in the queue, and
 * a dashboard polling every 0.5 s shows the running ones a second later.
 */
const HOLD_MS = 1000
// Keyed by a number (interned run name * 2^32 + task id: a string key per state change cost more
// than the map lookup). `entries`: the batch's, written or held at the end of its transaction;
// `held`: waiting, oldest first.
const entries = new Map<number, Entry>()
const held = new Map<number, Entry>()
function entryOf(runId: number, run: number, taskId: number): Entry {
  const key = run * 4294967296 + taskId
  let entry = entries.get(key)
  if (entry === undefined) {
    entry = held.get(key)
    if (entry !== undefined) held.delete(key)
    else entry = { runId, taskId, app: undefined, executor: null, state: '', lastTry: 0, submitMs: 0, endMs: null, try: undefined, moreTries: undefined, changes: 0, heldSince: 0, urgent: false }
    entries.set(key, entry)
  }
  return entry
}
function tryOf(entry: Entry, tryNumber: number): TryRow {
  if (entry.try?.tryNumber === tryNumber) return entry.try
  const row: TryRow = { tryNumber, executor: null, launchedMs: null, runningMs: null, endMs: null, state: 'launched', failCause: null, retried: false }
  if (entry.try === undefined) return (entry.try = row)
  // A retry in the same batch: earlier tries are kept aside (the latest stays inline).
  const earlier = (entry.moreTries ??= [])
  const found = earlier.find((t) => t.tryNumber === tryNumber)
  if (found) return found
  earlier.push(entry.try)
  return (entry.try = row)
}

// Failures' errors and stacks (run key, task, try, task error or null for a retried try, try's
// cause, stack): rare, so written after the rows they update, off the state-change path.
const failures: [number, number, number, string | null, string, string | null][] = []

// The flat parameter list for the multi-row upserts, reused from batch to batch.
const taskParams: unknown[] = []
/** Upserts the rows of `batch`, 32 task rows to a statement; returns the state changes they held. */
function writeEntries(batch: Iterable<Entry>): number {
  taskParams.length = 0
  let changes = 0
  const earlier = (e: Entry, t: TryRow) =>
    sql.earlierTry.run({ run: e.runId, task: e.taskId, try: t.tryNumber, executor: t.executor, launched: t.launchedMs, running: t.runningMs, end: t.endMs, state: t.state, cause: t.failCause })
  for (const e of batch) {
    changes += e.changes
    // Earlier tries first: their times may still be in the task row this entry updates.
    if (e.moreTries !== undefined) for (const t of e.moreTries) earlier(e, t)
    let latest = e.try
    if (latest !== undefined && (latest.retried || latest.tryNumber < e.lastTry)) {
      earlier(e, latest)
      latest = undefined
    }
    if (e.app === undefined) continue
    taskParams.push(e.runId, e.taskId, e.app, e.executor, e.state, e.lastTry, e.submitMs, latest?.launchedMs ?? null, latest?.runningMs ?? null, e.endMs)
    if (taskParams.length === TASK_WIDTH * CHUNK) {
      sql.taskUpserts.run(taskParams)
      taskParams.length = 0
    }
  }
  for (let i = 0; i < taskParams.length; i += TASK_WIDTH) sql.taskUpsert.run(taskParams.slice(i, i + TASK_WIDTH))
  return changes
}

/**
 * Ends a batch (or a hold timer's turn): writes the batch's entries that are final (or only carry
 * a retry's try), held ones whose time is up, and with `all` everything; holds the rest. Returns
 * the state changes committed.
 */
function settleEntries(now: number, all: boolean): number {
  const due: Entry[] = []
  for (const [key, e] of entries) {
    if (all || e.endMs !== null || e.urgent || e.app === undefined || (e.heldSince !== 0 && now - e.heldSince >= HOLD_MS)) due.push(e)
    else {
      if (e.heldSince === 0) e.heldSince = now
      held.set(key, e)
    }
  }
  entries.clear()
  for (const [key, e] of held) {
    if (!all && now - e.heldSince < HOLD_MS) break
    due.push(e)
    held.delete(key)
  }
  return writeEntries(due)
}

/**
 * Upserts a batch's task summaries (protocol/monitoring.ts SUMMARY_FIELDS), 32 rows to a
 * statement, straight from the packed numbers: nothing is merged or held. Returns how many.
 */
const summaryParams: unknown[] = []
function writeSummaries(summaries: Float64Array, count: number): number {
  summaryParams.length = 0
  for (let i = 0; i < count; i++) {
    const o = i * SUMMARY_FIELDS
    const runId = runKey(summaries[o]!)
    const code = summaries[o + 3]!
    const app = summaries[o + 4]!
    const executor = summaries[o + 5]!
    const launched = summaries[o + 7]!
    const running = summaries[o + 8]!
    const end = summaries[o + 9]!
    appSeen(runId, app)
    let p = progress.get(runId)
    if (p === undefined) progress.set(runId, (p = { lastMs: 0, ended: 0 }))
    const last = end >= 0 ? end : running >= 0 ? running : launched
    if (last > p.lastMs) p.lastMs = last
    if (code >= FIRST_FINAL) p.ended++
    summaryParams.push(
      runId,
      summaries[o + 1],
      name(app),
      executor >= 0 ? name(executor) : null,
      STATE_CODES[code],
      summaries[o + 2],
      summaries[o + 6],
      launched,
      running >= 0 ? running : null,
      end >= 0 ? end : null,
    )
    if (summaryParams.length === TASK_WIDTH * CHUNK) {
      sql.taskUpserts.run(summaryParams)
      summaryParams.length = 0
    }
  }
  for (let i = 0; i < summaryParams.length; i += TASK_WIDTH) sql.taskUpsert.run(summaryParams.slice(i, i + TASK_WIDTH))
  return count
}

type Batch = Extract<ToWriter, { t: 'batch' }>
/** Applies batches in order in one transaction; returns the state changes committed. */
const writeBatches = db.transaction((batches: readonly Batch[]): number => {
  try {
    let summarized = 0
    for (const { records, at, states, stateCount, summaries, summaryCount } of batches) {
      // A task's summaries come before its changes (protocol/monitoring.ts): first, after the
      // names and workflow starts they refer to.
      if (summaries !== undefined && summaryCount) {
        for (const record of records) if (record[0] === Rec.name || record[0] === Rec.workflowStart) apply(record)
        summarized += writeSummaries(summaries, summaryCount)
      }
      let r = 0
      for (let i = 0; i < stateCount; i++) {
        while (r < records.length && at[r]! <= i) apply(records[r++]!)
        const o = i * STATE_FIELDS
        applyState(states[o]!, states[o + 1]!, states[o + 2]!, states[o + 3]!, states[o + 4]!, states[o + 5]!, states[o + 6]!)
      }
      while (r < records.length) apply(records[r++]!)
    }
    const changes = settleEntries(Date.now(), false) + summarized
    for (const [runId, p] of progress) sql.workflowProgress.run(p.lastMs, p.ended, runId)
    for (const [run, taskId, tryNumber, error, cause, stack] of failures) {
      if (error !== null) sql.taskError.run(error, stack, run, taskId)
      if (tryNumber >= 0) sql.tryError.run(cause, stack, run, taskId, tryNumber)
    }
    return changes
  } catch (error) {
    // The transaction is rolled back: what was merged, held or not, is lost (and never counted written).
    entries.clear()
    held.clear()
    throw error
  } finally {
    progress.clear()
    failures.length = 0
  }
})
const writeHeld = db.transaction((all: boolean): number => settleEntries(Date.now(), all))

/**
 * Deletes whole workflows: older than maxAgeDays (by start), and all but the newest maxRuns. At
 * start the starting run has no row yet, so one fewer earlier run is kept (`starting`).
 */
function applyRetention(starting: boolean): number {
  const { maxAgeDays, maxRuns } = data.retention
  if (maxAgeDays === undefined && maxRuns === undefined) return 0
  const doomed = new Set<number>()
  if (maxAgeDays !== undefined) {
    const before = Date.now() - maxAgeDays * 86_400_000
    for (const row of db.prepare('SELECT run FROM workflow WHERE start_ms < ?').all(before) as { run: number }[]) doomed.add(row.run)
  }
  if (maxRuns !== undefined) {
    for (const row of db.prepare('SELECT run FROM workflow ORDER BY start_ms DESC LIMIT -1 OFFSET ?').all(starting ? maxRuns - 1 : maxRuns) as { run: number }[]) {
      doomed.add(row.run)
    }
  }
  if (doomed.size === 0) return 0
  const deletes = RUN_TABLES.map((table) => db.prepare(`DELETE FROM ${table} WHERE run = ?`))
  db.transaction(() => {
    for (const run of doomed) for (const statement of deletes) statement.run(run)
  })()
  return doomed.size
}

let written = 0
const deleted = applyRetention(true)
const retentionTimer = setInterval(() => {
  try {
    applyRetention(false)
  } catch (error) {
    post({ t: 'error', message: `retention: ${(error as Error).message}` })
  }
}, data.retentionEveryMs)
retentionTimer.unref()

// The held entries' turn when no batch comes to write them.
let holdTimer: NodeJS.Timeout | undefined
let lastSeq = 0
let lastLagMs = 0
function armHoldTimer(): void {
  if (holdTimer !== undefined || held.size === 0) return
  holdTimer = setTimeout(() => {
    holdTimer = undefined
    try {
      written += writeHeld(false)
      post({ t: 'written', seq: lastSeq, written, lagMs: lastLagMs })
    } catch (error) {
      post({ t: 'error', message: (error as Error).message })
    }
    armHoldTimer()
  }, HOLD_MS)
}

/** At most this many state changes go into one transaction when batches queue up. */
const MAX_DRAIN = 100_000

function close(): void {
  clearInterval(retentionTimer)
  clearTimeout(holdTimer)
  try {
    written += writeHeld(true)
  } catch (error) {
    post({ t: 'error', message: (error as Error).message })
  }
  db.close()
  post({ t: 'closed', written })
  port.close()
}

port.on('message', (message: ToWriter) => {
  if (message.t === 'close') return close()
  // A writer that fell behind (a busy machine) takes every batch already queued into one
  // transaction: fewer commits, and more launches meet their ends before anything is written.
  const batches: Batch[] = [message]
  let states = message.stateCount + (message.summaryCount ?? 0)
  let closing = false
  while (states < MAX_DRAIN) {
    const next = receiveMessageOnPort(port)?.message as ToWriter | undefined
    if (next === undefined) break
    if (next.t === 'close') {
      closing = true
      break
    }
    batches.push(next)
    states += next.stateCount + (next.summaryCount ?? 0)
  }
  try {
    let records = 0
    for (const batch of batches) records += batch.records.length
    // Records other than state changes are committed with their batch; state changes when their entry is.
    written += writeBatches(batches) + records
    const last = batches[batches.length - 1]!
    lastSeq = last.seq
    lastLagMs = Date.now() - message.sentMs
    post({ t: 'written', seq: last.seq, written, lagMs: lastLagMs })
    armHoldTimer()
    const buffers: Float64Array[] = []
    for (const batch of batches) {
      if (batch.states.length > 0) buffers.push(batch.states)
      if (batch.summaries !== undefined && batch.summaries.length > 0) buffers.push(batch.summaries)
    }
    if (buffers.length > 0) port.postMessage({ t: 'buffers', buffers } satisfies FromWriter, buffers.map((b) => b.buffer as ArrayBuffer))
  } catch (error) {
    post({ t: 'error', message: (error as Error).message })
  }
  if (closing) close()
})
post({ t: 'ready', schemaVersion: SCHEMA_VERSION, retentionDeleted: deleted })
