/**
 * The endpoint's client side of the interchange (interchange.ts `ClientSide`): many sessions on
 * the one client ROUTER socket. It decodes client messages (protocol/endpoint.ts), hands them to
 * the session bookkeeping (sessions.ts) and the interchange core, routes the core's results,
 * failures and dispatch notices to the sessions that own them, and keeps the ZAP allow-list in
 * step with `allowed_clients` (re-read when the file changes, so `tsflow endpoint allow` needs no
 * restart). It never stops the interchange: a silent client only loses its connection.
 */
import { statSync } from 'node:fs'
import { ConfigError } from '../errors.js'
import type { ClientSide, ClientSideHost } from '../interchange/interchange.js'
import { LogLimiter } from '../interchange/log-limiter.js'
import { ENDPOINT_ACCEPTED, type EndpointClientMessage, type EndpointPaths, type EndpointStatus, type EndpointToClient } from '../protocol/endpoint.js'
import { checkVersion, decodeMessage, encodeMessage, stamp, type InterchangeToClient, type ManagerEventWire, type ManagerInfo } from '../protocol/messages.js'
import { z85Decode, type ZapDecision } from '../transport/zap.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { readAllowedClients } from './keys.js'
import { Sessions, type Session } from './sessions.js'

export interface FrontOptions {
  endpoint: string
  paths: Pick<EndpointPaths, 'allowedClients'>
  heartbeatPeriodMs: number
  heartbeatThresholdMs: number
  resultTtlMs: number
  maxRetainedBytesPerSession: number
  sessionIdleMs: number
  logger?: Logger
  /** a manager registered, was lost, drained or refused */
  onManagerEvent?(event: ManagerEventWire, info: ManagerInfo, reason?: string): void
  /** once per heartbeat period */
  onBeat?(now: number): void
  /** what a `status` request is answered with */
  status(): EndpointStatus
}

/** A refused key (and host) is logged at most once per this, ms: a refused client retries every few hundred ms. */
const REFUSAL_LOG_EVERY_MS = 60_000
const SESSION_NAME = /^[\x21-\x7e]{1,128}$/

export class EndpointFront implements ClientSide {
  readonly sessions: Sessions
  private host: ClientSideHost | undefined
  private readonly log: Logger
  private readonly limiter: LogLimiter
  /** each session's routing id as bytes, made once per connection */
  private readonly peers = new WeakMap<Session, { key: string; id: Buffer }>()
  private allowed: { stamp: string; keys: Buffer[] } = { stamp: '', keys: [] }
  private readonly refusalsLogged = new Map<string, { at: number; suppressed: number }>()
  private readonly heartbeatFrames = encodeMessage({ t: 'heartbeat' })

  constructor(private readonly options: FrontOptions) {
    this.log = options.logger ?? silentLogger
    this.limiter = new LogLimiter(this.log)
    this.sessions = new Sessions(
      {
        endpoint: options.endpoint,
        resultTtlMs: options.resultTtlMs,
        maxRetainedBytesPerSession: options.maxRetainedBytesPerSession,
        sessionIdleMs: options.sessionIdleMs,
        clientThresholdMs: options.heartbeatThresholdMs,
        logger: this.log,
      },
      (session, message) => this.send(session, message),
    )
    this.allowedClients() // a bad allow-list is reported at start, not at the first connection
  }

  attach(host: ClientSideHost): void {
    this.host = host
  }

  /** Runs the core's flush at the end of this turn (work that arrived outside a client message). */
  scheduleFlush(): void {
    this.host?.scheduleFlush()
  }

  // ---- the client port

  onFrames(routingId: Buffer, parts: Buffer[]): void {
    let message: EndpointClientMessage
    try {
      message = decodeMessage<EndpointClientMessage>(parts, ENDPOINT_ACCEPTED.endpointFromClient)
    } catch (error) {
      this.limiter.warn('client-garbage', `dropped a bad message on the client port: ${(error as Error).message}`)
      return
    }
    const key = routingId.toString('latin1')
    if (message.t === 'ep_hello') return this.hello(routingId, key, message)
    const session = this.sessions.byRoutingKey.get(key)
    if (!session) {
      this.limiter.warn('client-stranger', `'${message.t}' from a connection with no session refused`)
      this.reply(routingId, { t: 'refused', reason: 'this connection has no session (never said ep_hello, or went silent): say ep_hello with resume: true' })
      return
    }
    this.sessions.seen(session)
    const core = this.host!.core
    switch (message.t) {
      case 'submit': {
        const forward = this.sessions.submit(session, message.tasks, message.fns)
        if (forward) core.onClientMessage({ t: 'submit', ...forward })
        return
      }
      case 'cancel': {
        const running = this.sessions.cancel(session, message.ids, (id) => core.queue.remove(id) !== undefined)
        if (running.length > 0) core.onClientMessage({ t: 'cancel', ids: running })
        return
      }
      case 'ack':
        this.sessions.ack(session, message.ids, message.tries)
        return
      case 'status':
        this.send(session, { t: 'ep_status', req: message.req, status: this.options.status() })
        return
      case 'bye': {
        const ids = this.sessions.bye(session, message.forget === true)
        // Their outcomes have no owner any more, so the core's answers are dropped.
        if (ids.length > 0) core.onClientMessage({ t: 'cancel', ids })
        return
      }
      case 'heartbeat':
        return
    }
  }

