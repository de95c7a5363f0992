/**
 * The workflow side of monitoring (docs/monitoring.md "Storage"): collects a run's events and
 * posts them to the writer thread in batches (every `batchMs`, or at once when `batchSize` are
 * waiting). Nothing per task waits on SQLite.
 *
 * The kernel creates one when `monitoring.enabled` (loaded lazily, so a run without monitoring
 * never loads better-sqlite3) and closes it at the end of cleanup(), after the workflow's end
 * record, with a bounded wait. `stats()` counts records sent and written (a test checks none are
 * lost) and the writer's lag (send to commit of the latest batch).
 *
 * A kernel's own recorder (`run` given) is called by the kernel directly for its task state
 * changes and retries (taskState, taskRetry), not through the channels, and keeps a task's launch
 * and start on the TaskRecord until its end: a task that launches, runs and ends is one summary
 * record (protocol/monitoring.ts SUMMARY_FIELDS), which the writer upserts as one row without
 * merging anything. A task still going after SNAPSHOT_MS is sent as a summary of its state then,
 * and again when that changes; one that does something unusual (a retry, a join, a dependency
 * wait) is sent as its summary so far and then change by change. Everything else (blocks,
 * managers, resource samples, workflow start and end) comes from the diagnostics channels as
 * short array records, and so do the task changes of a recorder of every run (no `run`).
 *
 * Messages carry their kernel's run id, interned like any repeated string. A kernel's recorder
 * (`run` given) records that run only, so kernels monitored in one process at once, each with its
 * recorder, land in their own workflow rows; a recorder without `run` records every run it hears.
 */
import { Worker } from 'node:worker_threads'
import {
  channels,
  type BlockMessage,
  type ManagerMessage,
  type ResourceMessage,
  type TypedChannel,
  type TaskRetryMessage,
  type TaskStateMessage,
  type WorkflowEndMessage,
  type WorkflowStartMessage,
} from '../dataflow/channels.js'
import { describeCause, errorStack } from './error-text.js'
import type { TaskRecord } from '../dataflow/task-record.js'
import type { TaskStateValue } from '../dataflow/states.js'
import { DEFAULT_WRITER_NICE, Rec, STATE_FIELDS, SUMMARY_FIELDS, stateCode, type FromWriter, type MonitoringRecord, type ResolvedMonitoring, type ToWriter, type WriterData } from '../protocol/monitoring.js'

/** How long a launched task's changes may wait on its TaskRecord before a snapshot is sent. */
const SNAPSHOT_MS = 1000
// TaskRecord.monitorMode
const UNSEEN = 0
const COALESCING = 1
const SUMMARIZED = 2
const CHANGES = 3
/** 2^30 ms, 12.4 days: record times stay small integers (V8 Smis) below it */
const MAX_RELATIVE_MS = 2 ** 30
const LAUNCHED = stateCode('launched')
const RUNNING = stateCode('running')
const FIRST_FINAL = stateCode('exec_done')
const DEP_FAIL = stateCode('dep_fail')

export interface RecorderOptions {
  /** the database file (resolved: `monitoringDbPath`) */
  readonly db: string
  readonly retention: ResolvedMonitoring['retention']
  /** the writer thread's nice value (default 0) */
  readonly writerNice?: number
  /** the longest a record waits before its batch is posted (ms, default 100) */
  readonly batchMs?: number
  /** post at once when this many records wait (default 5000) */
  readonly batchSize?: number
  /** how long start() waits for the writer to open the database (ms, default 15000) */
  readonly startTimeoutMs?: number
  /**
   * The one run to record (a kernel's own recorder): its workflow row is written at start(),
   * before the executors start and report their first blocks, and other runs' messages are
   * ignored. Without it every run heard on the channels is recorded.
   */
  readonly run?: { readonly runId: string; readonly runDir: string; readonly executors: readonly string[]; readonly startMs: number }
  /** with `run`: the kernel's outstanding tasks, for snapshots of those still going after a second */
  readonly tasks?: () => Iterable<TaskRecord>
}

