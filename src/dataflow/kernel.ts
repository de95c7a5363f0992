import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import {
  DependencyError,
  ExecutorError,
  NoSuchExecutor,
  SerializationError,
  ShutdownError,
  TaskCancelled,
  TsflowError,
  WorkflowInWorker,
  ErrorCode,
} from '../errors.js'
import { File } from '../data/file.js'
import type { Executor, ExecutorHost, ExecutorTask, TaskOutcome } from '../executors/base.js'
import { resolveConfig, type Config, type ResolvedConfig } from '../config/config.js'
import { callOptionsSchema, type AppDefinition, type CallOptions } from './app-definition.js'
import { TaskKind, type TaskContextWire } from '../protocol/task.js'
import { inWorker } from '../runtime/context.js'
import { Logger } from '../util/logger.js'
import { deferred, settledWithin, type Deferred } from '../util/deferred.js'
import { AppFuture, DataFuture, Future } from './future.js'
import { ArgumentProblem, collectFutures, substituteFutures } from './dependencies.js'
import { Checkpointer, loadCheckpoints } from './checkpoint.js'
import { MemoTable, memoKey } from './memo.js'
import { makeRunDir } from './rundir.js'
import { FINAL_STATES, TaskState, type TaskStateValue } from './states.js'
import { TaskRecord } from './task-record.js'
import { runJoinApp } from './join.js'
import { guardExit, unguardExit } from './exit-guard.js'
import { executorMonitor, publishRetry, publishState, publishWorkflowEnd, publishWorkflowStart, taskStateChannel } from './publish.js'
import { ProgressView } from './progress.js'
import { decideRetry } from './retries.js'
import { monitoringDbPath } from '../protocol/monitoring.js'
import type { MonitoringRecorder, RecorderStats } from '../monitoring/recorder.js'

export { BLOCK_WALLTIME_FREE_RETRIES } from './retries.js'

export interface CleanupOptions {
  /** How long outstanding tasks may take to finish before they are cancelled (default 30 s). */
  deadlineMs?: number
}

/**
 * The DataFlowKernel: turns app calls into tasks, waits for their dependencies, memoizes,
 * hands them to executors, retries failures and settles their futures. Everything here runs
 * on the workflow's event loop; the per-task path avoids promises, timers and logging.
 */
export class DataFlowKernel {
  readonly config: ResolvedConfig
  private runDirectory: string | undefined
  private logger!: Logger
  private readonly executors = new Map<string, Executor>()
  private readonly records = new Map<number, TaskRecord>()
  private readonly memo = new MemoTable()
  private checkpointer: Checkpointer | undefined
  private readonly executorChoice = new WeakMap<AppDefinition, Executor[]>()
  private nextTaskId = 0
  private outstandingCount = 0
  private idleWaiters: Deferred<void>[] = []
  private readonly counts: Record<TaskStateValue, number> = Object.fromEntries(
    Object.values(TaskState).map((state) => [state, 0]),
  ) as Record<TaskStateValue, number>
  private phase: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  private host!: ExecutorHost
  private runIdentifier: string | undefined
  private progress: ProgressView | undefined
  private recorder: MonitoringRecorder | undefined
  /** the monitoring recorder's final counts, after cleanup() of a monitored run */
  recorderStats: RecorderStats | undefined

  constructor(config: Config = {}) {
    if (inWorker()) throw new WorkflowInWorker('new DataFlowKernel()')
    this.config = resolveConfig(config)
  }

  /** The run directory (`runinfo/NNN`), once started. */
  get runDir(): string {
    if (!this.runDirectory) throw new TsflowError(ErrorCode.SHUTDOWN, 'the kernel has not been started; call start() or use load()')
    return this.runDirectory
  }

  /** @internal The run directory, or undefined before start (TaskHost). */
  get startedRunDir(): string | undefined {
    return this.runDirectory
  }

  /** Unique per start, in the `tsflow:workflow:*` channel messages (docs/monitoring.md); undefined before start. */
  get runId(): string | undefined {
    return this.runIdentifier
  }

  /** Tasks submitted and not yet in a final state. */
  get outstanding(): number {
    return this.outstandingCount
  }

  /** How many tasks have been in each final state, and are in each live state now. */
  taskCounts(): Readonly<Record<TaskStateValue, number>> {
    return { ...this.counts }
  }