  private hello(routingId: Buffer, key: string, message: Extract<EndpointClientMessage, { t: 'ep_hello' }>): void {
    const client = typeof message.client === 'string' ? message.client.slice(0, 200) : '?'
    try {
      checkVersion(`client ${client}`, message)
    } catch (error) {
      return this.refuse(routingId, client, (error as Error).message)
    }
    if (!SESSION_NAME.test(message.session)) {
      return this.refuse(routingId, client, `session name ${JSON.stringify(message.session.slice(0, 40))} must be 1 to 128 printable characters without spaces`)
    }
    const session = this.sessions.hello(key, message.session, client, message.resume === true)
    if ('refused' in session) return this.refuse(routingId, client, session.refused)
    this.peers.set(session, { key, id: routingId })
    this.sessions.welcome(session, {
      t: 'ep_welcome',
      endpoint: this.options.endpoint,
      ...stamp(),
      heartbeatPeriodMs: this.options.heartbeatPeriodMs,
      heartbeatThresholdMs: this.options.heartbeatThresholdMs,
      resultTtlMs: this.options.resultTtlMs,
    })
  }

  private refuse(routingId: Buffer, client: string, reason: string): void {
    this.log.warn(`refused client ${client}: ${reason}`)
    this.reply(routingId, { t: 'refused', reason })
  }

  // ---- the core's output

  fromCore(message: InterchangeToClient): void {
    switch (message.t) {
      case 'results':
        return this.sessions.results(message.results, message.dispatched)
      case 'failed':
        return this.sessions.failed(message.failures)
      case 'dispatched':
        return this.sessions.dispatched(message)
      case 'manager':
        return this.options.onManagerEvent?.(message.event, message.info, message.reason)
      default:
        return // status replies, heartbeats: the endpoint asks its core directly
    }
  }

  tick(now: number, beat: boolean): void {
    this.sessions.sweep(now)
    if (!beat) return
    for (const session of this.sessions.connected()) {
      const peer = this.peerOf(session)
      if (peer) this.host?.send(peer, this.heartbeatFrames)
    }
    this.options.onBeat?.(now)
  }

  /** Tells every connected session the endpoint is stopping (after their tasks' failures). */
  stopping(reason: string): void {
    for (const session of this.sessions.connected()) this.send(session, { t: 'stopping', reason })
  }

  // ---- admission

  /**
   * The client keys on the allow-list, re-read when `allowed_clients` changed (checked at every
   * handshake: a stat, which is cheap next to a CURVE handshake). A file that no longer parses
   * keeps the previous list, with the error logged.
   */
  allowedClients(): readonly Buffer[] {
    const file = this.options.paths.allowedClients
    let stamp: string
    try {
      const stat = statSync(file)
      stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`
    } catch {
      stamp = 'missing'
    }
    if (stamp === this.allowed.stamp) return this.allowed.keys
    try {
      const keys = readAllowedClients(this.options.paths).map(z85Decode)
      const first = this.allowed.stamp === ''
      this.allowed = { stamp, keys }
      this.log.info(`allow-list ${first ? 'read' : 'reloaded'}: ${keys.length} client keys (${file})`)
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      this.allowed = { stamp, keys: this.allowed.keys }
      this.log.error(`${error.message}; keeping the previous allow-list (${this.allowed.keys.length} keys)`)
    }
    return this.allowed.keys
  }

  onZapDecision(decision: ZapDecision): void {
    const key = decision.publicKey ?? '(no key)'
    if (decision.allowed) {
      // Connections are few (a client keeps one), so each is worth a line: who came from where.
      this.log.info(`client connection from ${decision.address} admitted (client key ${key})`)
      return
    }
    // Logged once a minute per key and address: a refused peer reconnects every few hundred ms.
    const id = `${key} ${decision.address}`
    const now = Date.now()
    const last = this.refusalsLogged.get(id)
    if (last && now - last.at < REFUSAL_LOG_EVERY_MS) {
      last.suppressed++
      return
    }
    this.refusalsLogged.set(id, { at: now, suppressed: 0 })
    if (this.refusalsLogged.size > 10_000) this.refusalsLogged.delete(this.refusalsLogged.keys().next().value!)
    this.log.warn(
      `refused a ${decision.mechanism} connection from ${decision.address}: ${decision.reason} ${key}` +
        `${last?.suppressed ? ` (and ${last.suppressed} more attempts since the last line)` : ''}; ` +
        `to admit it: npx tsflow endpoint allow ${this.options.endpoint} ${key}`,
    )
  }

  // ---- sending

  private send(session: Session, message: EndpointToClient): void {
    const peer = this.peerOf(session)
    if (peer) this.host?.send(peer, encodeMessage(message))
  }

  private reply(routingId: Buffer, message: EndpointToClient): void {
    this.host?.send(routingId, encodeMessage(message))
  }

  private peerOf(session: Session): Buffer | undefined {
    const key = session.routingKey
    if (key === undefined) return undefined
    const peer = this.peers.get(session)
    if (peer && peer.key === key) return peer.id
    const id = Buffer.from(key, 'latin1')
    this.peers.set(session, { key, id })
    return id
  }
}