export interface RecorderStats {
  /** records posted to the writer (name records included) */
  readonly sent: number
  /** records the writer committed */
  readonly written: number
  readonly batches: number
  /** send-to-commit time of the latest committed batch, and the largest seen (ms) */
  readonly lagMs: number
  readonly maxLagMs: number
  /** errors the writer reported (a batch that failed to commit is counted here, not written) */
  readonly errors: readonly string[]
  /** workflows retention deleted when the writer started */
  readonly retentionDeleted: number
}

const EMPTY = new Float64Array(0)

export class MonitoringRecorder {
  private readonly worker: Worker
  private records: MonitoringRecord[] = []
  private at: number[] = []
  private states: Float64Array
  private stateCount = 0
  private summaries: Float64Array
  private summaryCount = 0
  /** buffers the writer sent back, to fill again (a few of each size) */
  private readonly spareStates: Float64Array[] = []
  private readonly spareSummaries: Float64Array[] = []
  /** times on TaskRecords are ms after this: small integers */
  private readonly epoch = Date.now()
  /** the own kernel's outstanding tasks, looked through for snapshots */
  private readonly tasks: (() => Iterable<TaskRecord>) | undefined
  private openTimer: NodeJS.Timeout | undefined
  // The latest app and executor names and their numbers: consecutive tasks mostly share them.
  private lastApp = ''
  private lastAppId = -1
  private lastExecutor = ''
  private lastExecutorId = -1
  /** the interned number of the own kernel's run (`run`), -1 for a recorder of every run */
  private ownRun = -1
  private readonly names = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private seq = 0
  private sent = 0
  private written = 0
  private lagMs = 0
  private maxLagMs = 0
  private retentionDeleted = 0
  private readonly errors: string[] = []
  // The interned number of the run of the latest message, and its id: consecutive messages of
  // one run (nearly all of them) cost one string comparison, no map lookup.
  private lastRunId: string | undefined
  private lastRun = -1
  /** the only run recorded, or undefined for every run */
  private readonly only: RecorderOptions['run']
  private closed = false
  private readonly batchMs: number
  private readonly batchSize: number
  private readonly ready: Promise<void>
  private readonly closedPromise: Promise<void>

  /** The interned number of a message's run, or -1 for a run this recorder does not record. */
  private runOf(runId: string): number {
    if (runId === this.lastRunId) return this.lastRun
    if (this.only !== undefined) return -1
    this.lastRun = this.intern(runId)
    this.lastRunId = runId
    return this.lastRun
  }

  // Bound once: the same functions are subscribed and unsubscribed.
  // The hot one: written straight into the packed buffer, no array per message.
  private readonly onState = (m: TaskStateMessage) => {
    if (this.closed) return
    const run = this.runOf(m.runId)
    if (run < 0) return
    const app = this.intern(m.appName)
    const executor = m.executor === undefined ? -1 : this.intern(m.executor)
    const states = this.states
    let o = this.stateCount++ * STATE_FIELDS
    states[o++] = run
    states[o++] = m.taskId
    states[o++] = m.tryNumber
    states[o++] = stateCode(m.to)
    states[o++] = app
    states[o++] = executor
    states[o] = m.timeMs
    // Rare next to the state changes: their own records, applied after this change.
    if (m.waitingOn > 0) this.push([Rec.depWait, run, m.taskId, m.waitingOn, m.timeMs])
    else if (m.error !== undefined) this.pushError(run, m.taskId, m.tryNumber, m.to, m.error, m.timeMs)
    else this.scheduleFlush()
  }
  private pushError(run: number, taskId: number, tryNumber: number, to: string, error: unknown, timeMs: number): void {
    // A dependency failure ran no try, and its stack is the root task's, already on that task's row.
    if (to === 'dep_fail') this.push([Rec.taskError, run, taskId, -1, describeCause(error), null, timeMs])
    else this.push([Rec.taskError, run, taskId, tryNumber, describeCause(error), errorStack(error), timeMs])
  }

