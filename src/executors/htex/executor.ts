import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Dealer } from 'zeromq'
import { ExecutorError, InterchangeLost, ProviderError, SerializationError, ShutdownError, TaskCancelled, VersionMismatch } from '../../errors.js'
import { encode, decode } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { ACCEPTED, decodeMessage, encodeMessage, stamp, type ClientMessage, type FunctionEntry, type InterchangeToClient, type ManagerInfo, type TaskEnvelope } from '../../protocol/messages.js'
import { splitBatch } from '../../protocol/split.js'
import { fromResultTuple, taskArgsWire, type ResultWire } from '../../protocol/task.js'
import type { FunctionDescriptor } from '../../serialize/function-ref.js'
import { workerExecArgv } from '../../runtime/exec-argv.js'
import { applyCurve, generateCurveKeys, loadCurveKeys } from '../../transport/curve.js'
import { Outbox, tcpEndpoint } from '../../transport/sockets.js'
import { shellQuote } from '../../launchers/shell.js'
import { BlockManager, Strategy, type BlockActivity, type BlockInfo } from '../../scaling/index.js'
import { settledWithin, deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import type { Executor, ExecutorHost, ExecutorTask, TaskOutcome } from '../base.js'
import { resolveHtexOptions, workersPerNode, type HighThroughputExecutorOptions, type ResolvedHtexOptions } from './options.js'
import { spawnInterchange, type RunningInterchange } from './interchange-process.js'

const MANAGER_BIN = fileURLToPath(new URL('../../bin/manager.js', import.meta.url))
// Blocks that fail before any manager of theirs connects, in a row, before waiting tasks are
// failed with the blocks' own explanation instead of waiting forever.
const BLOCK_FAILURES_BEFORE_GIVING_UP = 3

interface BlockManagers {
  managers: Map<string, ManagerInfo>
  idleSinceMs: number | undefined
}

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
  private host: ExecutorHost | undefined
  private logger: Logger | undefined
  private interchange: RunningInterchange | undefined
  private socket: Dealer | undefined
  private outbox: Outbox | undefined
  private blocks: BlockManager | undefined
  private strategy: Strategy | undefined
  /** tasks sent (or about to be sent) and not yet reported */
  private readonly pending = new Map<number, ExecutorTask>()
  private buffer: ExecutorTask[] = []
  /** the function table: ids the interchange knows each function by (sent once) */
  private readonly fnIdsByKey = new Map<string, number>()
  private readonly fnIdsByObject = new WeakMap<FunctionDescriptor, number>()
  private readonly fnUnsent = new Map<number, Uint8Array>()
  private flushScheduled = false
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private readonly blockManagers = new Map<string, BlockManagers>()
  private consecutiveBlockFailures = 0
  private heartbeatTimer: NodeJS.Timeout | undefined
  private lastHeardFromInterchange = Date.now()
  private helloWaiter = deferred<InterchangeToClient>()
  private statusRequest = 0

  constructor(options: HighThroughputExecutorOptions = {}) {
    this.raw = options
    this.label = typeof options.label === 'string' && options.label ? options.label : 'htex'
  }

  validate(path: string): void {
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
      provider: o.provider.describe(),
    }
  }

  /** Managers connected now, with their last reported state. */
  managers(): ManagerInfo[] {
    return [...this.blockManagers.values()].flatMap((block) => [...block.managers.values()])
  }

  async start(host: ExecutorHost): Promise<void> {
    if (this.phase !== 'new') throw new ExecutorError(this.label, 'start() was called twice')
    if (!this.options) this.validate(this.label)
    const options = this.options!
    this.host = host
    this.logger = host.logger
    mkdirSync(host.runDir, { recursive: true })
    const curveDir = options.encrypted ? join(host.runDir, 'curve') : undefined
    if (curveDir) generateCurveKeys(curveDir)
    this.interchange = await spawnInterchange({
      label: this.label,
      workerAddress: options.address,
      heartbeatPeriodMs: options.heartbeatPeriodMs,
      heartbeatThresholdMs: options.heartbeatThresholdMs,
      logDir: host.runDir,
      logLevel: options.logLevel ?? (host.logger.level as string),
      ...(curveDir ? { curveDir } : {}),
    })
    const interchange = this.interchange
    // If the workflow process ends without cleanup, take the interchange down with it.
    const killOnExit = () => interchange.child.kill('SIGKILL')
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
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options!.heartbeatPeriodMs)
    this.heartbeatTimer.unref()
  }

  private async startBlocks(options: ResolvedHtexOptions, host: ExecutorHost): Promise<void> {
    await options.provider.init({ scriptDir: join(host.runDir, 'submit_scripts'), logger: host.logger.child('provider') })
    this.blocks = new BlockManager({
      provider: options.provider,
      command: (blockId) => this.managerCommand(blockId),
      activity: (blockId) => this.activity(blockId),
      drain: (blockIds) => this.send({ t: 'drain', blockIds }),
      onBlockEnded: (block) => this.blockEnded(block),
      logger: host.logger.child('blocks'),
    })
    const slotsPerBlock = workersPerNode(options) * options.provider.nodesPerBlock
    this.strategy = new Strategy({
      strategy: options.strategy,
      blocks: this.blocks,
      workload: () => ({ outstandingTasks: this.pending.size + this.buffer.length, slotsPerBlock }),
      periodMs: options.strategyPeriodMs,
      maxIdleTimeMs: options.maxIdleTimeMs,
      logger: host.logger.child('strategy'),
      onError: (error) => host.logger.error('scaling failed', error),
    })
    // Starts initBlocks now, not on the first timer tick.
    await this.strategy.start()
  }

  /** The command each node of a block runs: the manager, pointed at this interchange. */
  private managerCommand(blockId: string): string {
    const o = this.options!
    const words = [process.execPath, ...workerExecArgv(), MANAGER_BIN]
    const flags: string[] = [
      '--interchange', tcpEndpoint(o.address === '0.0.0.0' ? '127.0.0.1' : o.address, this.interchange!.workerPort),
      '--block-id', blockId,
      '--mode', o.workerMode,
      '--cores-per-worker', String(o.coresPerWorker),
      '--prefetch', String(o.prefetchCapacity),
      '--affinity', o.cpuAffinity,
      '--heartbeat-period', String(o.heartbeatPeriodMs),
      '--heartbeat-threshold', String(o.heartbeatThresholdMs),
      '--log-dir', this.host!.runDir,
      '--log-level', o.logLevel ?? (this.host!.logger.level as string),
    ]
    if (o.maxWorkersPerNode !== undefined) flags.push('--max-workers-per-node', String(o.maxWorkersPerNode))
    if (o.memPerWorker !== undefined) flags.push('--mem-per-worker', String(o.memPerWorker))
    if (o.accelerators.length > 0) flags.push('--accelerators', o.accelerators.join(','), '--accelerator-env', o.acceleratorEnv)
    if (o.encrypted) flags.push('--curve-dir', join(this.host!.runDir, 'curve'))
    const command = [...words, ...flags].map((word) => shellQuote(word)).join(' ')
    return o.managerLaunchPrefix ? `${o.managerLaunchPrefix} ${command}` : command
  }

  submit(task: ExecutorTask): void {
    this.pending.set(task.id, task)
    if (this.phase !== 'running') {
      this.report(task.id, task.try, { ok: false, error: new ShutdownError(`executor ${this.label} is not running; task #${task.id} was not sent`) })
      return
    }
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
      let payload: Uint8Array
      let f: number
      try {
        f = this.functionId(task.fn)
        payload = encode(taskArgsWire(task.args, task.ctx))
      } catch (error) {
        this.report(task.id, task.try, {
          ok: false,
          error: new SerializationError(`the arguments of task #${task.id} (${task.appName}) cannot be sent to a worker: ${(error as Error).message}`, { cause: error }),
        })
        continue
      }
      const envelope: TaskEnvelope = { id: task.id, try: task.try, f, k: task.kind, payload }
      if (task.walltime !== undefined) envelope.wt = task.walltime
      if (task.priority !== 0) envelope.pri = task.priority
      if (task.resources) envelope.res = task.resources
      envelopes.push(envelope)
    }
    for (const part of splitBatch(envelopes, (envelope) => envelope.payload.byteLength, this.options!.maxBatchSize)) {
      const message: ClientMessage = { t: 'submit', tasks: part }
      // A function goes to the interchange with the first message whose tasks use it.
      if (this.fnUnsent.size > 0) {
        const fns: FunctionEntry[] = []
        for (const envelope of part) {
          const bytes = this.fnUnsent.get(envelope.f)
          if (bytes) {
            fns.push([envelope.f, bytes])
            this.fnUnsent.delete(envelope.f)
          }
        }
        if (fns.length > 0) message.fns = fns
      }
      this.send(message)
    }
  }

  /**
   * The function table id of a descriptor. Descriptors are the same object for every call of an
   * app, so the lookup is one WeakMap hit; a descriptor new to this executor is encoded once and
   * waits in `fnUnsent` for the first task that uses it to be sent.
   */
  private functionId(fn: FunctionDescriptor): number {
    const known = this.fnIdsByObject.get(fn)
    if (known !== undefined) return known
    const key = fn.t === 'ref' ? `ref\0${fn.module}\0${fn.key}\0${fn.name}` : `src\0${fn.name}\0${fn.source}`
    let id = this.fnIdsByKey.get(key)
    if (id === undefined) {
      id = this.fnIdsByKey.size
      this.fnUnsent.set(id, encode(fn))
      this.fnIdsByKey.set(key, id)
    }
    this.fnIdsByObject.set(fn, id)
    return id
  }

  cancel(taskId: number): boolean {
    const task = this.pending.get(taskId)
    if (!task) return false
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

  private async receive(socket: Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        let message: InterchangeToClient
        try {
          message = decodeMessage<InterchangeToClient>(frames, ACCEPTED.clientFromInterchange)
        } catch (error) {
          this.logger?.warn(`dropped a bad message from the interchange: ${(error as Error).message}`)
          continue
        }
        this.lastHeardFromInterchange = Date.now()
        this.handle(message)
      }
    } catch (error) {
      if (!socket.closed) this.logger?.error('receiving from the interchange failed', error)
    }
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
          let result: ResultWire
          try {
            result = fromResultTuple(decode(envelope.payload))
          } catch (error) {
            this.report(envelope.id, envelope.try, { ok: false, error: error as Error })
            continue
          }
          this.report(result.id, result.try, result.ok ? { ok: true, value: result.value } : { ok: false, error: decodeError(result.error!) })
        }
        return
      case 'failed':
        for (const failure of message.failures) this.report(failure.id, failure.try, { ok: false, error: decodeError(failure.error) })
        return
      case 'manager':
        this.managerEvent(message.event, message.info, message.reason)
        return
      case 'dispatched':
        this.markRunning(message.ids, message.tries)
        return
      case 'status_reply':
        this.statusReply(message.managers)
        return
      case 'heartbeat':
        return
    }
  }

  private markRunning(ids: number[], tries: number[]): void {
    for (let i = 0; i < ids.length; i++) this.host?.taskRunning(ids[i]!, tries[i]!)
  }

  private managerEvent(event: 'registered' | 'lost' | 'drained' | 'refused', info: ManagerInfo, reason?: string): void {
    const block = this.blockManagers.get(info.blockId) ?? { managers: new Map<string, ManagerInfo>(), idleSinceMs: Date.now() }
    this.blockManagers.set(info.blockId, block)
    if (event === 'registered') {
      block.managers.set(info.managerId, info)
      this.consecutiveBlockFailures = 0
      this.logger?.info(`manager ${info.managerId} on ${info.host} (block ${info.blockId}, ${info.workers} workers) registered`)
    } else {
      block.managers.delete(info.managerId)
      const log = event === 'lost' ? 'warn' : 'info'
      this.logger?.[log](`manager ${info.managerId} on ${info.host} (block ${info.blockId}) ${event}${reason ? `: ${reason}` : ''}`)
    }
  }

  private statusReply(managers: ManagerInfo[]): void {
    const now = Date.now()
    const busy = new Map<string, boolean>()
    for (const info of managers) {
      const block = this.blockManagers.get(info.blockId) ?? { managers: new Map<string, ManagerInfo>(), idleSinceMs: now }
      this.blockManagers.set(info.blockId, block)
      block.managers.set(info.managerId, info)
      busy.set(info.blockId, (busy.get(info.blockId) ?? false) || info.outstanding > 0)
    }
    for (const [blockId, block] of this.blockManagers) {
      if (busy.get(blockId)) block.idleSinceMs = undefined
      else block.idleSinceMs ??= now
    }
  }

  private activity(blockId: string): BlockActivity | undefined {
    const block = this.blockManagers.get(blockId)
    if (!block) return { connectedManagers: 0 }
    const activity: BlockActivity = { connectedManagers: block.managers.size }
    if (block.idleSinceMs !== undefined && this.pending.size === 0) activity.idleSinceMs = block.idleSinceMs
    return activity
  }

  private blockEnded(block: BlockInfo): void {
    this.blockManagers.delete(block.blockId)
    if (block.state !== 'failed' || this.phase !== 'running') return
    this.logger?.warn(`block ${block.blockId} failed: ${block.message ?? 'no details'}`)
    if (this.managers().length > 0) return
    if (++this.consecutiveBlockFailures < BLOCK_FAILURES_BEFORE_GIVING_UP) return
    // No manager could start: waiting tasks would never run. Fail them with the reason.
    const error = new ProviderError(
      this.options!.provider.label,
      `${this.consecutiveBlockFailures} blocks in a row failed before any manager connected; last: ${block.message ?? 'no details'}`,
    )
    this.logger?.error(error.message)
    for (const task of [...this.pending.values()]) this.report(task.id, task.try, { ok: false, error })
    this.buffer = []
  }

  private heartbeat(): void {
    this.send({ t: 'heartbeat' })
    this.send({ t: 'status', req: ++this.statusRequest })
    const silentFor = Date.now() - this.lastHeardFromInterchange
    if (silentFor > this.options!.heartbeatThresholdMs && this.phase === 'running') {
      this.logger?.error(`the interchange has been silent for ${silentFor} ms; stopping it`)
      this.interchange?.child.kill('SIGKILL')
    }
  }

  private interchangeEnded(how: string): void {
    if (this.phase === 'stopping' || this.phase === 'stopped') return
    const error = new InterchangeLost(
      `the interchange of executor ${this.label} ${how} while tasks were outstanding; see ${this.host?.runDir}/interchange.log`,
    )
    this.logger?.error(error.message)
    this.phase = 'stopped'
    for (const task of [...this.pending.values()]) this.report(task.id, task.try, { ok: false, error })
    this.buffer = []
    void this.strategy?.stop()
    void this.blocks?.shutdown()
    this.socket?.close()
  }

  private report(taskId: number, tryNumber: number, outcome: TaskOutcome): void {
    const task = this.pending.get(taskId)
    if (!task || task.try !== tryNumber) return
    this.pending.delete(taskId)
    this.host?.taskDone(taskId, tryNumber, outcome)
  }

  async shutdown(deadlineMs: number): Promise<void> {
    if (this.phase === 'stopping') return
    const wasRunning = this.phase === 'running'
    this.phase = 'stopping'
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer)
    await this.strategy?.stop()
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
    await this.blocks?.shutdown()
    await this.options?.provider.shutdown()
    this.socket?.close()
    for (const task of [...this.pending.values()]) {
      this.report(task.id, task.try, { ok: false, error: new ShutdownError(`executor ${this.label} shut down while task #${task.id} was outstanding`) })
    }
    this.phase = 'stopped'
    this.logger?.info('shut down')
  }
}