  async start(): Promise<this> {
    if (this.phase !== 'new') throw new TsflowError(ErrorCode.SHUTDOWN, `the kernel cannot start: it is ${this.phase}`)
    this.phase = 'starting'
    let runDir: string
    try {
      runDir = makeRunDir(this.config.runDir)
    } catch (error) {
      this.phase = 'stopped'
      throw error
    }
    this.runDirectory = runDir
    // Before the executors start: their block events already carry it.
    this.runIdentifier = randomUUID()
    this.logger = new Logger('kernel', this.config.logLevel, join(runDir, 'tsflow.log'))
    this.logger.info(`run directory ${runDir}; executors ${this.config.executors.map((e) => e.label).join(', ')}`)
    const started: Executor[] = []
    try {
      if (this.config.checkpointFiles.length > 0) {
        const entries = loadCheckpoints(this.config.checkpointFiles, this.logger)
        this.memo.preload(entries)
        this.logger.info(`loaded ${entries.size} checkpointed results`)
      }
      if (this.config.checkpointMode !== 'none') {
        this.checkpointer = new Checkpointer(runDir, this.config.checkpointMode, this.config.checkpointPeriodMs, this.logger)
      }
      const kernel = this
      this.host = {
        runDir,
        logger: this.logger,
        taskDone: (taskId, tryNumber, outcome) => kernel.taskDone(taskId, tryNumber, outcome),
        taskRunning: (taskId, tryNumber) => kernel.taskRunning(taskId, tryNumber),
        monitor: executorMonitor(() => kernel.runIdentifier!, this.config.monitoring?.resourceIntervalMs ?? 0),
      }
      const monitoring = this.config.monitoring
      if (monitoring) {
        // Loaded only when on, so a run without monitoring never loads better-sqlite3.
        const { MonitoringRecorder } = await import('../monitoring/recorder.js')
        const db = monitoringDbPath(monitoring, runDir)
        // The workflow row is written now, before the executors report their first blocks.
        const run = { runId: this.runIdentifier, runDir, executors: this.config.executors.map((e) => e.label), startMs: Date.now() }
        this.recorder = await new MonitoringRecorder({ db, retention: monitoring.retention, writerNice: monitoring.writerNice, run, tasks: () => this.records.values() }).start()
        this.logger.info(`monitoring into ${db}`)
      }
      for (const executor of this.config.executors) {
        await executor.start({ ...this.host, runDir: join(runDir, executor.label), logger: this.logger.child(executor.label) })
        started.push(executor)
        this.executors.set(executor.label, executor)
      }
    } catch (error) {
      this.logger.error('the kernel failed to start', error)
      await Promise.all(started.map((executor) => executor.shutdown(0).catch(() => undefined)))
      this.recorder?.endRun(this.counts)
      await this.recorder?.close(2000)
      this.recorder = undefined
      this.checkpointer?.close()
      this.phase = 'stopped'
      this.logger.close()
      if (error instanceof TsflowError) throw error
      const failing = this.config.executors[started.length]
      throw failing ? new ExecutorError(failing.label, `failed to start: ${(error as Error).message}`, { cause: error }) : error
    }
    this.phase = 'running'
    runningKernels.add(this)
    guardExit(this)
    publishWorkflowStart(this.runIdentifier, runDir, [...this.executors.keys()])
    const progress = this.config.progress
    if (progress) this.progress = new ProgressView(() => this.counts, progress.intervalMs, progress.stream)
    return this
  }

  /** Submits one call of `app`. Used by app wrappers; returns the call's future at once. */
  submit<T>(app: AppDefinition, args: unknown[], callOptions: CallOptions = {}): AppFuture<T> {
    return this.submitChecked<T>(app, args, this.checkCallOptions(app, callOptions, `${app.name}.with()`))
  }

  /**
   * Submits one call of `app` per argument list, the options checked once (`app.map`). The calls
   * are made in one turn of the event loop, so executors send them to their workers as batches.
   */
  submitMany<T>(app: AppDefinition, argsList: Iterable<unknown[]>, callOptions: CallOptions = {}): AppFuture<T>[] {
    const options = this.checkCallOptions(app, callOptions, `${app.name}.map() options`)
    const futures: AppFuture<T>[] = []
    let index = 0
    for (const args of argsList) {
      if (!Array.isArray(args)) {
        throw new TypeError(
          `${app.name}.map(): item ${index} is not an argument list (got ${args === null ? 'null' : typeof args}); ` +
            `give one array of arguments per call, e.g. ${app.name}.map(xs.map((x) => [x]))`,
        )
      }
      futures.push(this.submitChecked<T>(app, args, options))
      index++
    }
    return futures
  }

