import { Context, Router } from 'zeromq'
import type { Socket } from 'zeromq'
import { ACCEPTED, checkVersion, decodeMessage, encodeMessage, stamp } from '../protocol/messages.js'
import type { ClientMessage, InterchangeToClient, InterchangeToManager, ManagerMessage } from '../protocol/messages.js'
import { INTERCHANGE_DEFAULTS, type ManagerSelectorName } from '../protocol/interchange.js'
import { applyCurve, loadCurveKeys } from '../transport/curve.js'
import { Heartbeat, type Clock } from '../transport/heartbeat.js'
import { Outbox, bindTcp, isLoopback } from '../transport/sockets.js'
import { ZapHandler, z85Decode, type ZapDecision } from '../transport/zap.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { serveMetrics, type MetricsServer } from '../util/prometheus.js'
import { InterchangeCore, printable } from './core.js'
import { LogLimiter } from './log-limiter.js'
import { InterchangeMetrics } from './metrics.js'

export interface InterchangeOptions {
  /** address the client (executor) port binds to; default 127.0.0.1 */
  clientAddress?: string
  /** address the manager port binds to; default 127.0.0.1 (use 0.0.0.0 for managers on other nodes) */
  workerAddress?: string
  /** 0 (default): the OS picks a free port */
  clientPort?: number
  workerPort?: number
  /** CURVE key directory (see transport/curve.ts); encryption and client-key checks when set */
  curveDir?: string
  /** default DEFAULT_HEARTBEAT_PERIOD_MS (protocol/interchange.ts) */
  heartbeatPeriodMs?: number
  /** default DEFAULT_HEARTBEAT_THRESHOLD_MS */
  heartbeatThresholdMs?: number
  logger?: Logger
  runId?: string
  clock?: Clock
  /** messages handled before yielding to timers and flushing, when input never runs dry */
  maxMessagesPerTurn?: number
  /**
   * The client's death is signalled another way (the parent pipe, transport/parent-watch.ts), so
   * its silence is not taken for death: a client busy in a long synchronous loop sends nothing.
   */
  clientLivenessByPipe?: boolean
  /** which manager gets tasks first (default 'packed') */
  managerSelector?: ManagerSelectorName
  /** a task must end this long before its block's walltime, ms (default DEFAULT_WALLTIME_MARGIN_MS) */
  walltimeMarginMs?: number
  /**
   * The client port's protocol when it is not the HTEX executor's single client (an endpoint's
   * many sessions). Needs `curveDir`. Without it the interchange serves one client and stops when
   * that client goes silent.
   */
  clientSide?: ClientSide
  /** serve Prometheus metrics at http://metricsAddress:metricsPort/metrics (0: a free port); off when unset */
  metricsPort?: number
  /** address of the metrics port; default 127.0.0.1 */
  metricsAddress?: string
}

/** What a client side plugged into an Interchange may use of it. */
export interface ClientSideHost {
  readonly core: InterchangeCore
  /** queues frames for the peer with this routing id on the client port */
  send(routingId: Buffer, frames: Uint8Array[]): void
  /** runs the core's flush at the end of this event-loop turn (after work arrived outside a client message) */
  scheduleFlush(): void
}

/**
 * The client port's protocol, plugged into an Interchange (src/endpoint/ serves many sessions
 * this way). The Interchange keeps the sockets, CURVE, the manager side, the core and the
 * per-turn flush batching; the client side gets every message arriving on the client port, every
 * core message meant for "the client", and a call per heartbeat check. It never makes the
 * interchange stop: silence of its clients is its own business.
 */
export interface ClientSide {
  attach(host: ClientSideHost): void
  /** one message from the client port: the sender's routing id and the message's frames */
  onFrames(routingId: Buffer, parts: Buffer[]): void
  /** a message of the core for the client (results, failed, dispatched, manager events, ...) */
  fromCore(message: InterchangeToClient): void
  /** every heartbeat check interval; `beat`: a heartbeat period has passed, heartbeats are due */
  tick(now: number, beat: boolean): void
  /** the client public keys (32 bytes each) admitted on the client port, asked at every handshake */
  allowedClients(): readonly Buffer[]
  /** a ZAP decision about a connection to the client port (refusals are its to log) */
  onZapDecision?(decision: ZapDecision): void
}

/** The ZAP domain of the client port when a client side admits its own keys. */
const CLIENT_ZAP_DOMAIN = 'tsflow-clients'

