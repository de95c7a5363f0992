import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'
import { ExecutorError, ShutdownError, TaskCancelled, WalltimeExceeded, WorkerLost } from '../../errors.js'
import { decode, ownsItsBuffer } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { object, optional, positiveInt, string } from '../../util/schema.js'
import { PriorityQueue } from '../../util/task-queue.js'
import { settledWithin } from '../../util/deferred.js'
import { TaskKind, type ResultWire } from '../../protocol/task.js'
import type { EncodedBatchAnswer } from '../../runtime/execute.js'
import { QuickApps } from '../../util/quick-apps.js'
import type { ThreadProgress } from './worker.js'
import type { Executor, ExecutorHost, ExecutorTask } from '../base.js'
import { encodeTaskBatches } from '../batch.js'
import { threadExecArgv } from '../../runtime/exec-argv.js'
import { deliverOutcome } from '../report.js'
import { ExecutorProxying, proxyOption, type ExecutorProxyOptions, type ResolvedProxyOption } from '../proxying.js'
import { ExecutorImports, proxyImportsOption, type ExecutorImportsOptions, type ResolvedImportsOption } from '../imports.js'

export interface ThreadPoolExecutorOptions {
  /** Name used to pick this executor in an app's `executors` option. Default 'threads'. */
  label?: string
  /** Worker threads in the pool. Default: the number of CPUs. */
  maxThreads?: number
  /** Most tasks handed to a thread in one message under load. Default 256; 1 disables batching. */
  maxBatchSize?: number
  /**
   * Arguments and results that encode to more than `threshold` travel through `store` as proxies
   * (docs/proxy.md "Executor option"). Off by default.
   */
  proxy?: ExecutorProxyOptions
  /**
   * The npm packages each app imports travel with its tasks through `store` and are loaded from a
   * node-local copy (docs/proxy-imports.md "The executor option"). Off by default.
   */
  proxyImports?: ExecutorImportsOptions
}

const schema = object({
  type: optional(string),
  label: string,
  maxThreads: positiveInt,
  maxBatchSize: positiveInt,
  proxy: proxyOption,
  proxyImports: proxyImportsOption,
})

// Work one batch should carry, when the backlog allows: enough that the main thread's fixed cost
// per message (encode, post, wake a thread, decode) stays small next to it, small enough that
// splitting long tasks across threads still happens (a 1 ms task already travels alone).
const TARGET_BATCH_MS = 1
// A bash app enforces its own walltime by killing its process group; the thread is only
// stopped if that fails, after this grace period (stopping it first would orphan the process).
const BASH_WALLTIME_GRACE_MS = 3000

interface Run {
  tasks: ExecutorTask[]
  controller?: AbortController
  timer?: NodeJS.Timeout
  /** the walltime clock, started when the thread calls the task's function */
  walltimeMs?: number
  /** tasks not yet reported, by id (built when the first result arrives) */
  byId?: Map<number, ExecutorTask>
  /** results received ahead of the batch's answer, and how many the answer says were sent */
  early?: number
  expectedEarly?: number
  /** why the run was aborted, to report instead of the pool's AbortError */
  abortReason?: 'walltime' | 'cancel' | 'shutdown'
  /** settles once the thread answered or the run was given up */
  settled?: Promise<void>
}

/**
 * Runs tasks on a pool of worker threads (piscina). Tasks queue here, not in piscina, so that a
 * burst is cut into batches sized to the backlog: one task per message when the pool is idle
 * (lowest latency), up to `maxBatchSize` when thousands wait (highest throughput). A task with
 * a walltime travels alone, so that stopping its thread stops nothing else.
 */