  private checkCallOptions(app: AppDefinition, callOptions: CallOptions, where: string): CallOptions {
    if (callOptions === EMPTY_OPTIONS) return callOptions
    callOptionsSchema(callOptions, where)
    // app.with({ dfk }) leaves an empty object: share the frozen one, so the task needs no
    // context object and the hot path stays the same as a plain call.
    return isEmpty(callOptions) ? EMPTY_OPTIONS : callOptions
  }

  private submitChecked<T>(app: AppDefinition, args: unknown[], callOptions: CallOptions): AppFuture<T> {
    const record = new TaskRecord(++this.nextTaskId, app, args, callOptions, this)
    const future = new AppFuture<unknown>(record)
    record.future = future
    this.counts.unsched++
    if (callOptions.outputs) {
      for (const output of callOptions.outputs) future.addOutput(new DataFuture(future, output instanceof File ? output : new File(String(output))))
    }
    this.records.set(record.id, record)
    this.outstandingCount++
    if (this.phase !== 'running') {
      this.finish(record, TaskState.failed, false, new ShutdownError(`task #${record.id} (${app.name}) was submitted to a kernel that is ${this.phase}; load() a kernel before calling apps`))
      return future as AppFuture<T>
    }
    const dependencies: Future<unknown>[] = []
    // Join apps run here, so their arguments never cross the codec.
    const refuse = app.kind !== 'join'
    let index = 0 // of the argument being scanned; -1 for inputs
    try {
      for (; index < args.length; index++) collectFutures(args[index], dependencies, refuse)
      index = -1
      if (callOptions.inputs) collectFutures(callOptions.inputs, dependencies, refuse)
    } catch (error) {
      this.finish(record, TaskState.failed, false, argumentError(record, index < 0 ? 'inputs' : `argument ${index}`, error))
      return future as AppFuture<T>
    }
    if (dependencies.length === 0) {
      this.launch(record)
    } else {
      // Set first: the `pending` message says how many futures the task waits for.
      record.waitingOn = dependencies.length
      this.setState(record, TaskState.pending)
      for (const dependency of dependencies) dependency.onSettled(record)
    }
    return future as AppFuture<T>
  }

  /** @internal Called by a pending record when one of its dependencies settles. */
  dependencySettled(record: TaskRecord, dependency: Future<unknown>): void {
    if (record.state !== TaskState.pending) return
    if (!dependency.succeeded) {
      const error = new DependencyError(record.id, record.appName, [dependency.taskId], dependency.exception())
      this.finish(record, TaskState.dep_fail, false, error)
      return
    }
    if (--record.waitingOn === 0) {
      try {
        record.args = substituteFutures(record.args) as unknown[]
      } catch (error) {
        this.finish(record, TaskState.failed, false, argumentError(record, 'arguments', error))
        return
      }
      this.launch(record)
    }
  }

  private launch(record: TaskRecord): void {
    const app = record.app
    if (app.options.cache && this.config.appCache) {
      try {
        if (record.memoKey === undefined) record.memoKey = this.memoKeyOf(record)
      } catch (error) {
        this.finish(record, TaskState.failed, false, argumentError(record, 'arguments', error))
        return
      }
      const found = this.memo.lookup(record.memoKey)
      if (found.hit) {
        // A result carried over from an earlier run goes into this run's checkpoint too, so
        // the run after next still finds it.
        if (this.memo.firstUseOfLoaded(record.memoKey)) this.checkpointer?.record(record.memoKey, record.appName, found.value)
        this.finish(record, TaskState.memo_done, true, found.value)
        return
      }
      if (found.running && found.running !== record.future) {
        // An identical call is running: share its result, or run ourselves if it fails.
        this.setState(record, TaskState.pending)
        const running = found.running
        running.onSettled(() => {
          if (record.state !== TaskState.pending) return
          if (running.succeeded) this.finish(record, TaskState.memo_done, true, running.settledResult())
          else this.launchNow(record)
        })
        return
      }
      this.memo.started(record.memoKey, record.future)
    }
    this.launchNow(record)
  }

