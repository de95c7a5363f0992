import { BlockWalltimeReached, ManagerLost, ProtocolError, TaskCancelled } from '../errors.js'
import { checkVersion } from '../protocol/messages.js'
import { DEFAULT_WALLTIME_MARGIN_MS } from '../protocol/interchange.js'
import { splitBatch } from '../protocol/split.js'
import type {
  ClientMessage,
  FunctionEntry,
  InterchangeToClient,
  InterchangeToManager,
  ManagerInfo,
  ManagerMessage,
  ResultEnvelope,
  TaskEnvelope,
} from '../protocol/messages.js'
import { encodeError, type EncodedError } from '../serialize/errors.js'
import { Heartbeat, type Clock } from '../transport/heartbeat.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { LogLimiter } from './log-limiter.js'
import type { InterchangeMetrics } from './metrics.js'
import { ManagerRegistry, type ManagerRecord } from './managers.js'
import { SpreadSelector, TaskQueue, createManagerSelector, dispatch, type ManagerSelector, type ManagerSelectorName } from './scheduler.js'

/**
 * The interchange's state machine, free of sockets and timers: messages in, messages out through
 * `CoreOutput`. The socket layer (interchange.ts) feeds it every message that arrived during an
 * event-loop turn and then calls `flush()` once, which is where batching happens: one `tasks`
 * message per ready manager, one `results` and one `failed` message to the client.
 *
 * A benchmark can drive this class directly with thousands of simulated managers to measure
 * dispatch cost without any I/O.
 */
export interface CoreOutput {
  toClient(message: InterchangeToClient): void
  toManager(key: string, message: InterchangeToManager): void
}

export interface CoreOptions {
  heartbeatPeriodMs: number
  heartbeatThresholdMs: number
  clock?: Clock
  logger?: Logger
  /** called when the client sends `shutdown` */
  onShutdownRequest?: (reason: string) => void
  /** how the next manager is chosen (default 'packed': the oldest blocks first, so newer ones can go idle) */
  managerSelector?: ManagerSelectorName | ManagerSelector
  /**
   * A task must end this long before its block's walltime (default DEFAULT_WALLTIME_MARGIN_MS);
   * a manager lost this close to (or after) its block's end was taken by the walltime.
   */
  walltimeMarginMs?: number
}

export interface CoreStats {
  tasksReceived: number
  tasksDispatched: number
  taskMessages: number
  resultsForwarded: number
  resultMessages: number
  failuresReported: number
  managersLost: number
}

type Failure = { id: number; try: number; error: EncodedError }

/** How many departed managers to remember, so a late message from one is explained in the log. */
const GONE_MEMORY = 10_000

export class InterchangeCore {
  readonly queue = new TaskQueue()
  readonly managers = new ManagerRegistry()
  /** liveness of managers, keyed by routing key */
  readonly heartbeat: Heartbeat<string>
  readonly stats: CoreStats = {
    tasksReceived: 0,
    tasksDispatched: 0,
    taskMessages: 0,
    resultsForwarded: 0,
    resultMessages: 0,
    failuresReported: 0,
    managersLost: 0,
  }
  private readonly log: Logger
  private readonly limiter: LogLimiter
  private readonly gone = new Map<string, string>()
  private results: ResultEnvelope[] = []
  /** tasks dispatched since the client was last told; sent with results, or by flushDispatched() */
  private dispatchedNotice: { ids: number[]; tries: number[] } = { ids: [], tries: [] }
  private failures: Failure[] = []
  /** the client's function table: id -> encoded descriptor, kept as bytes and never decoded */
  private readonly fns = new Map<number, Uint8Array>()
  readonly selector: ManagerSelector
  readonly walltimeMarginMs: number
  /** Prometheus metrics, when served (interchange.ts sets it); off, each hook is one check */
  metrics: InterchangeMetrics | undefined