  private appId(name: string): number {
    if (name !== this.lastApp) {
      this.lastAppId = this.intern(name)
      this.lastApp = name
    }
    return this.lastAppId
  }
  private executorId(name: string | undefined): number {
    if (name === undefined) return -1
    if (name !== this.lastExecutor) {
      this.lastExecutorId = this.intern(name)
      this.lastExecutor = name
    }
    return this.lastExecutorId
  }

  /**
   * A task state change of this recorder's own kernel (called by the kernel, after record.state
   * is set; `error` for failed and dep_fail). See the header for what is sent when.
   */
  taskState(record: TaskRecord, from: TaskStateValue, to: TaskStateValue, error: unknown): void {
    if (this.closed) return
    const now = Date.now()
    const mode = record.monitorMode
    if (mode === COALESCING) {
      if (to === 'running') {
        record.monitorRunningMs = (now - this.epoch) | 0
        return
      }
      const code = stateCode(to)
      if (code >= FIRST_FINAL && code !== DEP_FAIL) {
        record.monitorMode = SUMMARIZED
        this.summary(record, code, now)
        if (error !== undefined) this.pushError(this.ownRun, record.id, record.tries - 1, to, error, now)
        return
      }
      this.spill(record)
    } else if (mode === UNSEEN) {
      // Times on the record are small integers (a double stored there would be a heap number
      // per task for the garbage collector to copy); past 12 days of a run, changes go one by one.
      const since = now - this.epoch
      if (to === 'launched' && since < MAX_RELATIVE_MS) {
        record.monitorMode = COALESCING
        record.monitorLaunchedMs = since | 0
        record.monitorRunningMs = -1
        return
      }
      record.monitorMode = CHANGES
    }
    this.change(record, from, to, error, now)
  }

  /** A retry of this recorder's own kernel (called before the task's `pending`). */
  taskRetry(record: TaskRecord, cause: unknown, free: boolean): void {
    if (this.closed) return
    if (record.monitorMode === COALESCING) this.spill(record)
    record.monitorMode = CHANGES
    this.push([Rec.retry, this.ownRun, record.id, record.tries - 1, describeCause(cause), free ? 1 : 0, record.failCost, Date.now(), errorStack(cause)])
  }


  /** One state change, packed as the channel path packs it. */
  private change(record: TaskRecord, from: TaskStateValue, to: TaskStateValue, error: unknown, now: number): void {
    const tryNumber = to === 'pending' || to === 'unsched' || record.tries === 0 ? record.tries : record.tries - 1
    const run = this.ownRun
    const app = this.appId(record.appName)
    const executor = this.executorId(record.executor)
    const states = this.states
    let o = this.stateCount++ * STATE_FIELDS
    states[o++] = run
    states[o++] = record.id
    states[o++] = tryNumber
    states[o++] = stateCode(to)
    states[o++] = app
    states[o++] = executor
    states[o] = now
    const waitingOn = to === 'pending' && from === 'unsched' ? record.waitingOn : 0
    if (waitingOn > 0) this.push([Rec.depWait, run, record.id, waitingOn, now])
    else if (error !== undefined) this.pushError(run, record.id, tryNumber, to, error, now)
    else this.scheduleFlush()
  }