export interface InterchangePorts {
  clientPort: number
  workerPort: number
  /** the Prometheus port, when metrics are served */
  metricsPort?: number
}

/** How long shutdown waits for queued outgoing messages (the managers' `shutdown`) to leave. */
const SEND_GRACE_MS = 1000
const STATS_EVERY_MS = 60_000

/**
 * The interchange process in a class: two ROUTER sockets (client side and manager side), the
 * client session (hello, liveness), framing and garbage handling, and the event-loop batching
 * around InterchangeCore. The bin only parses the command line and runs this; a benchmark or
 * test can run it in-process.
 */
// How long a dispatch notice may wait for a results message to ride on.
const DISPATCH_NOTICE_DELAY_MS = 20

export class Interchange {
  readonly core: InterchangeCore
  /** resolves with the reason once the interchange has stopped */
  readonly done: Promise<string>
  private resolveDone!: (reason: string) => void
  private readonly log: Logger
  private readonly limiter: LogLimiter
  private readonly context = new Context()
  private readonly clientSocket: Router
  private readonly managerSocket: Router
  private readonly toClientBox: Outbox
  private readonly toManagerBox: Outbox
  private readonly clientBeat: Heartbeat<'client'>
  private zap: ZapHandler | undefined
  private readonly clientSide: ClientSide | undefined
  private client: { routingId: Buffer; clientId: string } | undefined
  /** messages for the client produced before it said hello */
  private early: Uint8Array[][] = []
  private ports: InterchangePorts | undefined
  private metricsServer: MetricsServer | undefined
  private timer: NodeJS.Timeout | undefined
  private flushScheduled = false
  private handledThisTurn = 0
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  private lastStatsLog = 0
  private lastActivity = 0
  private readonly maxPerTurn: number

  constructor(private readonly options: InterchangeOptions = {}) {
    const periodMs = options.heartbeatPeriodMs ?? INTERCHANGE_DEFAULTS.heartbeatPeriodMs
    const thresholdMs = options.heartbeatThresholdMs ?? INTERCHANGE_DEFAULTS.heartbeatThresholdMs
    this.log = options.logger ?? silentLogger
    this.maxPerTurn = options.maxMessagesPerTurn ?? 1000
    this.done = new Promise((resolve) => (this.resolveDone = resolve))
    this.core = new InterchangeCore(
      {
        heartbeatPeriodMs: periodMs,
        heartbeatThresholdMs: thresholdMs,
        clock: options.clock,
        logger: this.log,
        onShutdownRequest: (reason) => void this.stop(reason),
        ...(options.managerSelector ? { managerSelector: options.managerSelector } : {}),
        ...(options.walltimeMarginMs !== undefined ? { walltimeMarginMs: options.walltimeMarginMs } : {}),
      },
      { toClient: (message) => this.sendToClient(message), toManager: (key, message) => this.sendToManager(key, message) },
    )
    this.clientBeat = new Heartbeat({ periodMs, thresholdMs, clock: this.core.heartbeat.clock })
    this.limiter = new LogLimiter(this.log, { clock: this.core.heartbeat.clock })
    // No send high-water mark: a ROUTER drops messages past it, and a dropped `tasks` or
    // `results` message would be a silent hang. Batching keeps the message count small.
    // A fresh options object per socket: zeromq.js deletes `context` from the object it is given,
    // and a socket silently left in the default context would skip this context's ZAP handler.
    const common = () => ({ context: this.context, sendHighWaterMark: 0, linger: SEND_GRACE_MS })
    this.clientSocket = new Router(common())
    // handover: a manager restarted under the same id replaces a half-open old connection.
    this.managerSocket = new Router({ ...common(), handover: true })
    const onSendError = (side: string) => (error: unknown) =>
      this.limiter.warn(`send-${side}`, `sending to the ${side} failed: ${(error as Error).message}`)
    this.toClientBox = new Outbox(this.clientSocket, onSendError('client'))
    this.toManagerBox = new Outbox(this.managerSocket, onSendError('managers'))
    this.clientSide = options.clientSide
    this.clientSide?.attach({
      core: this.core,
      send: (routingId, frames) => this.toClientBox.send([routingId, ...frames]),
      scheduleFlush: () => this.scheduleFlush(),
    })
  }

