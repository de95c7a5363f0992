/**
 * The manager: one per node. Registers with the interchange, takes task batches up to its
 * announced capacity, runs them on a pool of worker threads or processes, and sends results
 * back batched. It exits on `shutdown`, after `drain`, on SIGTERM/SIGINT, and on its own when the
 * interchange falls silent, so a lost interchange never leaves managers running on a cluster.
 */
import { hostname } from 'node:os'
import { join } from 'node:path'
import {
  ACCEPTED,
  decodeMessage,
  encodeMessage,
  stamp,
  type InterchangeToManager,
  type ManagerMessage,
} from '../protocol/messages.js'
import { DEFAULT_HEARTBEAT_PERIOD_MS, DEFAULT_HEARTBEAT_THRESHOLD_MS } from '../protocol/interchange.js'
import { BlockWalltimeReached, ErrorCode, ShutdownError } from '../errors.js'
import { DEFAULT_WALLTIME_MARGIN_MS } from '../protocol/interchange.js'
import { Logger } from '../util/logger.js'
import { deferred } from '../util/deferred.js'
import { loadCurveKeys, type ClientCurveKeys } from '../transport/curve.js'
import { Heartbeat } from '../transport/heartbeat.js'
import { Channel } from './channel.js'
import type { ManagerOptions } from './cli.js'
import type { WorkerPool } from './pool.js'
import { PrefetchPolicy } from './prefetch.js'
import { Scheduler } from './scheduler.js'
import { toResultTuple, type ResultTupleWire } from '../protocol/task.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import { createPool, workerSetups } from './workers.js'
import { ResourceSampler } from './sampler.js'

export const ExitCode = { ok: 0, failed: 1, usage: 2, refused: 3, interchangeLost: 4 } as const

const MAX_RESULTS_PER_MESSAGE = 4096
const MAX_BATCH = 256
const BASH_WALLTIME_GRACE_MS = 3000
/** How a scheduler ends a job: a bash app's command that died of these at the block's end was ended by it. */
const SCHEDULER_SIGNALS = new Set(['SIGTERM', 'SIGKILL'])
/** The same seen through a shell that reported its child's death as an exit code (128 + signal). */
const SCHEDULER_SIGNAL_EXITS = new Set([143, 137])
const INTERCHANGE_RECONNECT_GRACE_MS = 500

export function runManager(options: ManagerOptions): Promise<number> {
  return new Manager(options).run()
}

type State = 'starting' | 'registered' | 'draining' | 'stopping'

class Manager {
  private readonly logger: Logger
  private readonly host = hostname()
  private pool!: WorkerPool
  private scheduler!: Scheduler
  private channel!: Channel
  private state: State = 'starting'
  private readonly control: ManagerMessage[] = []
  private periodMs: number
  private thresholdMs: number
  private ticker: NodeJS.Timeout | undefined
  /** when the interchange was last heard from, and when our heartbeat is due */
  private liveness: Heartbeat<'interchange'>
  /** the capacity the interchange believes in: last announced, minus tasks received since */
  private announced = 0
  private dropped = 0
  private readonly exited = deferred<number>()
  // A signal usually means the batch job is ending: tell the client what happened to its tasks.
  private readonly onSignal = (signal: NodeJS.Signals): void =>
    void this.stop(ExitCode.ok, `received ${signal}; shutting down`, { failOutstanding: `received ${signal} (its batch job may be ending)`, tellInterchange: true })
  private readonly onExit = (): void => this.pool?.killNow()

  private readonly prefetch: PrefetchPolicy
  /** only when the executor monitors (--resource-interval-ms > 0); otherwise no timer, no reads */
  private sampler: ResourceSampler | undefined

  constructor(private readonly options: ManagerOptions) {
    this.prefetch = new PrefetchPolicy(options.workers, options.prefetch)
    const logFile = options.logDir ? join(options.logDir, `manager-${options.managerId.replace(/[/\\]/g, '_')}.log`) : undefined
    this.logger = new Logger('manager', options.logLevel, logFile)
    this.periodMs = options.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS
    this.thresholdMs = options.heartbeatThresholdMs ?? DEFAULT_HEARTBEAT_THRESHOLD_MS
    this.liveness = new Heartbeat({ periodMs: this.periodMs, thresholdMs: this.thresholdMs })
    this.liveness.beat('interchange')
  }