  /** A task's summary: its state `code` at `now` (its end when final), with the times its record holds. */
  private summary(record: TaskRecord, code: number, now: number): void {
    const launched = this.epoch + record.monitorLaunchedMs
    const summaries = this.summaries
    let o = this.summaryCount++ * SUMMARY_FIELDS
    summaries[o++] = this.ownRun
    summaries[o++] = record.id
    summaries[o++] = record.tries - 1
    summaries[o++] = code
    summaries[o++] = this.appId(record.appName)
    summaries[o++] = this.executorId(record.executor)
    summaries[o++] = launched
    summaries[o++] = launched
    summaries[o++] = record.monitorRunningMs < 0 ? -1 : this.epoch + record.monitorRunningMs
    summaries[o] = code >= FIRST_FINAL ? now : -1
    record.monitorSentCode = code
    this.scheduleFlush()
  }

  /** A coalescing task's changes go one by one from now: its summary so far first. */
  private spill(record: TaskRecord): void {
    const code = record.monitorRunningMs < 0 ? LAUNCHED : RUNNING
    if (record.monitorSentCode !== code) this.summary(record, code, Date.now())
    record.monitorMode = CHANGES
  }

  /**
   * Sends a snapshot of each of the kernel's tasks launched SNAPSHOT_MS ago or more whose state
   * changed since its last one (with `all`, of every task still waiting, at close). The kernel's
   * own map of outstanding tasks is looked through: no queue per task to keep.
   */
  private snapshotOpen(now: number, all: boolean): void {
    if (this.tasks === undefined) return
    const before = now - this.epoch - SNAPSHOT_MS
    for (const record of this.tasks()) {
      if (record.monitorMode !== COALESCING || (!all && record.monitorLaunchedMs > before)) continue
      const code = record.monitorRunningMs < 0 ? LAUNCHED : RUNNING
      if (record.monitorSentCode !== code) this.summary(record, code, now)
      if (all) record.monitorMode = SUMMARIZED
    }
  }

  private readonly onRetry = (m: TaskRetryMessage) => {
    const run = this.runOf(m.runId)
    if (run >= 0) this.push([Rec.retry, run, m.taskId, m.tryNumber, describeCause(m.cause), m.free ? 1 : 0, m.failCost, m.timeMs, errorStack(m.cause)])
  }
  private readonly onStart = (m: WorkflowStartMessage) => {
    // A kernel's own run was recorded at start().
    if (this.only !== undefined) return
    this.push([Rec.workflowStart, this.runOf(m.runId), m.runDir, JSON.stringify(m.executors), m.timeMs])
  }
  private readonly onEnd = (m: WorkflowEndMessage) => {
    const run = this.runOf(m.runId)
    if (run >= 0) this.push([Rec.workflowEnd, run, JSON.stringify(m.counts), m.timeMs])
  }
  private readonly onBlock = (m: BlockMessage) => {
    const run = this.runOf(m.runId)
    if (run >= 0) this.push([Rec.block, run, this.intern(m.executor), m.blockId, m.jobId ?? null, m.state, m.timeMs, m.reason ?? null])
  }
  private readonly onManager = (m: ManagerMessage) => {
    const run = this.runOf(m.runId)
    if (run < 0) return
    this.push([Rec.manager, run, this.intern(m.executor), m.managerId, m.hostname, m.blockId ?? null, m.workers, m.event, m.timeMs, m.reason ?? null])
  }
  private readonly onResources = (m: ResourceMessage) => {
    const run = this.runOf(m.runId)
    if (run < 0) return
    for (const r of m.samples) {
      this.push([Rec.resource, run, r.taskId, r.tryNumber, r.managerId, r.cpuUserS, r.cpuSystemS, r.rssBytes, r.readBytes, r.writeBytes, r.timeMs])
    }
  }