  /** Binds both ports and starts serving. Resolves with the ports actually bound. */
  async start(): Promise<InterchangePorts> {
    if (this.state !== 'new') throw new Error('an Interchange can be started once')
    this.state = 'running'
    const o = this.options
    const clientAddress = o.clientAddress ?? INTERCHANGE_DEFAULTS.clientAddress
    const workerAddress = o.workerAddress ?? INTERCHANGE_DEFAULTS.workerAddress
    try {
      if (o.clientSide && !o.curveDir) throw new Error('an Interchange with a clientSide needs curveDir (its clients are admitted by key)')
      if (o.curveDir) await this.enableCurve(o.curveDir)
      this.watchHandshakes(this.clientSocket, 'client')
      this.watchHandshakes(this.managerSocket, 'manager')
      const clientPort = await bindTcp(this.clientSocket, clientAddress, o.clientPort ?? 0)
      const workerPort = await bindTcp(this.managerSocket, workerAddress, o.workerPort ?? 0)
      this.ports = { clientPort, workerPort }
      if (o.metricsPort !== undefined) {
        const metrics = new InterchangeMetrics(this.core)
        this.metricsServer = await serveMetrics(metrics.registry, { host: o.metricsAddress ?? '127.0.0.1', port: o.metricsPort })
        this.core.metrics = metrics
        this.ports.metricsPort = this.metricsServer.port
      }
    } catch (error) {
      this.closeSockets()
      this.state = 'stopped'
      this.resolveDone('failed to start')
      throw error
    }
    for (const [address, port] of [[clientAddress, 'client'], [workerAddress, 'manager']] as const) {
      if (!o.curveDir && !isLoopback(address)) {
        this.log.warn(`the ${port} port listens on ${address} without encryption; pass a CURVE key directory to encrypt`)
      }
    }
    this.log.info(
      `interchange${o.runId ? ` of run ${o.runId}` : ''} listening: client ${clientAddress}:${this.ports.clientPort}, ` +
        `managers ${workerAddress}:${this.ports.workerPort}, CURVE ${o.curveDir ? 'on' : 'off'}, heartbeat ` +
        `${this.core.heartbeat.periodMs}/${this.core.heartbeat.thresholdMs} ms, manager selector ${this.core.selector.name}, ` +
        `walltime margin ${this.core.walltimeMarginMs} ms` +
        `${this.metricsServer ? `, Prometheus metrics at ${this.metricsServer.url}` : ''}`,
    )
    this.clientBeat.beat('client') // the client has one threshold to say hello
    this.lastStatsLog = this.core.heartbeat.clock()
    this.timer = setInterval(() => this.tick(), this.core.heartbeat.checkIntervalMs)
    void this.receiveLoop(this.clientSocket, (frames) => this.onClientFrames(frames))
    void this.receiveLoop(this.managerSocket, (frames) => this.onManagerFrames(frames))
    return this.ports
  }