  constructor(
    private readonly options: CoreOptions,
    private readonly out: CoreOutput,
  ) {
    this.heartbeat = new Heartbeat({
      periodMs: options.heartbeatPeriodMs,
      thresholdMs: options.heartbeatThresholdMs,
      clock: options.clock,
    })
    this.log = options.logger ?? silentLogger
    this.limiter = new LogLimiter(this.log, { clock: this.heartbeat.clock })
    const selector = options.managerSelector
    this.selector = typeof selector === 'object' ? selector : createManagerSelector(selector)
    const ranked = this.selector
    if (!(ranked instanceof SpreadSelector)) this.managers.rank = (record) => ranked.rank(record)
    this.walltimeMarginMs = options.walltimeMarginMs ?? DEFAULT_WALLTIME_MARGIN_MS
  }

  /** Results and failures collected since the last flush. */
  get pendingOutput(): number {
    return this.results.length + this.failures.length
  }

  // ---- client side ----

  /** A message from the accepted client (hello and liveness are the socket layer's business). */
  onClientMessage(message: ClientMessage): void {
    switch (message.t) {
      case 'submit':
        // A copy: the received bytes may be a view into the whole message, which would stay alive.
        if (message.fns) for (const [id, bytes] of message.fns) this.fns.set(id, new Uint8Array(bytes))
        for (const task of message.tasks) {
          if (this.fns.has(task.f)) this.queue.push(task)
          else this.failures.push({ id: task.id, try: task.try, error: encodeError(new ProtocolError(`task #${task.id} names function ${task.f}, which the client never sent`)) })
        }
        this.stats.tasksReceived += message.tasks.length
        this.metrics?.submittedTasks(message.tasks.length)
        if (this.log.enabled('debug')) this.log.debug(`client submitted ${message.tasks.length} tasks; ${this.queue.size} queued`)
        return
      case 'cancel':
        return this.cancel(message.ids)
      case 'drain':
        return this.drain(message.blockIds)
      case 'status':
        this.out.toClient({ t: 'status_reply', req: message.req, queued: this.queue.size, managers: this.managerInfos() })
        return
      case 'shutdown':
        this.options.onShutdownRequest?.('the client asked for shutdown')
        return
      case 'block_ended':
        return this.blockEnded(message.blockId, message.reason)
      case 'heartbeat':
      case 'client_hello':
        return
    }
  }

  managerInfos(): ManagerInfo[] {
    const infos: ManagerInfo[] = []
    for (const record of this.managers.all()) infos.push(this.snapshot(record))
    return infos
  }

  private cancel(ids: unknown[]): void {
    const forward = new Map<ManagerRecord, number[]>()
    let queued = 0
    for (const id of ids) {
      if (typeof id !== 'number') continue
      const task = this.queue.remove(id)
      if (task) {
        queued++
        const error = new TaskCancelled(id, 'app name unknown to the interchange', 'cancelled while queued in the interchange')
        this.failures.push({ id, try: task.try, error: encodeError(error) })
        continue
      }
      // A task already on a manager: the manager stops it and reports the outcome itself.
      const holder = this.managers.holder(id)
      if (holder) {
        const list = forward.get(holder)
        if (list) list.push(id)
        else forward.set(holder, [id])
      }
    }
    for (const [record, list] of forward) this.out.toManager(record.key, { t: 'cancel', ids: list })
    this.log.info(`cancel of ${ids.length} tasks: ${queued} removed from the queue, forwarded to ${forward.size} managers`)
  }

  private drain(blockIds: unknown[] | undefined): void {
    const records = Array.isArray(blockIds)
      ? this.managers.managersOfBlocks(blockIds.filter((id): id is string => typeof id === 'string'))
      : [...this.managers.all()]
    if (Array.isArray(blockIds)) for (const id of blockIds) if (typeof id === 'string') this.managers.drainingBlocks.add(id)
    for (const record of records) this.startDrain(record)
    this.log.info(`drain of blocks ${Array.isArray(blockIds) ? blockIds.join(', ') || '(none)' : '(all)'}: ${records.length} managers told to drain`)
  }