  constructor(options: RecorderOptions) {
    this.batchMs = options.batchMs ?? 100
    this.batchSize = options.batchSize ?? 5000
    this.only = options.run
    if (options.run !== undefined) {
      this.lastRunId = options.run.runId
      this.lastRun = this.intern(options.run.runId)
      this.ownRun = this.lastRun
    }
    this.states = new Float64Array(this.batchSize * STATE_FIELDS)
    this.summaries = new Float64Array(this.batchSize * SUMMARY_FIELDS)
    this.tasks = options.tasks
    this.tasks = options.tasks
    const data: WriterData = { db: options.db, retention: options.retention, retentionEveryMs: 3_600_000, nice: options.writerNice ?? DEFAULT_WRITER_NICE }
    this.worker = new Worker(new URL('./writer-thread.js', import.meta.url), { workerData: data })
    let readyResolve!: () => void
    let readyReject!: (error: Error) => void
    this.ready = new Promise((resolve, reject) => ((readyResolve = resolve), (readyReject = reject)))
    let closedResolve!: () => void
    this.closedPromise = new Promise((resolve) => (closedResolve = resolve))
    this.worker.on('message', (message: FromWriter) => {
      if (message.t === 'ready') {
        this.retentionDeleted = message.retentionDeleted
        readyResolve()
      } else if (message.t === 'written') {
        this.written = message.written
        this.lagMs = message.lagMs
        if (message.lagMs > this.maxLagMs) this.maxLagMs = message.lagMs
      } else if (message.t === 'buffers') {
        for (const buffer of message.buffers) {
          const spare = buffer.length === this.batchSize * STATE_FIELDS ? this.spareStates : buffer.length === this.batchSize * SUMMARY_FIELDS ? this.spareSummaries : undefined
          if (spare !== undefined && spare.length < 4) spare.push(buffer)
        }
      } else if (message.t === 'error') {
        this.errors.push(message.message)
      } else if (message.t === 'closed') {
        this.written = message.written
        closedResolve()
      }
    })
    this.worker.on('error', (error) => {
      this.errors.push(error.message)
      readyReject(new Error(`the monitoring writer failed to open ${options.db}: ${error.message}`, { cause: error }))
    })
    this.worker.on('exit', () => closedResolve())
    // Neither the writer nor its timers keep a finished workflow's process alive.
    this.worker.unref()
    const timeout = options.startTimeoutMs ?? 15_000
    const deadline = setTimeout(() => readyReject(new Error(`the monitoring writer did not open ${options.db} within ${timeout} ms`)), timeout)
    this.ready.then(() => clearTimeout(deadline), () => clearTimeout(deadline))
  }

  /** Waits for the writer to open the database, then subscribes to the kernel's channels. */
  async start(): Promise<this> {
    try {
      await this.ready
    } catch (error) {
      await this.worker.terminate()
      throw error
    }
    const run = this.only
    if (run !== undefined) this.push([Rec.workflowStart, this.lastRun, run.runDir, JSON.stringify(run.executors), run.startMs])
    for (const [channel, listener] of this.subscriptions()) channel.subscribe(listener)
    if (this.tasks !== undefined) {
      this.openTimer = setInterval(() => this.snapshotOpen(Date.now(), false), SNAPSHOT_MS / 2)
      this.openTimer.unref()
    }
    return this
  }

  private subscriptions(): [TypedChannel<never>, (message: never) => void][] {
    // A kernel's own recorder hears its task changes from the kernel (taskState, taskRetry).
    const tasks = this.only === undefined ? [[channels.taskState, this.onState], [channels.taskRetry, this.onRetry]] : []
    return [
      [channels.workflowStart, this.onStart],
      ...tasks,
      [channels.block, this.onBlock],
      [channels.manager, this.onManager],
      [channels.taskResource, this.onResources],
      [channels.workflowEnd, this.onEnd],
    ] as unknown as [TypedChannel<never>, (message: never) => void][]
  }

  /**
   * Ends the recorded run's workflow row without a `workflow:end` message: a kernel whose start
   * failed (its executors did not come up) publishes none, and its row would look running forever.
   */
  endRun(counts: Readonly<Record<string, number>>): void {
    if (this.only !== undefined) this.push([Rec.workflowEnd, this.lastRun, JSON.stringify(counts), Date.now()])
  }