  async run(): Promise<number> {
    const { options, logger } = this
    logger.info(
      `starting manager ${options.managerId} (block ${options.blockId}, pid ${process.pid}) on ${this.host}: ` +
        `${options.workers} ${options.mode} workers (${options.workerNotes.join('; ')}), prefetch ${this.prefetch.describe()}` +
        (options.accelerators.length ? `, accelerators ${options.accelerators.join(',')} via ${options.acceleratorEnv}` : '') +
        (options.blockEnd ? `; block ends ${new Date(options.blockEnd.endMs).toISOString()} (from ${options.blockEnd.source})` : ''),
    )
    let curve: ClientCurveKeys | undefined
    try {
      // The same key directory layout and permission checks as the interchange (transport/curve.ts).
      if (options.curveDir) curve = loadCurveKeys(options.curveDir, 'client')
    } catch (error) {
      return this.abort(ExitCode.failed, (error as Error).message)
    }
    const setups = workerSetups(options, logger)
    this.pool = createPool(
      options,
      setups,
      {
        partial: (batch, indexes, answers) => this.scheduler.partial(batch, indexes, answers),
        done: (batch, answers, slowestMs) => this.scheduler.done(batch, answers, slowestMs),
        failed: (batch, failure) => this.scheduler.failed(batch, failure),
        changed: () => this.scheduler.changed(),
        fatal: (message) => void this.stop(ExitCode.failed, message, { stderr: true, failOutstanding: message, tellInterchange: true }),
      },
      logger,
    )
    this.scheduler = new Scheduler(
      this.pool,
      {
        prefetch: this.prefetch,
        maxBatch: MAX_BATCH,
        bashGraceMs: BASH_WALLTIME_GRACE_MS,
        where: `manager ${options.managerId}`,
        ...(options.blockEnd
          ? {
              explainFailure: (taskId: number, error: unknown) => this.explainFailure(taskId, error),
              explainAnswer: (payload: Uint8Array) => this.explainAnswer(payload),
            }
          : {}),
      },
      logger,
      () => this.afterTurn(),
    )
    this.channel = new Channel({
      endpoint: options.interchange,
      routingId: options.managerId,
      ...(curve ? { curve } : {}),
      next: () => this.nextFrame(),
      onMessage: (frames) => this.onMessage(frames),
      onError: (error) => void this.stop(ExitCode.failed, `ZeroMQ socket failed: ${(error as Error)?.message ?? error}`, { stderr: true }),
      // A closed connection that stays closed is the interchange's death (it is restarted only
      // with new ports): no need to wait out the heartbeat threshold.
      lostAfterMs: () => Math.min(this.thresholdMs, INTERCHANGE_RECONNECT_GRACE_MS),
      onLost: (ms) =>
        void this.stop(
          ExitCode.interchangeLost,
          this.channel.everConnected
            ? `the connection to the interchange at ${options.interchange} is closed and has not come back for ${ms} ms; ` +
                `presuming it gone, stopping ${options.workers} workers and exiting`
            : // Never connected: most often an address this node cannot reach (loopback, another network).
              `could not connect to the interchange at ${options.interchange} from ${this.host} for ${ms} ms; check that this node ` +
                `can reach that address (the executor's address option; 127.0.0.1 only works on the workflow's own host) and that the workflow is still running; ` +
                `stopping ${options.workers} workers and exiting`,
          { stderr: true, lingerMs: 0 },
        ),
    })
    process.on('SIGTERM', this.onSignal)
    process.on('SIGINT', this.onSignal)
    process.on('exit', this.onExit)

    // Workers start while registration is in flight; tasks that arrive first wait in the queue.
    this.pool.start()
    if (options.resourceIntervalMs > 0) {
      this.sampler = new ResourceSampler(options.resourceIntervalMs, this.pool, (timeMs, samples) => this.send({ t: 'resources', timeMs, samples }), logger.child('sampler'))
      this.sampler.start()
      logger.info(`sampling running tasks' CPU, memory and I/O from /proc every ${options.resourceIntervalMs} ms`)
    }
    this.channel.open()
    this.send({
      t: 'register',
      managerId: options.managerId,
      host: this.host,
      blockId: options.blockId,
      workers: options.workers,
      prefetch: this.prefetch.ceiling,
      capacity: options.workers + this.prefetch.value,
      pid: process.pid,
      ...(options.accelerators.length ? { accelerators: options.accelerators } : {}),
      ...(options.blockEnd ? { leftMs: options.blockEnd.endMs - Date.now() } : {}),
      ...stamp(),
    })
    this.startTicker()
    logger.info(`connecting to the interchange at ${options.interchange}${curve ? ' (CurveZMQ)' : ''}`)
    return this.exited.promise
  }