  /**
   * The provider saw a block end: its managers are gone now, so their tasks fail (the client
   * retries them) at once instead of after the heartbeat threshold.
   */
  private blockEnded(blockId: string, reason: string): void {
    this.managers.drainingBlocks.delete(blockId)
    const records = this.managers.managersOfBlocks([blockId])
    for (const record of records) this.depart(record, `its block ${blockId} ended (${reason})`, 'lost')
    if (records.length > 0) this.log.info(`block ${blockId} ended: ${records.length} managers declared lost at once`)
  }

  private startDrain(record: ManagerRecord): void {
    if (record.info.draining) return
    // The ring drops draining managers when it reaches them; no scan needed here.
    record.info.draining = true
    this.out.toManager(record.key, { t: 'drain' })
  }

  // ---- manager side ----

  onManagerMessage(key: string, message: ManagerMessage): void {
    if (message.t === 'register') return this.register(key, message)
    const record = this.managers.get(key)
    if (!record) return this.refuseUnknown(key, message.t)
    this.heartbeat.beat(key)
    switch (message.t) {
      case 'results':
        for (const result of message.results) this.managers.complete(record, result.id)
        // Payloads are passed on as the bytes they arrived as; only the client decodes them.
        for (const result of message.results) this.results.push(result)
        if (this.metrics) for (const result of message.results) this.metrics.result(result)
        this.managers.announce(record, count(message.capacity))
        return
      case 'ready':
        this.managers.announce(record, count(message.capacity))
        return
      case 'heartbeat':
        return
      case 'drained':
        this.log.info(`manager ${record.info.managerId} (block ${record.info.blockId}) drained and is leaving`)
        this.depart(record, 'it drained and exited', 'drained')
        return
      case 'stopping':
        this.log.info(`manager ${record.info.managerId} (block ${record.info.blockId}) is stopping: ${message.reason}`)
        this.depart(record, typeof message.reason === 'string' ? message.reason : 'it stopped', 'stopped')
        return
      case 'resources':
        // Passed on as they came, with who took them: the client maps task ids to its own.
        this.out.toClient({ t: 'resources', managerId: record.info.managerId, host: record.info.host, timeMs: message.timeMs, samples: message.samples })
        return
    }
  }

  private register(key: string, message: Extract<ManagerMessage, { t: 'register' }>): void {
    const now = this.heartbeat.clock()
    const info: ManagerInfo = {
      managerId: message.managerId,
      host: message.host,
      blockId: message.blockId,
      workers: count(message.workers),
      prefetch: count(message.prefetch),
      pid: typeof message.pid === 'number' ? message.pid : 0,
      registeredAt: Math.round(now),
      lastHeartbeat: Math.round(now),
      outstanding: 0,
      draining: false,
    }
    if (Array.isArray(message.accelerators)) info.accelerators = message.accelerators.filter((a) => typeof a === 'string')
    // The manager says how long its block has left, not when it ends: no clock of another node is trusted.
    if (typeof message.leftMs === 'number' && Number.isFinite(message.leftMs)) info.endMs = Math.round(now + message.leftMs)
    try {
      checkVersion(`manager ${message.managerId} on ${message.host}`, message)
    } catch (error) {
      const reason = (error as Error).message
      this.limiter.warn('refused-manager', `refused manager ${message.managerId} on ${message.host}: ${reason}`)
      this.out.toManager(key, { t: 'refused', reason })
      this.out.toClient({ t: 'manager', event: 'refused', info, reason })
      return
    }
    const previous = this.managers.get(key)
    if (previous) this.depart(previous, 'it registered again under the same id (the manager restarted)', 'lost')
    this.gone.delete(key)
    const record = this.managers.add(key, info, info.endMs)
    // A manager with adaptive prefetch registers its ceiling as prefetch and says what it takes now.
    if (typeof message.capacity === 'number' && message.capacity >= 0) record.announced = Math.min(record.announced, Math.floor(message.capacity))
    this.heartbeat.beat(key, now)
    this.out.toManager(key, {
      t: 'registered',
      heartbeatPeriodMs: this.options.heartbeatPeriodMs,
      heartbeatThreshold: this.options.heartbeatThresholdMs,
    })
    if (this.managers.drainingBlocks.has(info.blockId)) this.startDrain(record)
    this.managers.markReady(record)
    this.out.toClient({ t: 'manager', event: 'registered', info: this.snapshot(record) })
    this.log.info(
      `manager ${info.managerId} registered: host ${info.host}, block ${info.blockId}, pid ${info.pid}, ` +
        `${info.workers} workers + ${info.prefetch} prefetch` +
        `${info.endMs === undefined ? '' : `, block ends in ${Math.round((info.endMs - now) / 1000)} s`} (${this.managers.size} managers)`,
    )
  }