export class ThreadPoolExecutor implements Executor {
  readonly type = 'threads'
  readonly label: string
  private readonly raw: ThreadPoolExecutorOptions
  private maxThreads: number
  private maxBatchSize = 256
  private maxRunsInFlight: number
  private pool: Piscina | undefined
  private host: ExecutorHost | undefined
  private readonly queue = new PriorityQueue<ExecutorTask>()
  private readonly runs = new Set<Run>()
  private readonly runOfTask = new Map<number, Run>()
  /** runs whose thread answered but whose early results are still on their way */
  private readonly awaiting = new Set<Run>()
  /**
   * Ref'd while runs await early results: those arrive on the worker's own channel, which piscina
   * unrefs, so with nothing else pending the event loop could empty before they are read (and
   * the kernel's exit guard would fail tasks that had in fact finished).
   */
  private awaitingHold: NodeJS.Timeout | undefined
  /** apps whose tasks may share a batch (see util/quick-apps.ts) */
  private readonly quick = new QuickApps()
  private flushScheduled = false
  /** running average of how long one task runs on a thread (ms); undefined until measured */
  private msPerTask: number | undefined
  private stopping = false
  private outstandingCount = 0
  private proxyOption: ResolvedProxyOption | undefined
  private proxying: ExecutorProxying | undefined
  private importsOption: ResolvedImportsOption | undefined
  private imports: ExecutorImports | undefined

  constructor(options: ThreadPoolExecutorOptions = {}) {
    this.raw = options
    this.label = typeof options.label === 'string' && options.label ? options.label : 'threads'
    this.maxThreads = availableParallelism()
    this.maxRunsInFlight = this.maxThreads * 2
  }

  validate(path: string): void {
    const options = schema(this.raw, path)
    if (options.maxThreads !== undefined) this.maxThreads = options.maxThreads
    if (options.maxBatchSize !== undefined) this.maxBatchSize = options.maxBatchSize
    this.proxyOption = options.proxy
    this.importsOption = options.proxyImports
    // Two messages per thread: the next batch is already waiting when one finishes.
    this.maxRunsInFlight = this.maxThreads * 2
  }

  get outstanding(): number {
    return this.outstandingCount
  }

  describe(): Record<string, unknown> {
    const described: Record<string, unknown> = { type: this.type, label: this.label, maxThreads: this.maxThreads, maxBatchSize: this.maxBatchSize }
    if (this.proxying) described.proxy = this.proxying.describe()
    else if (this.proxyOption) described.proxy = { threshold: this.proxyOption.threshold }
    if (this.imports) described.proxyImports = this.imports.describe()
    else if (this.importsOption) described.proxyImports = { packages: this.importsOption.packages }
    return described
  }