  /**
   * A task lost with its worker, or failed by a shutdown, at (or within the margin of) the block's
   * end: the scheduler is taking the node away (the signal reaches the workers too), so the task
   * is reported as stopped by the block's walltime, which the client retries without counting it.
   */
  private explainFailure(taskId: number, error: unknown): unknown {
    const end = this.options.blockEnd!
    const code = (error as { code?: unknown })?.code
    if (code !== ErrorCode.WORKER_LOST && code !== ErrorCode.SHUTDOWN) return error
    const margin = this.options.walltimeMarginMs ?? DEFAULT_WALLTIME_MARGIN_MS
    const now = Date.now()
    if (now < end.endMs - margin) return error
    const why = `${(error as Error).message}; the block's end was ${new Date(end.endMs).toISOString()} (from ${end.source})`
    return new BlockWalltimeReached(taskId, `manager ${this.options.managerId} on ${this.host}`, this.options.blockId, why)
  }

  /**
   * A worker's answer at (or within the margin of) the block's end. A scheduler ending a job
   * signals every process in it, so a bash app's command can die of that signal, and its worker
   * report the failure, before this manager handles its own SIGTERM (seen on Slurm): such a
   * failure is reported as stopped by the block's walltime too. Earlier answers pass undecoded.
   */
  private explainAnswer(payload: Uint8Array): Uint8Array {
    const end = this.options.blockEnd!
    if (Date.now() < end.endMs - (this.options.walltimeMarginMs ?? DEFAULT_WALLTIME_MARGIN_MS)) return payload
    let tuple: ResultTupleWire
    try {
      tuple = decode<ResultTupleWire>(payload)
    } catch {
      return payload
    }
    if (!Array.isArray(tuple) || tuple[2] !== 0) return payload
    const error = tuple[3]
    const props = error.props as { signal?: unknown; exitCode?: unknown } | undefined
    const killed = typeof props?.signal === 'string' ? SCHEDULER_SIGNALS.has(props.signal) : SCHEDULER_SIGNAL_EXITS.has(props?.exitCode as number)
    if (error.code !== ErrorCode.BASH_EXIT || !killed) return payload
    const why = `${error.message}; the block's end was ${new Date(end.endMs).toISOString()} (from ${end.source})`
    const stopped = new BlockWalltimeReached(tuple[0], `manager ${this.options.managerId} on ${this.host}`, this.options.blockId, why)
    return encode(toResultTuple({ id: tuple[0], try: tuple[1], ok: false, error: encodeError(stopped) }))
  }

  private onMessage(frames: Buffer[]): void {
    this.liveness.beat('interchange')
    let message: InterchangeToManager
    try {
      message = decodeMessage<InterchangeToManager>(frames, ACCEPTED.managerFromInterchange)
    } catch (error) {
      // Never crash on garbage; but do not let a flood of it flood the log either.
      if (++this.dropped <= 10 || this.dropped % 1000 === 0) {
        this.logger.warn(`dropped frame #${this.dropped} from the interchange: ${(error as Error).message}`)
      }
      return
    }
    try {
      this.handle(message)
    } catch (error) {
      this.logger.error(`failed to handle a '${message.t}' message`, error)
    }
  }

  private handle(message: InterchangeToManager): void {
    if (this.state === 'stopping') return
    switch (message.t) {
      case 'registered':
        this.registered(message.heartbeatPeriodMs, message.heartbeatThreshold)
        break
      case 'refused':
        void this.stop(ExitCode.refused, `registration refused by the interchange: ${message.reason}`, { stderr: true, lingerMs: 0 })
        break
      case 'tasks':
        this.announced -= message.tasks.length
        this.scheduler.accept(message.tasks, message.fns)
        break
      case 'cancel':
        this.scheduler.cancel(message.ids)
        break
      case 'drain':
        if (this.state !== 'draining') this.logger.info(`draining: taking no new tasks, finishing ${this.scheduler.outstanding}`)
        this.state = 'draining'
        this.afterTurn()
        break
      case 'heartbeat':
        break
      case 'shutdown':
        void this.stop(ExitCode.ok, 'shutdown requested by the interchange')
        break
    }
  }

  private registered(periodMs: number, thresholdMs: number): void {
    if (this.state === 'starting') {
      this.state = 'registered'
      // The interchange counts a registration as announcing full capacity.
      this.announced = this.options.workers + this.prefetch.value
    }
    // Values given on the command line win; otherwise the interchange's, if sensible.
    if (this.options.heartbeatPeriodMs === undefined && periodMs > 0) this.periodMs = periodMs
    if (this.options.heartbeatThresholdMs === undefined && thresholdMs > 0) this.thresholdMs = thresholdMs
    this.liveness = new Heartbeat({ periodMs: this.periodMs, thresholdMs: this.thresholdMs })
    this.liveness.beat('interchange')
    this.startTicker()
    this.logger.info(`registered with the interchange (heartbeat every ${this.periodMs} ms, interchange presumed lost after ${this.thresholdMs} ms of silence)`)
    this.channel.kick()
  }