  private refuseUnknown(key: string, kind: string): void {
    const why = this.gone.get(key)
    const name = printable(key)
    const reason = why
      ? `manager ${name} is no longer registered: ${why}`
      : `manager ${name} is not registered; send 'register' first`
    this.limiter.warn('unregistered-manager', `'${kind}' from ${why ? 'departed' : 'unregistered'} manager ${name} refused: ${reason}`)
    this.out.toManager(key, { t: 'refused', reason })
  }

  // ---- time ----

  /** Declares lost every manager silent beyond the threshold. Returns how many were lost. */
  checkHeartbeats(now = this.heartbeat.clock()): number {
    const expired = this.heartbeat.expired(now)
    for (const { peer, silentMs } of expired) {
      const record = this.managers.get(peer)
      if (!record) {
        this.heartbeat.forget(peer)
        continue
      }
      const why = `no heartbeat for ${Math.round(silentMs)} ms (threshold ${this.options.heartbeatThresholdMs} ms)`
      this.depart(record, why, 'lost')
    }
    return expired.length
  }

  /** Sends the interchange's heartbeat to every manager (once per period, not per task). */
  sendHeartbeats(): void {
    for (const record of this.managers.all()) this.out.toManager(record.key, { t: 'heartbeat' })
  }

  /**
   * Tells every manager to shut down (the interchange is going away) and the client that each
   * stopped: they leave without another word to an interchange that is closing.
   */
  shutdownManagers(reason = 'the interchange shut down'): void {
    for (const record of this.managers.all()) {
      this.out.toManager(record.key, { t: 'shutdown' })
      this.out.toClient({ t: 'manager', event: 'stopped', info: this.snapshot(record), reason })
    }
  }

  /**
   * The end of an event-loop turn: dispatch queued work to ready managers, then send the results
   * and failures gathered during the turn to the client, each kind in one message.
   */
  flush(options: { dispatch?: boolean } = {}): void {
    if (this.queue.size > 0 && options.dispatch !== false) {
      const notice = this.dispatchedNotice
      const clock = { now: this.heartbeat.clock(), marginMs: this.walltimeMarginMs }
      const sent = dispatch(this.queue, this.managers, (record, tasks) => {
        for (const task of tasks) {
          notice.ids.push(task.id)
          notice.tries.push(task.try)
        }
        this.metrics?.dispatched(tasks)
        const fns = this.unsentFunctions(record, tasks)
        this.out.toManager(record.key, fns ? { t: 'tasks', tasks, fns } : { t: 'tasks', tasks })
      }, clock)
      this.stats.tasksDispatched += sent.tasks
      this.stats.taskMessages += sent.messages
      if (sent.messages > 0 && this.log.enabled('debug')) {
        this.log.debug(`dispatched ${sent.tasks} tasks in ${sent.messages} messages; ${this.queue.size} still queued`)
      }
    }
    if (this.results.length > 0) {
      const results = this.results
      this.results = []
      this.stats.resultsForwarded += results.length
      // Usually one message per turn; large results are split at the byte cap.
      for (const part of splitBatch(results, (result) => result.payload.byteLength)) {
        this.stats.resultMessages++
        // The dispatch notice rides along: no extra message per turn for the 'running' state.
        if (this.dispatchedNotice.ids.length > 0) {
          this.out.toClient({ t: 'results', results: part, dispatched: this.dispatchedNotice })
          this.dispatchedNotice = { ids: [], tries: [] }
        } else {
          this.out.toClient({ t: 'results', results: part })
        }
      }
      if (this.log.enabled('debug')) this.log.debug(`forwarded ${results.length} results to the client`)
    }
    if (this.failures.length > 0) {
      const failures = this.failures
      this.failures = []
      this.stats.failuresReported += failures.length
      this.metrics?.failedTasks(failures)
      this.out.toClient({ t: 'failed', failures })
    }
  }