  /** The number a string travels as; a `name` record is sent the first time. */
  intern(text: string): number {
    let id = this.names.get(text)
    if (id === undefined) {
      id = this.names.size
      this.names.set(text, id)
      this.records.push([Rec.name, id, text])
      this.at.push(this.stateCount)
    }
    return id
  }

  /**
   * Queues one record (the hook for sources other than the channels: blocks, managers, resource
   * samples; strings that repeat go through `intern`, `runNumber` is the run's).
   */
  push(record: MonitoringRecord): void {
    if (this.closed) return
    this.records.push(record)
    this.at.push(this.stateCount)
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.records.length + this.stateCount + this.summaryCount >= this.batchSize) this.flush()
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.batchMs)
      this.timer.unref()
    }
  }

  /** The interned number of the run recorded (`run`), or of the latest run heard; -1 before any. */
  get runNumber(): number {
    return this.lastRun
  }

  /** Posts what is waiting now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.records.length === 0 && this.stateCount === 0 && this.summaryCount === 0) return
    const { records, at, states, stateCount, summaries, summaryCount } = this
    this.records = []
    this.at = []
    // The buffers are transferred, not copied; the next batch gets fresh ones (only the used one).
    const transfer: ArrayBuffer[] = []
    if (stateCount > 0) {
      this.states = this.spareStates.pop() ?? new Float64Array(this.batchSize * STATE_FIELDS)
      transfer.push(states.buffer as ArrayBuffer)
    }
    if (summaryCount > 0) {
      this.summaries = this.spareSummaries.pop() ?? new Float64Array(this.batchSize * SUMMARY_FIELDS)
      transfer.push(summaries.buffer as ArrayBuffer)
    }
    this.stateCount = 0
    this.summaryCount = 0
    this.sent += records.length + stateCount + summaryCount
    const message: ToWriter = {
      t: 'batch',
      seq: ++this.seq,
      records,
      at,
      states: stateCount > 0 ? states : EMPTY,
      stateCount,
      summaries: summaryCount > 0 ? summaries : EMPTY,
      summaryCount,
      sentMs: Date.now(),
    }
    this.worker.postMessage(message, transfer)
  }

  stats(): RecorderStats {
    return {
      sent: this.sent,
      written: this.written,
      batches: this.seq,
      lagMs: this.lagMs,
      maxLagMs: this.maxLagMs,
      errors: [...this.errors],
      retentionDeleted: this.retentionDeleted,
    }
  }

  /**
   * Unsubscribes, posts the last batch and waits for the writer to commit everything and close
   * the database, as long as it keeps committing; a writer that commits nothing for `timeoutMs`
   * is terminated (its open transaction is rolled back; what was committed stays). Returns the
   * final counts.
   */
  async close(timeoutMs = 10_000): Promise<RecorderStats> {
    if (this.closed) return this.stats()
    for (const [channel, listener] of this.subscriptions()) channel.unsubscribe(listener)
    clearInterval(this.openTimer)
    // Tasks still open at the end (a kernel that gave up on them) are written as they stand.
    this.snapshotOpen(Date.now(), true)
    this.flush()
    this.closed = true
    this.post({ t: 'close' })
    // A writer still committing its backlog is waited for however long that takes (a flood of
    // tasks can leave seconds of it); only one that commits nothing for `timeoutMs` is given up on.
    let closed = false
    void this.closedPromise.then(() => (closed = true))
    let timer: NodeJS.Timeout | undefined
    for (;;) {
      const writtenBefore = this.written
      await Promise.race([this.closedPromise, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))])
      clearTimeout(timer)
      if (closed) break
      if (this.written === writtenBefore) {
        this.errors.push(`the writer committed nothing for ${timeoutMs} ms; ${this.sent - this.written} records not written`)
        await this.worker.terminate()
        break
      }
    }
    return this.stats()
  }

  private post(message: ToWriter): void {
    this.worker.postMessage(message)
  }
}