  /** The next message for the interchange: control messages, then results, then a capacity update. */
  private nextFrame(): Uint8Array[] | undefined {
    const control = this.control.shift()
    if (control) return encodeMessage(control)
    if (this.state === 'starting') return undefined
    const capacity = this.state === 'draining' || this.state === 'stopping' ? 0 : this.scheduler.capacity()
    if (this.scheduler.hasResults) {
      this.announced = capacity
      return encodeMessage({ t: 'results', results: this.scheduler.takeResults(MAX_RESULTS_PER_MESSAGE), capacity })
    }
    // Only growth needs saying: the interchange already counts down what it sent us.
    if (this.state === 'stopping') return undefined
    if (capacity > Math.max(0, this.announced) || (capacity === 0 && this.announced > 0 && this.state === 'draining')) {
      this.announced = capacity
      return encodeMessage({ t: 'ready', capacity })
    }
    return undefined
  }

  private send(message: ManagerMessage): void {
    this.control.push(message)
    this.channel.kick()
  }

  /** After each scheduler turn: ship results and capacity; finish a drain once idle. */
  private afterTurn(): void {
    this.channel.kick()
    if (this.state === 'draining' && this.scheduler.outstanding === 0 && !this.scheduler.hasResults) {
      this.send({ t: 'drained' })
      void this.stop(ExitCode.ok, 'drained: all tasks finished')
    }
  }

  private startTicker(): void {
    if (this.ticker) clearInterval(this.ticker)
    const every = Math.min(1000, Math.max(10, Math.floor(Math.min(this.periodMs, this.thresholdMs) / 4)))
    this.ticker = setInterval(() => this.tick(), every)
  }

  private tick(): void {
    const silent = this.liveness.expired()[0]
    if (silent) {
      const what = this.state === 'starting' ? 'no answer to registration' : 'no message'
      void this.stop(
        ExitCode.interchangeLost,
        `${what} from the interchange at ${this.options.interchange} for ${Math.round(silent.silentMs)} ms ` +
          `(threshold ${this.thresholdMs} ms); presuming it lost, stopping ${this.options.workers} workers and exiting`,
        { stderr: true, lingerMs: 0 },
      )
      return
    }
    if (this.state !== 'starting' && this.liveness.sendDue()) {
      this.send({ t: 'heartbeat', outstanding: this.scheduler.outstanding })
    }
  }

  /** Stops workers, flushes what can still be sent, closes the socket and resolves run(). */
  private async stop(
    code: number,
    why: string,
    how: { stderr?: boolean; lingerMs?: number; failOutstanding?: string; tellInterchange?: boolean } = {},
  ): Promise<void> {
    if (this.state === 'stopping') return
    this.state = 'stopping'
    if (this.ticker) clearInterval(this.ticker)
    this.sampler?.stop()
    if (this.sampler) this.logger.info(`resource sampler: ${this.sampler.samples} samples in ${this.sampler.ticks} ticks`)
    if (code === ExitCode.ok) this.logger.info(why)
    else this.logger.error(why)
    if (how.stderr) process.stderr.write(`tsflow-manager ${this.options.managerId}: ${why}\n`)
    const reason = how.failOutstanding
    this.scheduler.stop(
      reason === undefined
        ? undefined
        : (task, running) =>
            new ShutdownError(`manager ${this.options.managerId} on ${this.host} ${reason}; task #${task.id} (${task.appName}) was ${running ? 'handed to a worker' : 'waiting in its queue'} and did not finish`),
    )
    this.channel.kick()
    try {
      await this.pool.stop(code === ExitCode.ok ? 5000 : 1000)
    } catch (error) {
      this.logger.error('stopping workers failed', error)
      this.pool.killNow()
    }
    await this.channel.idle(1000)
    // A clean stop the interchange did not ask for (a signal, the pool failing) is said last, after
    // the failed tasks' results, so the client learns why this manager left rather than later
    // finding it silent. Not after a drain (`drained` said it) nor when the interchange is gone.
    if (how.tellInterchange && this.channel.everConnected) {
      this.control.push({ t: 'stopping', reason: why })
      this.channel.kick()
      await this.channel.idle(1000)
    }
    this.channel.close(how.lingerMs ?? 1000)
    this.logger.info(`exiting with code ${code}`)
    this.finish(code)
  }

  private abort(code: number, why: string): Promise<number> {
    this.logger.error(why)
    process.stderr.write(`tsflow-manager ${this.options.managerId}: ${why}\n`)
    this.finish(code)
    return this.exited.promise
  }

  private finish(code: number): void {
    process.off('SIGTERM', this.onSignal)
    process.off('SIGINT', this.onSignal)
    this.logger.close()
    this.exited.resolve(code)
  }
}