  /** Tells managers to shut down, sends what is pending, closes the sockets. Idempotent. */
  async stop(reason = 'stopped'): Promise<string> {
    if (this.state === 'new') {
      this.state = 'stopped'
      this.closeSockets()
      this.resolveDone(reason)
    }
    if (this.state !== 'running') return this.done
    this.state = 'stopping'
    this.core.metrics?.stopping()
    this.log.info(`stopping: ${reason}; telling ${this.core.managers.size} managers to shut down`)
    clearInterval(this.timer)
    if (this.dispatchTimer) clearTimeout(this.dispatchTimer)
    this.core.flush({ dispatch: false }) // results still go to the client; no new work goes out
    this.core.shutdownManagers(`the interchange stopped: ${reason}`)
    const deadline = Date.now() + SEND_GRACE_MS
    while ((this.toClientBox.backlog > 0 || this.toManagerBox.backlog > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    this.logStats()
    this.core.flushWarnings()
    this.limiter.flush()
    this.closeSockets()
    this.state = 'stopped'
    this.log.info(`stopped: ${reason}`)
    this.resolveDone(reason)
    return reason
  }

  get listening(): InterchangePorts | undefined {
    return this.ports
  }

  private async enableCurve(dir: string): Promise<void> {
    const keys = loadCurveKeys(dir, 'server')
    const side = this.clientSide
    const logRefusal = (decision: ZapDecision) => {
      if (!decision.allowed) {
        this.limiter.warn('zap', `refused a ${decision.mechanism} connection from ${decision.address}: ${decision.reason}`)
      }
    }
    if (side) {
      // Managers present the key pair of the key directory; clients, keys of the client side's list.
      const managers = [z85Decode(keys.clientPublicKey)]
      this.zap = new ZapHandler(this.context, (domain) => (domain === CLIENT_ZAP_DOMAIN ? side.allowedClients() : managers), (decision) =>
        decision.domain === CLIENT_ZAP_DOMAIN && side.onZapDecision ? side.onZapDecision(decision) : logRefusal(decision),
      )
    } else {
      this.zap = new ZapHandler(this.context, [keys.clientPublicKey], logRefusal)
    }
    await this.zap.start()
    applyCurve(this.clientSocket, keys, side ? CLIENT_ZAP_DOMAIN : undefined)
    applyCurve(this.managerSocket, keys)
  }

  /** Failed handshakes (no or wrong keys, or bytes that are not ZMTP) are logged, rate-limited. */
  private watchHandshakes(socket: Socket, side: string): void {
    const warn = (what: string) => (event: { address: string; error: Error }) =>
      this.limiter.warn(`handshake-${side}`, `${what} on the ${side} port (${event.address}): ${event.error.message}`)
    socket.events.on('handshake:error:protocol', warn('handshake failed (protocol)'))
    socket.events.on('handshake:error:auth', warn('handshake refused (authentication)'))
    socket.events.on('handshake:error:other', warn('handshake failed'))
  }

  private async receiveLoop(socket: Router, handle: (frames: Buffer[]) => void): Promise<void> {
    while (this.state === 'running') {
      let frames: Buffer[]
      try {
        frames = await socket.receive()
      } catch (error) {
        if (socket.closed || this.state !== 'running') return
        this.limiter.warn('receive', `receive failed: ${(error as Error).message}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
        continue
      }
      try {
        handle(frames)
      } catch (error) {
        // A bug triggered by one odd message must not take down every task in flight.
        this.log.error('unexpected error while handling a message (dropped)', error)
      }
      this.scheduleFlush()
      // Input that never runs dry would otherwise starve timers and the flush.
      if (++this.handledThisTurn >= this.maxPerTurn) await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private dispatchTimer: NodeJS.Timeout | undefined

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    // setImmediate runs after every message already readable was handled: that is the batching.
    setImmediate(() => {
      this.flushScheduled = false
      this.handledThisTurn = 0
      if (this.state !== 'running') return
      this.core.flush()
      // Dispatch notices normally ride on results; long tasks send theirs after a short wait.
      if (this.core.dispatchNoticePending && !this.dispatchTimer) {
        this.dispatchTimer = setTimeout(() => {
          this.dispatchTimer = undefined
          if (this.state === 'running') this.core.flushDispatched()
        }, DISPATCH_NOTICE_DELAY_MS)
      }
    })
  }

  private onClientFrames(frames: Buffer[]): void {
    const [routingId, ...parts] = frames
    if (!routingId || parts.length === 0) {
      this.limiter.warn('client-garbage', `dropped an empty message on the client port`)
      return
    }
    if (this.clientSide) return this.clientSide.onFrames(routingId, parts)
    let message: ClientMessage
    try {
      message = decodeMessage<ClientMessage>(parts, ACCEPTED.interchangeFromClient)
    } catch (error) {
      this.limiter.warn('client-garbage', `dropped a bad frame on the client port: ${explain(error)}`)
      return
    }
    if (message.t === 'client_hello') return this.hello(routingId, message)
    if (!this.client || !this.client.routingId.equals(routingId)) {
      this.limiter.warn('client-stranger', `'${message.t}' from a peer that is not the client refused`)
      this.reply(routingId, { t: 'refused', reason: 'this interchange serves one client; send client_hello first' })
      return
    }
    this.clientBeat.beat('client')
    this.core.onClientMessage(message)
  }

  private hello(routingId: Buffer, message: Extract<ClientMessage, { t: 'client_hello' }>): void {
    try {
      checkVersion(`client ${message.clientId}`, message)
    } catch (error) {
      const reason = (error as Error).message
      this.log.warn(`refused client ${message.clientId}: ${reason}`)
      this.reply(routingId, { t: 'refused', reason })
      return
    }
    if (this.client && !this.client.routingId.equals(routingId)) {
      // The first client to say hello owns the interchange until it goes silent (and then the
      // interchange exits): a stray peer must not take over the results.
      this.limiter.warn('client-stranger', `second client ${message.clientId} refused; serving ${this.client.clientId}`)
      this.reply(routingId, { t: 'refused', reason: `this interchange already serves client ${this.client.clientId}` })
      return
    }
    const first = !this.client
    this.client = { routingId, clientId: message.clientId }
    this.clientBeat.beat('client')
    this.reply(routingId, { t: 'ix_hello', ...stamp(), clientPort: this.ports!.clientPort, workerPort: this.ports!.workerPort })
    if (first) this.log.info(`client ${message.clientId} connected (tsflow ${message.version}, protocol ${message.proto})`)
    for (const buffered of this.early) this.toClientBox.send([routingId, ...buffered])
    this.early = []
  }

  private onManagerFrames(frames: Buffer[]): void {
    const [routingId, ...parts] = frames
    if (!routingId || parts.length === 0) {
      this.limiter.warn('manager-garbage', `dropped an empty message on the manager port`)
      return
    }
    const key = routingId.toString('latin1')
    let message: ManagerMessage
    try {
      message = decodeMessage<ManagerMessage>(parts, ACCEPTED.interchangeFromManager)
    } catch (error) {
      this.limiter.warn('manager-garbage', `dropped a bad frame from manager ${printable(key)}: ${explain(error)}`)
      return
    }
    this.core.onManagerMessage(key, message)
  }

  private tick(): void {
    if (this.state !== 'running') return
    const now = this.core.heartbeat.clock()
    if (this.clientSide) {
      if (this.core.checkHeartbeats(now) > 0) this.scheduleFlush()
      const beat = this.clientBeat.sendDue(now)
      if (beat) this.core.sendHeartbeats()
      this.clientSide.tick(now, beat)
      this.statsTick(now)
      return
    }
    const silent = this.options.clientLivenessByPipe ? undefined : this.clientBeat.expired(now)[0]
    if (silent) {
      const ms = `${Math.round(silent.silentMs)} ms (threshold ${this.clientBeat.thresholdMs} ms)`
      void this.stop(this.client ? `client ${this.client.clientId} sent nothing for ${ms}` : `no client said hello within ${ms}`)
      return
    }
    if (this.core.checkHeartbeats(now) > 0) this.scheduleFlush()
    if (this.clientBeat.sendDue(now)) {
      if (this.client) this.reply(this.client.routingId, { t: 'heartbeat' })
      this.core.sendHeartbeats()
    }
    this.statsTick(now)
  }

  private statsTick(now: number): void {
    if (now - this.lastStatsLog >= STATS_EVERY_MS) {
      this.lastStatsLog = now
      // One summary line a minute while work flows; none while idle.
      const activity = this.core.stats.tasksReceived + this.core.stats.resultsForwarded + this.core.stats.managersLost
      if (activity !== this.lastActivity) this.logStats()
      this.lastActivity = activity
    }
  }

  private logStats(): void {
    const s = this.core.stats
    this.log.info(
      `totals: ${s.tasksReceived} tasks in, ${s.tasksDispatched} dispatched in ${s.taskMessages} messages, ` +
        `${s.resultsForwarded} results out in ${s.resultMessages} messages, ${s.failuresReported} failures, ` +
        `${s.managersLost} managers lost; now ${this.core.queue.size} queued, ${this.core.managers.placed} on ` +
        `${this.core.managers.size} managers`,
    )
  }

  private sendToClient(message: InterchangeToClient): void {
    if (this.clientSide) return this.clientSide.fromCore(message)
    const frames = encodeMessage(message)
    if (this.client) this.toClientBox.send([this.client.routingId, ...frames])
    else this.early.push(frames)
  }

  private reply(routingId: Buffer, message: InterchangeToClient): void {
    this.toClientBox.send([routingId, ...encodeMessage(message)])
  }

  private sendToManager(key: string, message: InterchangeToManager): void {
    this.toManagerBox.send([Buffer.from(key, 'latin1'), ...encodeMessage(message)])
  }

  private closeSockets(): void {
    for (const socket of [this.clientSocket, this.managerSocket]) if (!socket.closed) socket.close()
    this.zap?.close()
    void this.metricsServer?.close()
    this.metricsServer = undefined
  }
}

/** An error's message plus its innermost cause (the decoder's own words). */
function explain(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  let root: unknown = error.cause
  while (root instanceof Error && root.cause instanceof Error) root = root.cause
  return root instanceof Error ? `${error.message} (${root.message})` : error.message
}