  /**
   * Removes a manager. Tasks it still held fail with ManagerLost naming the manager, its host,
   * its last heartbeat and `why`; the client decides about retries.
   */
  private depart(record: ManagerRecord, why: string, event: 'lost' | 'drained' | 'stopped'): void {
    const lastSeen = this.heartbeat.lastSeen(record.key) ?? record.info.lastHeartbeat
    const info = this.snapshot(record)
    const { managerId, host } = record.info
    // Lost at (or just before) its block's end: the scheduler took the node, the tasks did nothing wrong.
    const now = this.heartbeat.clock()
    const walltime = event === 'lost' && record.endMs !== undefined && now >= record.endMs - this.walltimeMarginMs
    for (const [id, tryNumber] of record.held) {
      const error = walltime
        ? new BlockWalltimeReached(id, `manager ${managerId} on ${host}`, record.info.blockId, `${why}; the block's end was ${new Date(record.endMs!).toISOString()}`)
        : new ManagerLost(id, managerId, host, Math.round(lastSeen), why)
      this.failures.push({ id, try: tryNumber, error: encodeError(error) })
    }
    this.managers.remove(record)
    this.heartbeat.forget(record.key)
    this.gone.set(record.key, `${event === 'lost' ? 'declared lost' : event} at ${new Date().toISOString()}: ${why}`)
    if (this.gone.size > GONE_MEMORY) this.gone.delete(this.gone.keys().next().value!)
    if (event === 'lost') {
      this.stats.managersLost++
      this.log.warn(
        `manager ${managerId} (host ${host}, block ${record.info.blockId}, pid ${record.info.pid}) lost: ${why}; ` +
          `${record.held.size} tasks it held reported failed (${this.managers.size} managers left)`,
      )
    } else if (record.held.size > 0) {
      this.log.warn(`manager ${managerId} left with ${record.held.size} unfinished tasks; reported failed`)
    }
    this.out.toClient({ t: 'manager', event, info, reason: why })
  }

  /** The function table entries these tasks use that the manager has not been sent yet. */
  private unsentFunctions(record: ManagerRecord, tasks: readonly TaskEnvelope[]): FunctionEntry[] | undefined {
    let fns: FunctionEntry[] | undefined
    for (const task of tasks) {
      if (record.fns.has(task.f)) continue
      record.fns.add(task.f)
      ;(fns ??= []).push([task.f, this.fns.get(task.f)!])
    }
    return fns
  }

  private snapshot(record: ManagerRecord): ManagerInfo {
    return this.managers.snapshot(record, this.heartbeat.lastSeen(record.key))
  }

  /** Logs warnings the rate limiter held back. */
  /** Whether some dispatched tasks have not been reported to the client yet. */
  get dispatchNoticePending(): boolean {
    return this.dispatchedNotice.ids.length > 0
  }

  /** Tells the client about dispatched tasks no results message has carried (long tasks). */
  flushDispatched(): void {
    if (this.dispatchedNotice.ids.length === 0) return
    this.out.toClient({ t: 'dispatched', ...this.dispatchedNotice })
    this.dispatchedNotice = { ids: [], tries: [] }
  }

  flushWarnings(): void {
    this.limiter.flush()
  }
}

/** A count from a peer: finite, whole, not negative. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.floor(value)) : 0
}

/** A routing key as readable text for log lines (hex when it is not printable). */
export function printable(key: string): string {
  return /^[\x20-\x7e]{1,128}$/.test(key) ? key : `0x${Buffer.from(key, 'latin1').toString('hex')}`
}
