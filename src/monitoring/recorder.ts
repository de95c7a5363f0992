/**
 * The workflow side of monitoring (docs/monitoring.md "Storage"): subscribes to the kernel's
 * diagnostics channels, turns each message into a short array record, and posts the records to
 * the writer thread in batches (every `batchMs`, or at once when `batchSize` are waiting). Nothing
 * per task waits on SQLite: a listener appends to an array and returns.
 *
 * The kernel creates one when `monitoring.enabled` (loaded lazily, so a run without monitoring
 * never loads better-sqlite3) and closes it at the end of cleanup(), after the workflow's end
 * record, with a bounded wait. `stats()` counts records sent and written (a test checks none are
 * lost) and the writer's lag (send to commit of the latest batch).
 *
 * Channel messages carry no run id, so task records go to the run this recorder was started for:
 * one monitored kernel at a time per process.
 */
import { Worker } from 'node:worker_threads'
import { channels, type TaskRetryMessage, type TaskStateMessage, type WorkflowEndMessage, type WorkflowStartMessage } from '../dataflow/channels.js'
import { Rec, STATE_FIELDS, stateCode, type FromWriter, type MonitoringRecord, type ResolvedMonitoring, type ToWriter, type WriterData } from '../protocol/monitoring.js'

export interface RecorderOptions {
  /** the database file (resolved: `monitoringDbPath`) */
  readonly db: string
  readonly retention: ResolvedMonitoring['retention']
  /** the longest a record waits before its batch is posted (ms, default 100) */
  readonly batchMs?: number
  /** post at once when this many records wait (default 5000) */
  readonly batchSize?: number
  /** how long start() waits for the writer to open the database (ms, default 15000) */
  readonly startTimeoutMs?: number
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

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`
  try {
    return typeof cause === 'string' ? cause : JSON.stringify(cause) ?? String(cause)
  } catch {
    return String(cause)
  }
}

export class MonitoringRecorder {
  private readonly worker: Worker
  private records: MonitoringRecord[] = []
  private at: number[] = []
  private states: Float64Array
  private stateCount = 0
  private readonly names = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private seq = 0
  private sent = 0
  private written = 0
  private lagMs = 0
  private maxLagMs = 0
  private retentionDeleted = 0
  private readonly errors: string[] = []
  private run = -1
  private closed = false
  private readonly batchMs: number
  private readonly batchSize: number
  private readonly ready: Promise<void>
  private readonly closedPromise: Promise<void>

  // Bound once: the same functions are subscribed and unsubscribed.
  // The hot one: written straight into the packed buffer, no array per message.
  private readonly onState = (m: TaskStateMessage) => {
    if (this.closed) return
    const app = this.intern(m.appName)
    const executor = m.executor === undefined ? -1 : this.intern(m.executor)
    const states = this.states
    let o = this.stateCount++ * STATE_FIELDS
    states[o++] = this.run
    states[o++] = m.taskId
    states[o++] = m.tryNumber
    states[o++] = stateCode(m.to)
    states[o++] = app
    states[o++] = executor
    states[o] = m.timeMs
    this.scheduleFlush()
  }
  private readonly onRetry = (m: TaskRetryMessage) => {
    this.push([Rec.retry, this.run, m.taskId, m.tryNumber, describeCause(m.cause), m.free ? 1 : 0, m.failCost, m.timeMs])
  }
  private readonly onStart = (m: WorkflowStartMessage) => {
    this.run = this.intern(m.runId)
    this.push([Rec.workflowStart, this.run, m.runDir, JSON.stringify(m.executors), m.timeMs])
  }
  private readonly onEnd = (m: WorkflowEndMessage) => {
    this.push([Rec.workflowEnd, this.intern(m.runId), JSON.stringify(m.counts), m.timeMs])
  }

  constructor(options: RecorderOptions) {
    this.batchMs = options.batchMs ?? 100
    this.batchSize = options.batchSize ?? 5000
    this.states = new Float64Array(this.batchSize * STATE_FIELDS)
    const data: WriterData = { db: options.db, retention: options.retention, retentionEveryMs: 3_600_000 }
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
    channels.workflowStart.subscribe(this.onStart)
    channels.taskState.subscribe(this.onState)
    channels.taskRetry.subscribe(this.onRetry)
    channels.workflowEnd.subscribe(this.onEnd)
    return this
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
    if (this.records.length + this.stateCount >= this.batchSize || this.stateCount === this.batchSize) this.flush()
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.batchMs)
      this.timer.unref()
    }
  }

  /** The interned number of the run being recorded (-1 before its start record). */
  get runNumber(): number {
    return this.run
  }

  /** Posts what is waiting now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.records.length === 0 && this.stateCount === 0) return
    const { records, at, states, stateCount } = this
    this.records = []
    this.at = []
    // The buffer is transferred, not copied; the next batch gets a fresh one.
    this.states = new Float64Array(this.batchSize * STATE_FIELDS)
    this.stateCount = 0
    this.sent += records.length + stateCount
    const message: ToWriter = { t: 'batch', seq: ++this.seq, records, at, states, stateCount, sentMs: Date.now() }
    this.worker.postMessage(message, [states.buffer as ArrayBuffer])
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
   * Unsubscribes, posts the last batch and waits up to `timeoutMs` for the writer to commit
   * everything and close the database; a writer still busy then is terminated (its open
   * transaction is rolled back; what was committed stays). Returns the final counts.
   */
  async close(timeoutMs = 10_000): Promise<RecorderStats> {
    if (this.closed) return this.stats()
    channels.workflowStart.unsubscribe(this.onStart)
    channels.taskState.unsubscribe(this.onState)
    channels.taskRetry.unsubscribe(this.onRetry)
    channels.workflowEnd.unsubscribe(this.onEnd)
    this.flush()
    this.closed = true
    this.post({ t: 'close' })
    let timer: NodeJS.Timeout | undefined
    const inTime = await Promise.race([
      this.closedPromise.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ])
    clearTimeout(timer)
    if (!inTime) {
      this.errors.push(`the writer did not finish within ${timeoutMs} ms; ${this.sent - this.written} records not written`)
      await this.worker.terminate()
    }
    return this.stats()
  }

  private post(message: ToWriter): void {
    this.worker.postMessage(message)
  }
}