  private launchNow(record: TaskRecord): void {
    const app = record.app
    if (app.kind === 'join') {
      // Counted first, so that the `launched` state belongs to this try (channels.ts tryNumber).
      record.tries++
      this.setState(record, TaskState.launched)
      // App calls made by the join function go to this kernel, whichever is loaded.
      const previous = ambientKernel
      ambientKernel = this
      try {
        runJoinApp(record, this.contextOf(record), (ok, value) => this.joinDone(record, record.tries - 1, ok, value), () =>
          this.setState(record, TaskState.joining),
        )
      } finally {
        ambientKernel = previous
      }
      return
    }
    let executor: Executor
    try {
      executor = this.executorFor(record)
    } catch (error) {
      this.finish(record, TaskState.failed, false, error)
      return
    }
    record.executor = executor.label
    const task: ExecutorTask = {
      id: record.id,
      try: record.tries++,
      appName: app.name,
      fn: app.descriptor!,
      kind: app.kind === 'bash' ? TaskKind.bash : TaskKind.js,
      args: record.args,
      priority: record.callOptions.priority ?? app.options.priority ?? 0,
    }
    const ctx = this.contextOf(record)
    if (ctx) task.ctx = ctx
    const walltime = record.callOptions.walltime ?? app.options.walltime
    if (walltime !== undefined) task.walltime = walltime
    const resources = record.callOptions.resources ?? app.options.resources
    if (resources) task.resources = resources
    if (app.options.modules) task.modules = app.options.modules
    this.setState(record, TaskState.launched)
    executor.submit(task)
  }

  private contextOf(record: TaskRecord): TaskContextWire | undefined {
    const options = record.callOptions
    const appOptions = record.app.options
    if (options === EMPTY_OPTIONS && appOptions.pty === undefined && appOptions.stdout === undefined && appOptions.stderr === undefined) return undefined
    const ctx: TaskContextWire = {}
    if (options.inputs) ctx.inputs = substituteFutures(options.inputs) as unknown[]
    if (record.future.outputs.length) ctx.outputs = record.future.outputs.map((output) => output.file)
    const stdout = record.stdStreamTarget('stdout')
    if (stdout !== undefined) ctx.stdout = stdout
    const stderr = record.stdStreamTarget('stderr')
    if (stderr !== undefined) ctx.stderr = stderr
    const pty = options.pty ?? record.app.options.pty
    if (pty) ctx.pty = pty === true ? {} : pty
    if (options.cwd) ctx.cwd = options.cwd
    if (options.env) ctx.env = options.env
    return ctx
  }

  private executorFor(record: TaskRecord): Executor {
    const wanted = record.callOptions.executors ?? record.app.options.executors
    let candidates: Executor[] | undefined
    if (!record.callOptions.executors) candidates = this.executorChoice.get(record.app)
    if (!candidates) {
      if (wanted === undefined || wanted === 'all') candidates = [...this.executors.values()]
      else candidates = wanted.map((label) => this.executors.get(label)).filter((e): e is Executor => e !== undefined)
      if (candidates.length === 0) throw new NoSuchExecutor(record.appName, wanted === 'all' || !wanted ? [] : wanted, [...this.executors.keys()])
      if (!record.callOptions.executors) this.executorChoice.set(record.app, candidates)
    }
    if (candidates.length === 1) return candidates[0]!
    // Among several, the least loaded.
    let best = candidates[0]!
    for (const candidate of candidates) if (candidate.outstanding < best.outstanding) best = candidate
    return best
  }

  private memoKeyOf(record: TaskRecord): string {
    const { inputs, outputs, stdout, stderr } = record.callOptions
    return memoKey(record.app.identity, record.args, { inputs, outputs, stdout, stderr }, record.app.options.ignoreForCache ?? [])
  }

  private taskRunning(taskId: number, tryNumber: number): void {
    const record = this.records.get(taskId)
    if (record && record.tries - 1 === tryNumber && record.state === TaskState.launched) this.setState(record, TaskState.running)
  }

  private taskDone(taskId: number, tryNumber: number, outcome: TaskOutcome): void {
    const record = this.records.get(taskId)
    // Unknown or stale (a try that was already given up on): nothing to do.
    if (!record || record.tries - 1 !== tryNumber || FINAL_STATES.has(record.state)) return
    if (outcome.ok) this.finish(record, TaskState.exec_done, true, outcome.value)
    else this.failed(record, outcome.error)
  }

