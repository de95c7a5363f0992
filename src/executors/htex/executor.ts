import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Dealer } from 'zeromq'
import { ExecutorError, InterchangeLost, SerializationError, ShutdownError, TaskCancelled, VersionMismatch, WalltimeExceedsBlock } from '../../errors.js'
import { decode } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { ACCEPTED, decodeMessage, encodeMessage, stamp, type ClientMessage, type InterchangeToClient, type ManagerInfo, type TaskEnvelope } from '../../protocol/messages.js'
import { splitBatch } from '../../protocol/split.js'
import { fromResultTuple } from '../../protocol/task.js'
import { applyCurve, generateCurveKeys, loadCurveKeys } from '../../transport/curve.js'
import { Outbox, receiveLoop, tcpEndpoint, type WakeSlot } from '../../transport/sockets.js'
import { settledWithin, deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import type { Executor, ExecutorHost, ExecutorTask, TaskOutcome } from '../base.js'
import { Heartbeat } from '../../transport/heartbeat.js'
import { resolveAddress, resolveHtexOptions, workersPerNode, type HighThroughputExecutorOptions, type ResolvedHtexOptions } from './options.js'
import { Provisioning } from './provisioning.js'
import type { BlockManager } from '../../scaling/index.js'
import { spawnInterchange, type RunningInterchange } from './interchange-process.js'
import { FunctionTable, encodeTaskEnvelope } from './encode.js'
import { deliverOutcome } from '../report.js'
import { ExecutorProxying } from '../proxying.js'
import { ExecutorImports } from '../imports.js'
import type { ExecutorMonitor, ResourceSample } from '../../protocol/monitoring.js'

// After the last outstanding task is reported, how long before asking the interchange for a
// status reply that ends the receive holding the event loop (a busy loop re-submits sooner).
const RELEASE_AFTER_MS = 50

/**
 * The high-throughput executor: tasks leave the workflow process in batches over ZeroMQ to an
 * interchange process, which hands them to managers (one per node, started in blocks by a
 * provider) that run them on their workers. Results come back in batches the same way.
 */
export class HighThroughputExecutor implements Executor {
  readonly type = 'htex'
  readonly label: string
  private readonly raw: HighThroughputExecutorOptions
  private options: ResolvedHtexOptions | undefined
  /** the option path of this executor in the config (e.g. `executors[0]`), for errors at start */
  private path: string
  private host: ExecutorHost | undefined
  private logger: Logger | undefined
  private interchange: RunningInterchange | undefined
  /** where the interchange serves Prometheus metrics, once started with `metricsPort` */
  metricsUrl: string | undefined
  private socket: Dealer | undefined
  private outbox: Outbox | undefined
  /** provider, blocks and scaling strategy */
  private provisioning: Provisioning | undefined
  /** tasks sent (or about to be sent) and not yet reported */
  private readonly pending = new Map<number, ExecutorTask>()
  private buffer: ExecutorTask[] = []
  /** the function table: ids the interchange knows each function by (sent once) */
  /** function descriptors by id; each travels once, with the first task that uses it */
  private readonly functions = new FunctionTable()
  private flushScheduled = false
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private heartbeatTimer: NodeJS.Timeout | undefined
  /** when the interchange was last heard from, and when our own heartbeat is due */
  private liveness: Heartbeat<'interchange'> | undefined
  private helloWaiter = deferred<InterchangeToClient>()
  private statusRequest = 0
  private lastHeartbeatTick = Date.now()
  /** set while the receive loop idles (see receive()); wakes it into a waiting receive */
  private readonly idle: WakeSlot = {}
  private releaseTimer: NodeJS.Timeout | undefined
  /** the longest a task may declare: the provider's walltime less the margin, ms; Infinity if unknown */
  private longestTaskMs = Infinity
  /** the `proxy` option's caller side, when on */
  private proxying: ExecutorProxying | undefined
  /** the `proxyImports` option's caller side, when on */
  private imports: ExecutorImports | undefined

  constructor(options: HighThroughputExecutorOptions = {}) {
    this.raw = options
    this.label = typeof options.label === 'string' && options.label ? options.label : 'htex'
    this.path = this.label
  }

  validate(path: string): void {
    this.path = path
    this.options = resolveHtexOptions(this.raw, path)
  }

  get outstanding(): number {
    return this.pending.size
  }

  describe(): Record<string, unknown> {
    const o = this.options ?? resolveHtexOptions(this.raw, this.label)
    return {
      type: this.type,
      label: this.label,
      workerMode: o.workerMode,
      workersPerNode: workersPerNode(o),
      prefetchCapacity: o.prefetchCapacity,
      encrypted: o.encrypted,
      strategy: o.strategy,
      managerSelector: o.managerSelector,
      provider: o.provider.describe(),
      ...(o.proxy ? { proxy: this.proxying?.describe() ?? { threshold: o.proxy.threshold } } : {}),
      ...(o.proxyImports ? { proxyImports: this.imports?.describe() ?? { packages: o.proxyImports.packages } } : {}),
    }
  }

  /** The interchange process's pid while it runs (for monitoring and process-tree checks). */
  get interchangePid(): number | undefined {
    return this.interchange?.child.exitCode === null && this.interchange.child.signalCode === null ? this.interchange.child.pid : undefined
  }

  /** The blocks of this executor's provider and their states (undefined before start). */
  get blocks(): BlockManager | undefined {
    return this.provisioning?.blocks
  }

  /** Managers connected now, with their last reported state. */
  managers(): ManagerInfo[] {
    return this.provisioning?.managers() ?? []
  }

  async start(host: ExecutorHost): Promise<void> {
    if (this.phase !== 'new') throw new ExecutorError(this.label, 'start() was called twice')
    if (!this.options) this.validate(this.label)
    const options = this.options!
    options.address = await resolveAddress(options.address, `${this.path}.address`)
    if (options.proxy) this.proxying = new ExecutorProxying(options.proxy)
    if (options.proxyImports) this.imports = new ExecutorImports(options.proxyImports, this.label, host.logger)
    this.host = host
    this.logger = host.logger
    mkdirSync(host.runDir, { recursive: true })
    const curveDir = options.encrypted ? join(host.runDir, 'curve') : undefined
    if (curveDir) generateCurveKeys(curveDir)
    this.interchange = await spawnInterchange({
      label: this.label,
      spec: {
        clientAddress: '127.0.0.1',
        workerAddress: options.address,
        heartbeatPeriodMs: options.heartbeatPeriodMs,
        heartbeatThresholdMs: options.heartbeatThresholdMs,
        logDir: host.runDir,
        logLevel: options.logLevel ?? host.logger.level,
        managerSelector: options.managerSelector,
        walltimeMarginMs: options.walltimeMarginMs,
        ...(curveDir ? { curveDir } : {}),
        ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
        ...(options.metricsAddress !== undefined ? { metricsAddress: options.metricsAddress } : {}),
      },
    })
    if (this.interchange.metricsPort !== undefined) {
      const host = options.metricsAddress ?? '127.0.0.1'
      this.metricsUrl = `http://${host.includes(':') ? `[${host}]` : host}:${this.interchange.metricsPort}/metrics`
      this.logger.info(`executor ${this.label}: interchange Prometheus metrics at ${this.metricsUrl}`)
    }
    const walltime = options.provider.walltimeSeconds
    if (walltime !== undefined) this.longestTaskMs = walltime * 1000 - options.walltimeMarginMs
    const interchange = this.interchange
    // If the workflow process ends without cleanup, the interchange stops and tells its managers
    // to stop. Its parent pipe reaching end-of-file does the same; this is the first word.
    const killOnExit = () => interchange.child.kill('SIGTERM')
    process.once('exit', killOnExit)
    void interchange.exited.then((how) => {
      process.removeListener('exit', killOnExit)
      this.interchangeEnded(how)
    })
    try {
      await this.connect(curveDir)
      await this.startBlocks(options, host)
    } catch (error) {
      await this.shutdown(0)
      throw error
    }
    this.phase = 'running'
  }

  private async connect(curveDir: string | undefined): Promise<void> {
    const socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 })
    if (curveDir) applyCurve(socket, loadCurveKeys(curveDir, 'client'))
    socket.connect(tcpEndpoint('127.0.0.1', this.interchange!.clientPort))
    this.socket = socket
    this.outbox = new Outbox(socket, (error) => this.logger?.error('send to the interchange failed', error))
    void this.receive(socket)
    this.send({ t: 'client_hello', clientId: `${this.label}-${process.pid}`, ...stamp() })
    const timeout = setTimeout(() => this.helloWaiter.reject(new ExecutorError(this.label, 'the interchange did not answer the hello within 10 s')), 10_000)
    try {
      const hello = await this.helloWaiter.promise
      if (hello.t === 'refused') throw new ExecutorError(this.label, `the interchange refused this client: ${hello.reason}`)
      if (hello.t === 'ix_hello' && (hello.proto !== stamp().proto || hello.version !== stamp().version)) {
        throw new VersionMismatch('the interchange', { protocol: hello.proto, version: hello.version }, { protocol: stamp().proto, version: stamp().version })
      }
    } finally {
      clearTimeout(timeout)
    }
    this.liveness = new Heartbeat({ periodMs: this.options!.heartbeatPeriodMs, thresholdMs: this.options!.heartbeatThresholdMs })
    this.liveness.beat('interchange')
    this.lastHeartbeatTick = Date.now()
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.liveness.checkIntervalMs)
    this.heartbeatTimer.unref()
  }

  private async startBlocks(options: ResolvedHtexOptions, host: ExecutorHost): Promise<void> {
    this.provisioning = new Provisioning(options, {
      what: `executor ${this.label}`,
      addressOption: 'executor option address',
      outstanding: () => this.pending.size + this.buffer.length,
      running: () => this.phase === 'running',
      drain: (blockIds) => this.send({ t: 'drain', blockIds }),
      blockEnded: (blockId, reason) => this.send({ t: 'block_ended', blockId, reason }),
      failWaiting: (error) => {
        for (const task of [...this.pending.values()]) this.report(task.id, task.try, { ok: false, error })
        this.buffer = []
      },
    })
    await this.provisioning.start({
      workerPort: this.interchange!.workerPort,
      runDir: host.runDir,
      logLevel: host.logger.level,
      logger: host.logger,
      ...(host.monitor ? { monitor: { executor: this.label, sink: host.monitor } } : {}),
      // 0 when the run is not monitored: managers then start no sampler at all.
      resourceIntervalMs: host.monitor?.resourceIntervalMs ?? 0,
    })
  }

  submit(task: ExecutorTask): void {
    this.pending.set(task.id, task)
    this.idle.wake?.()
    if (this.phase !== 'running') {
      this.report(task.id, task.try, { ok: false, error: new ShutdownError(`executor ${this.label} is not running; task #${task.id} was not sent`) })
      return
    }
    if (task.walltime !== undefined && task.walltime * 1000 > this.longestTaskMs) {
      // No block could ever run it: waiting for one would hang the task forever.
      const o = this.options!
      this.report(task.id, task.try, {
        ok: false,
        error: new WalltimeExceedsBlock(task.id, task.appName, task.walltime, o.provider.walltimeSeconds!, `executor ${this.label} (provider ${o.provider.label})`, o.walltimeMarginMs),
      })
      return
    }
    // With proxyImports, the first task of a function waits for its packages to be shipped.
    if (this.imports) this.imports.submit(task, (shipped) => this.shipped(shipped), (error) => this.report(task.id, task.try, { ok: false, error }))
    else this.prepared(task)
  }

  private shipped(task: ExecutorTask): void {
    // Reported meanwhile (cancelled or shut down while its packages were being shipped): nothing to send.
    if (this.phase === 'running' && this.pending.get(task.id)?.try === task.try) this.prepared(task)
  }

  private prepared(task: ExecutorTask): void {
    // With the proxy option, large arguments are stored first (the task is buffered once they are).
    if (this.proxying) this.proxying.submit(task, (ready) => this.buffered(ready), (error) => this.report(task.id, task.try, { ok: false, error }))
    else this.buffered(task)
  }

  private buffered(task: ExecutorTask): void {
    // Reported meanwhile (shut down while its arguments were being stored): nothing to send.
    if (this.phase !== 'running') return
    this.buffer.push(task)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // Tasks submitted in one turn of the event loop travel in one message.
      queueMicrotask(() => this.flush())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    const tasks = this.buffer
    this.buffer = []
    const envelopes: TaskEnvelope[] = []
    for (const task of tasks) {
      if (!this.pending.has(task.id)) continue // cancelled while buffered
      let envelope: TaskEnvelope
      try {
        envelope = encodeTaskEnvelope(task, this.functions.idOf(task.fn))
      } catch (error) {
        this.report(task.id, task.try, {
          ok: false,
          error: new SerializationError(`the arguments of task #${task.id} (${task.appName}) cannot be sent to a worker: ${(error as Error).message}`, { cause: error }),
        })
        continue
      }
      envelopes.push(envelope)
    }
    for (const part of splitBatch(envelopes, (envelope) => envelope.payload.byteLength, this.options!.maxBatchSize)) {
      const message: ClientMessage = { t: 'submit', tasks: part }
      // A function goes to the interchange with the first message whose tasks use it.
      const fns = this.functions.takeUnsent(part)
      if (fns) message.fns = fns
      this.send(message)
    }
  }

  cancel(taskId: number): boolean {
    const task = this.pending.get(taskId)
    if (!task) return false
    if (this.imports?.drop(taskId) || this.proxying?.drop(taskId)) {
      this.report(task.id, task.try, { ok: false, error: new TaskCancelled(task.id, task.appName) })
      return true
    }
    const buffered = this.buffer.findIndex((t) => t.id === taskId)
    if (buffered >= 0) {
      this.buffer.splice(buffered, 1)
      this.report(task.id, task.try, { ok: false, error: new TaskCancelled(task.id, task.appName) })
      return true
    }
    // Queued in the interchange: it answers with a TaskCancelled failure. Running: best effort.
    this.send({ t: 'cancel', ids: [taskId] })
    return false
  }

  private send(message: ClientMessage): void {
    if (!this.outbox || !this.socket || this.socket.closed) return
    this.outbox.send(encodeMessage(message))
  }

  /**
   * Whether a waiting receive should hold the event loop: while tasks are outstanding (their
   * results must arrive), while starting and while stopping. Otherwise the process may end.
   */
  private holdsLoop(): boolean {
    return this.pending.size > 0 || this.phase !== 'running'
  }

  /**
   * The receive loop (transport/sockets.ts receiveLoop): it ends only when the socket closes; an
   * error while receiving or handling one message is logged and the loop goes on. While nothing is
   * outstanding it idles without holding the event loop, and submit() wakes it.
   */
  private receive(socket: Dealer): Promise<void> {
    return receiveLoop(socket, {
      holdsLoop: () => this.holdsLoop(),
      idle: this.idle,
      // Logged once per 1000 failures: a failure that repeats must not flood the log.
      onReceiveError: (error, failures) => failures % 1000 === 1 && this.logger?.error(`receiving from the interchange failed (${failures} times); receiving again`, error),
      onFrames: (frames) => {
        this.liveness?.beat('interchange')
        let message: InterchangeToClient
        try {
          message = decodeMessage<InterchangeToClient>(frames, ACCEPTED.clientFromInterchange)
        } catch (error) {
          this.logger?.warn(`dropped a bad message from the interchange: ${(error as Error).message}`)
          return
        }
        try {
          this.handle(message)
        } catch (error) {
          // Outcomes are delivered one by one (deliverOutcome); this is for anything else.
          this.logger?.error(`handling a '${message.t}' message from the interchange failed; receiving goes on`, error)
        }
      },
    })
  }

  /** The last outstanding task was reported: let a receive that holds the event loop end soon. */
  private scheduleRelease(): void {
    if (this.releaseTimer || this.phase !== 'running') return
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined
      // Any reply ends the waiting receive; the loop then idles without holding the event loop.
      if (this.pending.size === 0) this.send({ t: 'status', req: ++this.statusRequest })
    }, RELEASE_AFTER_MS)
    this.releaseTimer.unref()
  }

  private handle(message: InterchangeToClient): void {
    switch (message.t) {
      case 'ix_hello':
      case 'refused':
        this.helloWaiter.resolve(message)
        return
      case 'results':
        if (message.dispatched) this.markRunning(message.dispatched.ids, message.dispatched.tries)
        for (const envelope of message.results) {
          let outcome: TaskOutcome
          let id = envelope.id
          let tryNumber = envelope.try
          try {
            const result = fromResultTuple(decode(envelope.payload))
            id = result.id
            tryNumber = result.try
            outcome = result.ok ? { ok: true, value: result.value } : { ok: false, error: decodeError(result.error!) }
          } catch (error) {
            outcome = { ok: false, error: error as Error }
          }
          // With the proxy option, a large result arrives as a proxy: fetched (and evicted) first.
          // (A stale try's stored result is evicted unread; its arguments belong to the current try.)
          const fetched = !this.proxying ? outcome : this.pending.get(id)?.try === tryNumber ? this.proxying.outcome(id, outcome) : this.proxying.discard(outcome)
          if (fetched instanceof Promise) void fetched.then((settled) => this.report(id, tryNumber, settled))
          else this.report(id, tryNumber, fetched)
        }
        return
      case 'failed':
        for (const failure of message.failures) {
          let error: Error
          try {
            error = decodeError(failure.error)
          } catch (decodeFailure) {
            error = new ExecutorError(this.label, `task #${failure.id} failed with an error that could not be decoded: ${(decodeFailure as Error).message}`)
          }
          this.report(failure.id, failure.try, { ok: false, error })
        }
        return
      case 'manager':
        this.provisioning?.managerEvent(message.event, message.info, message.reason)
        reportManagerEvent(this.host?.monitor, this.label, message)
        return
      case 'resources':
        this.resources(message)
        return
      case 'dispatched':
        this.markRunning(message.ids, message.tries)
        return
      case 'status_reply':
        this.provisioning?.statusReply(message.managers)
        return
      case 'heartbeat':
        return
    }
  }

  /**
   * A manager's samples of one interval, for the tries still outstanding here (a sample can
   * arrive after its task's result). Task ids on the wire are the kernel's, as for results.
   */
  private resources(message: Extract<InterchangeToClient, { t: 'resources' }>): void {
    const monitor = this.host?.monitor
    if (!monitor) return
    const samples: ResourceSample[] = []
    for (const [id, tryNumber, cpuUserS, cpuSystemS, rssBytes, readBytes, writeBytes] of message.samples) {
      if (this.pending.get(id)?.try !== tryNumber) continue
      samples.push({ taskId: id, tryNumber, managerId: message.managerId, hostname: message.host, timeMs: message.timeMs, cpuUserS, cpuSystemS, rssBytes, readBytes, writeBytes })
    }
    if (samples.length > 0) monitor.resources(this.label, samples)
  }

  private markRunning(ids: number[], tries: number[]): void {
    for (let i = 0; i < ids.length; i++) this.host?.taskRunning(ids[i]!, tries[i]!)
  }

  private heartbeat(): void {
    const liveness = this.liveness!
    const now = Date.now()
    // A tick that comes late means this event loop was busy (a long synchronous loop in the
    // workflow): nothing could be received meanwhile, so the silence says nothing about the
    // interchange. Its death is seen through its exit; this check is for a hung one.
    if (now - this.lastHeartbeatTick > 2 * liveness.checkIntervalMs) liveness.beat('interchange')
    this.lastHeartbeatTick = now
    if (liveness.sendDue()) {
      this.send({ t: 'heartbeat' })
      this.send({ t: 'status', req: ++this.statusRequest })
    }
    const silent = liveness.expired()[0]
    if (silent && this.phase === 'running') {
      this.logger?.error(`the interchange has been silent for ${Math.round(silent.silentMs)} ms; stopping it`)
      this.interchange?.child.kill('SIGKILL')
    }
  }

  private interchangeEnded(how: string): void {
    if (this.phase === 'stopping' || this.phase === 'stopped') return
    // tsflow stops the interchange with SIGTERM; a SIGKILL nobody here sent is most often the
    // kernel's out-of-memory killer, which large task arguments (they pass through it) can provoke.
    const oom = /SIGKILL/.test(how)
      ? ' (tsflow never sends it SIGKILL: most likely the kernel\'s out-of-memory killer, see `dmesg`; large task arguments and results pass through the interchange, so send big data by proxy (the executor option `proxy`), through files or a DDict)'
      : ''
    const error = new InterchangeLost(
      `the interchange of executor ${this.label} ${how}${oom} while tasks were outstanding; see ${this.host?.runDir}/interchange.log`,
    )
    this.logger?.error(error.message)
    this.phase = 'stopped'
    for (const task of [...this.pending.values()]) this.report(task.id, task.try, { ok: false, error })
    this.buffer = []
    void this.provisioning?.stopBlocks()
    this.socket?.close()
  }

  private report(taskId: number, tryNumber: number, outcome: TaskOutcome): void {
    const task = this.pending.get(taskId)
    if (!task || task.try !== tryNumber) return
    this.pending.delete(taskId)
    this.proxying?.settled(taskId)
    if (this.pending.size === 0) this.scheduleRelease()
    if (this.host) deliverOutcome(this.host, this.label, task, outcome)
  }

  async shutdown(deadlineMs: number): Promise<void> {
    if (this.phase === 'stopping') return
    const wasRunning = this.phase === 'running'
    this.phase = 'stopping'
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    await this.provisioning?.stopScaling()
    if (wasRunning && this.pending.size > 0) {
      const idle = deferred<void>()
      const check = setInterval(() => this.pending.size === 0 && idle.resolve(), 20)
      await settledWithin(idle.promise, deadlineMs)
      clearInterval(check)
    }
    // The interchange tells its managers to stop, then exits.
    this.send({ t: 'shutdown' })
    if (this.interchange) {
      const ended = await settledWithin(this.interchange.exited, 3000)
      if (!ended) this.interchange.child.kill('SIGKILL')
    }
    if (this.provisioning) await this.provisioning.shutdown()
    else await this.options?.provider.shutdown()
    this.socket?.close()
    for (const task of [...this.pending.values()]) {
      this.report(task.id, task.try, { ok: false, error: new ShutdownError(`executor ${this.label} shut down while task #${task.id} was outstanding`) })
    }
    // Evicts what was put for tasks and closes the store if the executor built it.
    await this.proxying?.close(5000)
    this.imports?.dropAll()
    await this.imports?.close(5000)
    this.phase = 'stopped'
    this.logger?.info('shut down')
  }
}

/**
 * A manager event of the interchange, as the kernel's monitoring sees it: a drain's end and any
 * other clean stop are `stopped`; a refused registration never made a manager, so it is only logged.
 */
function reportManagerEvent(monitor: ExecutorMonitor | undefined, executor: string, message: Extract<InterchangeToClient, { t: 'manager' }>): void {
  if (!monitor || message.event === 'refused') return
  const { info } = message
  monitor.manager({
    executor,
    managerId: info.managerId,
    hostname: info.host,
    blockId: info.blockId,
    workers: info.workers,
    event: message.event === 'drained' ? 'stopped' : message.event,
    ...(message.reason !== undefined ? { reason: message.reason } : {}),
    timeMs: Date.now(),
  })
}