  async start(host: ExecutorHost): Promise<void> {
    if (this.pool) throw new ExecutorError(this.label, 'start() was called twice')
    this.validate(this.label)
    this.host = host
    if (this.proxyOption) this.proxying = new ExecutorProxying(this.proxyOption)
    if (this.importsOption) this.imports = new ExecutorImports(this.importsOption, this.label, host.logger)
    this.pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: this.maxThreads,
      maxThreads: this.maxThreads,
      idleTimeout: Infinity,
      // Workers inherit the loader flags (tsx, ts-node) so they can import the workflow's modules.
      execArgv: threadExecArgv(),
    })
    // An error outside any task (a thread failing to start, say) must not crash the workflow:
    // log it; the runs it affects fail through their own rejections.
    this.pool.on('error', (error: unknown) => host.logger.error('a worker thread failed outside a task', error))
    this.pool.on('message', (message: unknown) => this.onProgress(message as ThreadProgress))
    host.logger.info(`started ${this.maxThreads} threads`)
  }

  submit(task: ExecutorTask): void {
    this.outstandingCount++
    if (this.stopping || !this.pool) {
      this.report(task, { ok: false, error: new ShutdownError(`executor ${this.label} is shut down; task #${task.id} was not run`) })
      return
    }
    // With proxyImports, the first task of a function waits for its packages to be shipped.
    if (this.imports) this.imports.submit(task, (shipped) => this.prepared(shipped), (error) => this.report(task, { ok: false, error }))
    else this.prepared(task)
  }

  private prepared(task: ExecutorTask): void {
    // With the proxy option, large arguments are stored first (the task queues once they are).
    if (this.proxying) this.proxying.submit(task, (ready) => this.enqueue(ready), (error) => this.report(task, { ok: false, error }))
    else this.enqueue(task)
  }

  private enqueue(task: ExecutorTask): void {
    if (this.stopping || !this.pool) {
      this.report(task, { ok: false, error: new ShutdownError(`executor ${this.label} is shut down; task #${task.id} was not run`) })
      return
    }
    this.queue.push(task, task.priority)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // Deferred to the end of this turn so tasks submitted together travel together.
      queueMicrotask(() => this.flush())
    }
  }

  cancel(taskId: number): boolean {
    const preparing = this.imports?.drop(taskId) ?? this.proxying?.drop(taskId)
    if (preparing) {
      this.report(preparing, { ok: false, error: new TaskCancelled(preparing.id, preparing.appName) })
      return true
    }
    const queued = this.queue.remove((task) => task.id === taskId)
    if (queued) {
      this.report(queued, { ok: false, error: new TaskCancelled(queued.id, queued.appName) })
      return true
    }
    const run = this.runOfTask.get(taskId)
    if (run?.controller && run.tasks.length === 1) {
      run.abortReason = 'cancel'
      run.controller.abort()
      return true
    }
    return false
  }

  async shutdown(deadlineMs: number): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    for (const task of [...(this.imports?.dropAll() ?? []), ...(this.proxying?.dropAll() ?? []), ...this.queue.drain()]) {
      this.report(task, { ok: false, error: new ShutdownError(`executor ${this.label} shut down before task #${task.id} ran`) })
    }
    const inFlight = [...this.runs].map((run) => run.settled)
    const finished = await settledWithin(Promise.all(inFlight), deadlineMs)
    if (!finished) {
      for (const run of this.runs) {
        run.abortReason = 'shutdown'
        run.controller?.abort()
      }
    }
    const pool = this.pool
    this.pool = undefined
    if (pool) await settledWithin(pool.destroy(), 5000)
    // Anything still unreported (a batch on a thread that was just destroyed) fails now.
    for (const run of [...this.runs, ...this.awaiting]) {
      this.failRun(run, (task) => new ShutdownError(`executor ${this.label} shut down while task #${task.id} was running`))
    }
    // Results being fetched from the store are reported, and what was put is evicted.
    await this.proxying?.close(Math.max(deadlineMs, 5000))
    await this.imports?.close(Math.max(deadlineMs, 5000))
    this.host?.logger.info('shut down')
  }

  private flush(): void {
    this.flushScheduled = false
    while (this.runs.size < this.maxRunsInFlight && this.queue.size > 0 && this.pool) {
      const first = this.queue.shift()!
      // A task not known to be quick travels alone, so no task of its batch waits behind it.
      if (first.walltime !== undefined || !this.quick.isQuick(first.appName)) {
        this.dispatch([first], first.walltime)
        continue
      }
      const size = Math.min(this.maxBatchSize, Math.max(this.minBatch(), Math.ceil((this.queue.size + 1) / this.maxRunsInFlight)))
      const tasks = [first]
      while (tasks.length < size && this.queue.size > 0) {
        const next = this.queue.shift()!
        if (next.walltime !== undefined) {
          this.dispatch([next], next.walltime)
          continue
        }
        if (!this.quick.isQuick(next.appName)) {
          this.dispatch([next], undefined)
          break
        }
        tasks.push(next)
      }
      this.dispatch(tasks, undefined)
    }
  }

  /**
   * The smallest batch worth a message: TARGET_BATCH_MS of work at the measured task length. The
   * backlog is shared among the runs in flight (2 per thread), so without this floor adding
   * threads cut a steady stream into ever smaller batches: 2,048 tasks a turn became 28 runs of
   * 74 with 14 threads, and the main thread's cost per message outweighed the work. Short tasks
   * thus fill fewer, larger batches; tasks of 1 ms or more still spread one per run. Until a
   * batch has been measured, tasks are assumed long (spread out).
   */
  private minBatch(): number {
    if (this.msPerTask === undefined) return 1
    return Math.max(1, Math.floor(TARGET_BATCH_MS / Math.max(this.msPerTask, 1e-4)))
  }

  private dispatch(tasks: ExecutorTask[], walltime: number | undefined): void {
    for (const encoded of encodeTaskBatches(tasks, (task, error) => this.report(task, { ok: false, error }))) this.run(encoded, walltime)
  }

  private run(encoded: { bytes: Uint8Array; sent: ExecutorTask[] }, walltime: number | undefined): void {
    const run: Run = { tasks: encoded.sent }
    const options: { signal?: AbortSignal } = {}
    // An exact-size copy: msgpackr's output is a view of its shared pool, and a view would carry
    // the whole pool through postMessage; a large message encoded into a buffer of its own is
    // sent as it is. (Not transferred: piscina's synchronous receive loop cannot deserialize
    // transferred buffers.)
    const message = ownsItsBuffer(encoded.bytes) ? encoded.bytes : new Uint8Array(encoded.bytes)
    if (walltime !== undefined || run.tasks.length === 1) {
      run.controller = new AbortController()
      options.signal = run.controller.signal
    }
    if (walltime !== undefined) {
      // Armed when the thread calls the function (onProgress): the walltime covers the call,
      // not the wait for a thread nor the import of the app's module.
      const grace = run.tasks[0]!.kind === TaskKind.bash ? BASH_WALLTIME_GRACE_MS : 0
      run.walltimeMs = walltime * 1000 + grace
    }
    this.runs.add(run)
    for (const task of run.tasks) {
      this.runOfTask.set(task.id, run)
      this.host!.taskRunning(task.id, task.try)
    }
    run.settled = this.pool!.run(message, options).then(
      (bytes: Uint8Array) => this.completeRun(run, bytes),
      (error: unknown) => this.abandonRun(run, error),
    )
  }

  private completeRun(run: Run, answer: Uint8Array): void {
    let early: number
    let results: ResultWire[]
    let slowestMs: number
    try {
      // The thread appends how long the batch ran (see worker.ts).
      const ms = new DataView(answer.buffer, answer.byteOffset, answer.byteLength).getFloat64(answer.byteLength - 8, true)
      const perTask = ms / Math.max(1, run.tasks.length)
      this.msPerTask = this.msPerTask === undefined ? perTask : this.msPerTask * 0.8 + perTask * 0.2
      ;[early, results, slowestMs] = decode<EncodedBatchAnswer>(answer.subarray(0, answer.byteLength - 8))
    } catch (error) {
      this.abandonRun(run, error)
      return
    }
    this.quick.observe(run.tasks, slowestMs)
    const byId = (run.byId ??= new Map(run.tasks.map((task) => [task.id, task])))
    for (const result of results) this.reportResult(run, result)
    if (byId.size > 0 && (run.early ?? 0) < early) {
      // Results posted earlier travel on another port and may arrive after this answer: the
      // thread is free, the run waits for them.
      run.expectedEarly = early
      this.runs.delete(run)
      this.awaiting.add(run)
      this.awaitingHold ??= setInterval(() => undefined, 2 ** 30)
      this.endRun(run)
      return
    }
    this.endRun(run)
    this.reportMissing(run)
  }

  /** Results and walltime starts a thread posts while its batch still runs. */
  private onProgress(message: ThreadProgress): void {
    if (message === null || typeof message !== 'object') return
    if ('tsflowStarted' in message) {
      const run = this.runOfTask.get(message.tsflowStarted)
      if (run && run.walltimeMs !== undefined && !run.timer && this.runs.has(run)) {
        run.timer = setTimeout(() => {
          run.abortReason = 'walltime'
          run.controller!.abort()
        }, run.walltimeMs)
      }
      return
    }
    if (!('tsflowResults' in message)) return
    let results: ResultWire[]
    try {
      results = decode<ResultWire[]>(message.tsflowResults)
    } catch (error) {
      this.host?.logger.error('a worker thread posted results that could not be read; their tasks fail when the batch ends', error)
      return
    }
    for (const result of results) {
      const run = this.runOfTask.get(result.id)
      if (!run) continue
      run.early = (run.early ?? 0) + 1
      this.reportResult(run, result)
      if (this.awaiting.has(run) && run.early >= run.expectedEarly!) {
        this.awaiting.delete(run)
        this.releaseAwaitingHold()
        this.reportMissing(run)
      }
    }
  }

  private reportResult(run: Run, result: ResultWire): void {
    const byId = (run.byId ??= new Map(run.tasks.map((task) => [task.id, task])))
    const task = byId.get(result.id)
    if (!task) return
    byId.delete(result.id)
    if (this.runOfTask.get(task.id) === run) this.runOfTask.delete(task.id)
    let outcome: Parameters<ExecutorHost['taskDone']>[2]
    try {
      outcome = result.ok ? { ok: true, value: result.value } : { ok: false, error: decodeError(result.error!) }
    } catch (error) {
      outcome = { ok: false, error: error as Error }
    }
    // With the proxy option, a large result arrives as a proxy: fetched (and evicted) first.
    const fetched = this.proxying ? this.proxying.outcome(task.id, outcome) : outcome
    if (fetched instanceof Promise) void fetched.then((settled) => this.report(task, settled))
    else this.report(task, fetched)
  }

  private reportMissing(run: Run): void {
    const left = run.byId ? [...run.byId.values()] : []
    run.byId?.clear()
    for (const task of left) {
      if (this.runOfTask.get(task.id) === run) this.runOfTask.delete(task.id)
      this.report(task, { ok: false, error: new ExecutorError(this.label, `the thread returned no result for task #${task.id}`) })
    }
  }

  private abandonRun(run: Run, error: unknown): void {
    const reason = run.abortReason
    this.failRun(run, (task) => {
      if (reason === 'walltime') return new WalltimeExceeded(task.id, task.appName, task.walltime!)
      if (reason === 'cancel') return new TaskCancelled(task.id, task.appName)
      if (reason === 'shutdown') return new ShutdownError(`executor ${this.label} shut down while task #${task.id} was running`)
      const lost = new WorkerLost(task.id, `a thread of executor ${this.label}`, exitCodeOf(error), null)
      Object.defineProperty(lost, 'cause', { value: error, configurable: true, writable: true })
      return lost
    })
    if (!this.stopping) queueMicrotask(() => this.flush())
  }

  /** Ends the run and fails the tasks it still owns (none, if it was already answered). */
  private failRun(run: Run, errorFor: (task: ExecutorTask) => Error): void {
    this.awaiting.delete(run)
    this.releaseAwaitingHold()
    this.endRun(run)
    const tasks = run.byId ? [...run.byId.values()] : run.tasks
    run.tasks = []
    run.byId = new Map()
    for (const task of tasks) this.report(task, { ok: false, error: errorFor(task) })
  }

  private releaseAwaitingHold(): void {
    if (this.awaiting.size > 0 || this.awaitingHold === undefined) return
    clearInterval(this.awaitingHold)
    this.awaitingHold = undefined
  }

  private endRun(run: Run): void {
    if (run.timer) clearTimeout(run.timer)
    this.runs.delete(run)
    // A run awaiting early results keeps its tasks findable for them.
    if (!this.awaiting.has(run)) for (const task of run.tasks) if (this.runOfTask.get(task.id) === run) this.runOfTask.delete(task.id)
    if (this.queue.size > 0 && !this.flushScheduled && !this.stopping) {
      this.flushScheduled = true
      queueMicrotask(() => this.flush())
    }
  }

  private report(task: ExecutorTask, outcome: Parameters<ExecutorHost['taskDone']>[2]): void {
    this.outstandingCount--
    this.proxying?.settled(task.id)
    // Never throws: a throwing settle handler must not stop the other results of the batch.
    if (this.host) deliverOutcome(this.host, this.label, task, outcome)
  }
}

function exitCodeOf(error: unknown): number | null {
  const match = /exit(?:ed)? (?:with )?code:? (-?\d+)/i.exec(String((error as Error)?.message ?? ''))
  return match ? Number(match[1]) : null
}