  private joinDone(record: TaskRecord, tryNumber: number, ok: boolean, value: unknown): void {
    if (record.tries - 1 !== tryNumber || FINAL_STATES.has(record.state)) return
    if (ok) this.finish(record, TaskState.exec_done, true, value)
    else this.failed(record, value)
  }

  private failed(record: TaskRecord, error: unknown): void {
    const decision = decideRetry(record, error, this.config, this.phase === 'running', this.logger)
    if (decision === 'cancelled' || decision === 'failed') {
      this.finish(record, decision === 'cancelled' ? TaskState.cancelled : TaskState.failed, false, error)
      return
    }
    this.recorder?.taskRetry(record, error, decision === 'free')
    publishRetry(this.runIdentifier!, record, error, decision === 'free')
    this.setState(record, TaskState.pending)
    this.launchNow(record)
  }

  private finish(record: TaskRecord, state: TaskStateValue, ok: boolean, value: unknown): void {
    // A cascade (a cancelled task failing its dependents) can reach a record twice.
    if (FINAL_STATES.has(record.state)) return
    this.setState(record, state, state === TaskState.failed || state === TaskState.dep_fail ? value : undefined)
    this.records.delete(record.id)
    if (record.memoKey !== undefined) {
      this.memo.finished(record.memoKey, record.future, ok, value)
      if (ok && state === TaskState.exec_done) this.checkpointer?.record(record.memoKey, record.appName, value)
    }
    try {
      record.future.settle(ok, value)
    } finally {
      // Counted even when a settle handler throws: waitForCurrentTasks() must still return.
      if (--this.outstandingCount === 0 && this.idleWaiters.length) {
        const waiters = this.idleWaiters
        this.idleWaiters = []
        for (const waiter of waiters) waiter.resolve()
      }
    }
  }

  /** `error`: what a `failed` or `dep_fail` task failed with, for the channel's message. */
  private setState(record: TaskRecord, state: TaskStateValue, error?: unknown): void {
    const from = record.state
    this.counts[from]--
    this.counts[state]++
    record.state = state
    // The kernel's own monitoring recorder is called directly: no message per change.
    if (this.recorder !== undefined) this.recorder.taskState(record, from, state, error)
    // The only cost of the channel when nobody listens: no message is built, nothing is called.
    // (A kernel refusing tasks before start() has no run id yet: '' then.)
    if (taskStateChannel.hasSubscribers) publishState(this.runIdentifier ?? '', record, from, state, error)
  }

  /** @internal Called by a record's cancel(). */
  cancelTask(record: TaskRecord): boolean {
    if (FINAL_STATES.has(record.state)) return false
    if (record.state === TaskState.pending || record.state === TaskState.unsched) {
      this.finish(record, TaskState.cancelled, false, new TaskCancelled(record.id, record.appName))
      return true
    }
    if (record.state === TaskState.joining) return false
    const executor = record.executor === undefined ? undefined : this.executors.get(record.executor)
    return executor?.cancel(record.id) ?? false
  }

  /** Resolves when no task is outstanding. */
  waitForCurrentTasks(): Promise<void> {
    if (this.outstandingCount === 0) return Promise.resolve()
    const waiter = deferred<void>()
    this.idleWaiters.push(waiter)
    return waiter.promise
  }

  /** @internal The event loop emptied with tasks outstanding (exit-guard.ts): fail them all. */
  failStranded(errorFor: (taskId: number, appName: string, state: string) => Error): number {
    const stranded = [...this.records.values()]
    this.logger.error(`the event loop emptied with ${this.outstandingCount} tasks outstanding; failing ${stranded.length}`)
    for (const record of stranded) this.finish(record, TaskState.failed, false, errorFor(record.id, record.appName, record.state))
    return stranded.length
  }

  /** Writes buffered checkpoint entries now (the `manual` mode's trigger); returns how many. */
  checkpoint(): number {
    return this.checkpointer?.flush() ?? 0
  }

  /**
   * Finishes the run: outstanding tasks get until the deadline to finish, then are cancelled
   * (their futures reject with ShutdownError); executors stop, checkpoints are flushed. Never
   * hangs: every step is bounded.
   */
  async cleanup(options: CleanupOptions = {}): Promise<void> {
    if (this.phase === 'stopping' || this.phase === 'stopped' || this.phase === 'new') {
      this.phase = 'stopped'
      return
    }
    this.phase = 'stopping'
    const deadlineMs = options.deadlineMs ?? 30_000
    const started = Date.now()
    const finished = await settledWithin(this.waitForCurrentTasks(), deadlineMs)
    if (!finished) this.logger.warn(`cleanup: ${this.outstandingCount} tasks still outstanding after ${deadlineMs} ms; cancelling them`)
    for (const record of [...this.records.values()]) {
      this.finish(record, TaskState.cancelled, false, new ShutdownError(`task #${record.id} (${record.appName}) was cancelled because the kernel shut down before it finished`))
    }
    // Every task is final now: the summary line is the run's, not the executors' shutdown's.
    this.progress?.stop()
    this.progress = undefined
    const remaining = Math.max(1000, deadlineMs - (Date.now() - started))
    await Promise.all(
      [...this.executors.values()].map((executor) =>
        settledWithin(executor.shutdown(Math.min(remaining, 5000)), remaining + 5000).then((ok) => {
          if (!ok) this.logger.warn(`executor ${executor.label} did not shut down in time`)
        }),
      ),
    )
    try {
      this.checkpointer?.close()
    } catch (error) {
      this.logger.error('final checkpoint failed', error)
    }
    this.logger.info('cleaned up')
    this.logger.close()
    this.phase = 'stopped'
    unguardExit(this)
    runningKernels.delete(this)
    if (currentKernel === this) currentKernel = undefined
    publishWorkflowEnd(this.runIdentifier!, this.runDirectory!, this.counts)
    // After the end record, so the database has the whole run; bounded, as every step here.
    const recorder = this.recorder
    this.recorder = undefined
    if (recorder) this.recorderStats = await recorder.close(10_000)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup()
  }
}

/** Shared empty call options: lets the hot path skip validation and context building. */
export const EMPTY_OPTIONS: CallOptions = Object.freeze({}) as CallOptions

function isEmpty(options: object): boolean {
  for (const _ in options) return false
  return true
}

// An argument that cannot be scanned, copied or hashed fails its task, never the caller.
function argumentError(record: TaskRecord, where: string, error: unknown): SerializationError {
  const task = `task #${record.id} (${record.appName})`
  if (error instanceof ArgumentProblem) {
    return new SerializationError(`${error.describe(where)} of ${task} cannot be used: ${error.problem}`, { cause: error.cause })
  }
  const why = error instanceof RangeError ? 'it is nested too deeply' : `reading it threw ${(error as Error)?.name}: ${(error as Error)?.message}`
  return new SerializationError(`${where} of ${task} cannot be used: ${why}`, { cause: error })
}

let currentKernel: DataFlowKernel | undefined
let ambientKernel: DataFlowKernel | undefined
const runningKernels = new Set<DataFlowKernel>()

/** Starts a kernel with `config` (default: the embedded local config) and makes it current. */
export async function load(config?: Config): Promise<DataFlowKernel> {
  if (inWorker()) throw new WorkflowInWorker('load()')
  if (currentKernel) {
    throw new TsflowError(
      ErrorCode.CONFIG,
      'a DataFlowKernel is already loaded in this process; await its cleanup() before loading another, ' +
        'or create a second one explicitly with new DataFlowKernel(config).start()',
    )
  }
  const kernel = new DataFlowKernel(config)
  currentKernel = kernel
  try {
    await kernel.start()
  } catch (error) {
    currentKernel = undefined
    throw error
  }
  return kernel
}

/**
 * The kernel apps submit to when the call does not name one: the kernel running the current
 * join app, else the loaded one, else the only running one.
 */
export function dfk(): DataFlowKernel {
  const kernel = ambientKernel ?? currentKernel ?? (runningKernels.size === 1 ? runningKernels.values().next().value : undefined)
  if (kernel) return kernel
  throw new TsflowError(
    ErrorCode.SHUTDOWN,
    runningKernels.size > 1
      ? `${runningKernels.size} kernels are running and none is loaded: name one per call with app.with({ dfk: kernel })(...)`
      : 'no DataFlowKernel is loaded: call `await load()` (or `await using kernel = await load()`) before calling apps',
  )
}

/** Clears the current kernel (after cleanup). */
export async function clear(): Promise<void> {
  if (currentKernel) await currentKernel.cleanup()
  currentKernel = undefined
}
