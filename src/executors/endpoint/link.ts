import { hostname } from 'node:os'
import { Dealer } from 'zeromq'
import { EndpointRefused, EndpointUnreachable } from '../../errors.js'
import type { EndpointClientMessage, EndpointStatus, EndpointToClient } from '../../protocol/endpoint.js'
import { ENDPOINT_ACCEPTED, ENDPOINT_NAME } from '../../protocol/endpoint.js'
import { decodeMessage, encodeMessage, stamp, type ResultEnvelope } from '../../protocol/messages.js'
import type { EncodedError } from '../../serialize/errors.js'
import { Heartbeat } from '../../transport/heartbeat.js'
import { IDLE_POLL_MS, Outbox, receiveLoop, type WakeSlot } from '../../transport/sockets.js'
import { deferred, delay, type Deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import type { EndpointTarget } from './options.js'

export type Welcome = Extract<EndpointToClient, { t: 'ep_welcome' }>
export type Failure = { id: number; try: number; error: EncodedError }

/**
 * What the owner of a link (EndpointExecutor, EndpointClient) is told. After a resume the endpoint
 * resends every result whose ack it did not get, so owners drop what they have seen (and ack it again).
 */
export interface LinkHandlers {
  /** whether tasks are outstanding: a waiting receive then holds the event loop, and a lost endpoint is reconnected at once */
  busy(): boolean
  /** after every welcome; `first` for the one `open()` returns */
  welcomed(welcome: Welcome, first: boolean): void
  results(results: ResultEnvelope[]): void
  failed(failures: Failure[]): void
  dispatched(ids: number[], tries: number[]): void
  /** the endpoint is stopping (its `failed` for this session's tasks came first) */
  stopping(reason: string): void
  /** the endpoint stayed unreachable (or was found not running) while busy: fail what is outstanding with `error` */
  unreachable(error: Error): void
}

export interface LinkOptions {
  /** where to connect; by name re-read at every attempt (a restarted endpoint has a new port) */
  target: () => EndpointTarget
  keys: { publicKey: string; secretKey: string }
  session: string
  /** say `resume` in the first hello too (a named session: an earlier process may have left results) */
  resumeFirst: boolean
  helloTimeoutMs: number
  reconnectTimeoutMs: number
  /** our heartbeat period; default the endpoint's */
  heartbeatPeriodMs: number | undefined
  logger: Logger | undefined
}

const RELEASE_AFTER_MS = 50
const RETRY_MS = [100, 250, 500, 1000, 2000]

/**
 * One session's connection to an endpoint: a CURVE DEALER, the `ep_hello` / `ep_welcome`
 * handshake, heartbeats both ways, batched acks, and reconnection
 * with `resume` when the endpoint falls silent (a new socket: the endpoint binds the session to
 * the new peer and resends every result not acknowledged).
 */
export class EndpointLink {
  private state: 'new' | 'connecting' | 'open' | 'lost' | 'closed' = 'new'
  private socket: Dealer | undefined
  private outbox: Outbox | undefined
  private helloWaiter: Deferred<Welcome> | undefined
  /**
   * Settled once a welcome has been taken in (opened) or given up on. The receive loop waits on it
   * after a welcome: the results the endpoint resends right behind the welcome must reach the owner
   * after its `welcomed`, which sets what it waits for (the retained count, the outstanding ids).
   */
  private welcomeTaken: Deferred<void> | undefined
  private liveness: Heartbeat<'endpoint'> | undefined
  private timer: NodeJS.Timeout | undefined
  private lastTick = Date.now()
  /** since when no endpoint answers (while lost or reconnecting) */
  private lostSince: number | undefined
  private reconnecting = false
  private lastError: Error | undefined
  private ackIds: number[] = []
  private ackTries: number[] = []
  private ackScheduled = false
  private statusRequest = 0
  private readonly statusWaiters = new Map<number, Deferred<EndpointStatus>>()
  private readonly idle: WakeSlot = {}
  private releaseTimer: NodeJS.Timeout | undefined
  /** the target of the last attempt, for errors */
  target: EndpointTarget | undefined
  welcome: Welcome | undefined

  constructor(
    private readonly options: LinkOptions,
    private readonly handlers: LinkHandlers,
  ) {}

  get connected(): boolean {
    return this.state === 'open'
  }

  /** Connects and says hello; throws EndpointNotFound, EndpointUnreachable or EndpointRefused. */
  async open(): Promise<Welcome> {
    this.state = 'connecting'
    try {
      const welcome = await this.connectOnce(this.options.resumeFirst)
      this.opened(welcome, true)
      return welcome
    } catch (error) {
      this.state = 'closed'
      throw error
    }
  }

  /** Sends `message` if connected; false otherwise (the owner resends after the next welcome). */
  send(message: EndpointClientMessage): boolean {
    if (this.state !== 'open' || !this.outbox) return false
    this.outbox.send(encodeMessage(message))
    return true
  }

  /** Acknowledges a result or failure; acks leave together at the end of the turn. */
  ack(id: number, tryNumber: number): void {
    this.ackIds.push(id)
    this.ackTries.push(tryNumber)
    if (!this.ackScheduled) {
      this.ackScheduled = true
      queueMicrotask(() => this.flushAcks())
    }
  }

  /** Work arrived while the link is lost: reconnect now rather than at the next check. */
  demand(): void {
    this.idle.wake?.()
    if (this.state === 'lost') void this.reconnect('tasks are waiting')
  }

  /** The owner has nothing outstanding: let a receive that holds the event loop end soon. */
  release(): void {
    if (this.releaseTimer || this.state !== 'open') return
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined
      // Any reply ends the waiting receive; the loop then idles without holding the event loop.
      if (!this.handlers.busy()) this.send({ t: 'status', req: ++this.statusRequest })
    }, RELEASE_AFTER_MS)
    this.releaseTimer.unref()
  }

  async status(timeoutMs = 10_000): Promise<EndpointStatus> {
    const req = ++this.statusRequest
    const waiter = deferred<EndpointStatus>()
    this.statusWaiters.set(req, waiter)
    const target = this.target
    if (!this.send({ t: 'status', req })) {
      this.statusWaiters.delete(req)
      throw new EndpointUnreachable(target?.name ?? '?', target?.address ?? '?', 'not connected; no status to ask for')
    }
    const timer = setTimeout(() => waiter.reject(new EndpointUnreachable(target!.name, target!.address, `no status reply within ${timeoutMs} ms`)), timeoutMs)
    try {
      return await waiter.promise
    } finally {
      clearTimeout(timer)
      this.statusWaiters.delete(req)
    }
  }

  /** Says `bye` (forget: the endpoint cancels queued tasks and drops retained results) and closes. */
  async close(forget: boolean): Promise<void> {
    if (this.state === 'closed') return
    this.flushAcks()
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    if (this.timer) clearInterval(this.timer)
    if (this.releaseTimer) clearTimeout(this.releaseTimer)
    if (wasOpen && this.outbox && this.socket && !this.socket.closed) {
      this.outbox.send(encodeMessage({ t: 'bye', forget }))
      // The outbox hands messages to ZeroMQ one by one; linger then lets them leave.
      const deadline = Date.now() + 1000
      while (this.outbox.backlog > 0 && Date.now() < deadline) await delay(5)
      this.socket.linger = 500
    }
    this.helloWaiter?.reject(new EndpointUnreachable(this.target?.name ?? '?', this.target?.address ?? '?', 'the client closed while saying hello'))
    this.closeProbe?.()
    this.welcomeTaken?.resolve()
    this.dropSocket()
    for (const waiter of this.statusWaiters.values()) waiter.reject(new EndpointUnreachable(this.target?.name ?? '?', this.target?.address ?? '?', 'the client closed'))
  }

  private async connectOnce(resume: boolean): Promise<Welcome> {
    const target = this.options.target()
    this.target = target
    await this.probeHandshake(target)
    const socket = this.curveDealer(target)
    const waiter = deferred<Welcome>()
    this.helloWaiter = waiter
    this.welcomeTaken?.resolve()
    const taken = deferred<void>()
    this.welcomeTaken = taken
    socket.connect(target.address)
    this.socket = socket
    this.outbox = new Outbox(socket, (error) => this.options.logger?.error(`send to endpoint ${target.name} failed`, error))
    void this.receive(socket)
    this.outbox.send(encodeMessage({ t: 'ep_hello', session: this.options.session, client: `${hostname()}:${process.pid}`, ...(resume ? { resume: true } : {}), ...stamp() }))
    const timeout = setTimeout(() => waiter.reject(this.noWelcome(target)), this.options.helloTimeoutMs)
    try {
      const welcome = await waiter.promise
      if (welcome.proto !== stamp().proto) {
        throw new EndpointRefused(target.name, `protocol ${welcome.proto} (tsflow ${welcome.version}) differs from this client's ${stamp().proto} (tsflow ${stamp().version}); use the same tsflow version on both sides`)
      }
      return welcome
    } catch (error) {
      taken.resolve()
      if (this.socket === socket) this.dropSocket()
      else if (!socket.closed) socket.close()
      throw error
    } finally {
      clearTimeout(timeout)
      this.helloWaiter = undefined
    }
  }

  private curveDealer(target: EndpointTarget): Dealer {
    const socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 })
    socket.curveServerKey = target.serverKey
    socket.curvePublicKey = this.options.keys.publicKey
    socket.curveSecretKey = this.options.keys.secretKey
    return socket
  }

  private noWelcome(target: EndpointTarget): EndpointUnreachable {
    const status = ENDPOINT_NAME.test(target.name) ? `\`npx tsflow endpoint status ${target.name}\`` : '`npx tsflow endpoint status <name>` on its host'
    return new EndpointUnreachable(
      target.name,
      target.address,
      `no welcome within ${this.options.helloTimeoutMs} ms: is it running and reachable from this host (its clientAddress, a firewall)? A wrong serverKey also fails silently: compare it with ${status}`,
    )
  }

  /**
   * A refused CURVE key is no answer the client can read: the handshake just fails, seen only in
   * the socket's monitor events. A socket of its own completes one handshake under watch and is
   * closed: a monitor must live exactly as long as its socket (closing it first stalls ZeroMQ's
   * I/O thread at the socket's next event, and an open one would keep the event loop alive).
   */
  private async probeHandshake(target: EndpointTarget): Promise<void> {
    const { socket, events } = this.watchedDealer(target)
    const outcome = deferred<void>()
    const name = ENDPOINT_NAME.test(target.name) ? target.name : '<name>'
    void (async () => {
      // receive(), not on(): on()'s own loop throws unhandled when the socket closes mid-wait.
      try {
        while (!events.closed) {
          const event = await events.receive()
          if (event.type === 'handshake') outcome.resolve()
          else if (event.type === 'handshake:error:auth') {
            const why =
              `the CURVE handshake at ${target.address} was refused (${event.error.message}): this client's key is not on the endpoint's allow-list; ` +
              `run \`npx tsflow endpoint allow ${name} ${this.options.keys.publicKey}\` on the endpoint's host`
            outcome.reject(new EndpointRefused(target.name, why))
          } else if (event.type === 'handshake:error:protocol') {
            const why = `the CURVE handshake failed (${event.error.message}): is serverKey the endpoint's public key (\`npx tsflow endpoint status ${name}\`)?`
            outcome.reject(new EndpointUnreachable(target.name, target.address, why))
          }
        }
      } catch {
        // the socket closed
      }
    })()
    const timeout = setTimeout(() => outcome.reject(this.noWelcome(target)), this.options.helloTimeoutMs)
    this.closeProbe = () => outcome.reject(new EndpointUnreachable(target.name, target.address, 'the client closed while connecting'))
    socket.connect(target.address)
    try {
      await outcome.promise
    } finally {
      clearTimeout(timeout)
      this.closeProbe = undefined
      socket.close()
    }
  }

  private closeProbe: (() => void) | undefined

  /**
   * A socket and its monitor. zeromq.js names a monitor's inproc endpoint after its socket's
   * address, and a monitor of a closed socket may still hold that name when a new socket reuses
   * the address ("Address already in use", zeromq.js #716): such a socket is set aside (kept
   * open so the next one gets another address) and another made.
   */
  private watchedDealer(target: EndpointTarget): { socket: Dealer; events: Dealer['events'] } {
    const setAside: Dealer[] = []
    try {
      for (let attempt = 0; ; attempt++) {
        const socket = this.curveDealer(target)
        try {
          return { socket, events: socket.events }
        } catch (error) {
          if (attempt >= 8 || !/already in use/i.test(String((error as Error)?.message))) {
            socket.close()
            throw error
          }
          setAside.push(socket)
        }
      }
    } finally {
      for (const socket of setAside) socket.close()
    }
  }

  private opened(welcome: Welcome, first: boolean): void {
    this.welcome = welcome
    this.state = 'open'
    this.lostSince = undefined
    this.lastError = undefined
    this.liveness = new Heartbeat({ periodMs: this.options.heartbeatPeriodMs ?? welcome.heartbeatPeriodMs, thresholdMs: welcome.heartbeatThresholdMs })
    this.liveness.beat('endpoint')
    this.lastTick = Date.now()
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.liveness.checkIntervalMs)
      this.timer.unref()
    }
    this.handlers.welcomed(welcome, first)
    this.welcomeTaken?.resolve()
  }

  private dropSocket(): void {
    const socket = this.socket
    this.socket = undefined
    this.outbox = undefined
    if (socket && !socket.closed) socket.close()
    this.idle.wake?.()
  }

  private tick(): void {
    const now = Date.now()
    const late = now - this.lastTick > 2 * (this.liveness?.checkIntervalMs ?? IDLE_POLL_MS)
    this.lastTick = now
    if (this.state === 'open' && this.liveness) {
      // A late tick means this event loop was busy: nothing could be received meanwhile, so the
      // silence says nothing about the endpoint.
      if (late) this.liveness.beat('endpoint')
      if (this.liveness.sendDue()) this.send({ t: 'heartbeat' })
      const silent = this.liveness.expired()[0]
      if (silent) void this.reconnect(`the endpoint has been silent for ${Math.round(silent.silentMs)} ms (threshold ${this.liveness.thresholdMs} ms)`)
    } else if (this.state === 'lost' && this.handlers.busy()) {
      void this.reconnect('tasks are waiting')
    }
  }

  /** A new socket and `ep_hello` with resume, retried until it works, the owner has nothing outstanding, or reconnectTimeoutMs passed. */
  private async reconnect(why: string): Promise<void> {
    if (this.reconnecting || this.state === 'closed') return
    this.reconnecting = true
    this.lostSince ??= Date.now()
    this.options.logger?.warn(`endpoint ${this.target?.name}: reconnecting: ${why}`)
    this.dropSocket()
    this.state = 'connecting'
    try {
      for (let attempt = 0; (this.state as string) !== 'closed'; attempt++) {
        try {
          const welcome = await this.connectOnce(true)
          if ((this.state as string) === 'closed') return
          this.options.logger?.info(`endpoint ${this.target?.name}: session ${this.options.session} resumed (${welcome.outstanding.length} outstanding, ${welcome.retained} retained)`)
          this.opened(welcome, false)
          return
        } catch (error) {
          if ((this.state as string) === 'closed') return
          this.lastError = error as Error
          const busy = this.handlers.busy()
          const waited = Date.now() - this.lostSince
          // Refused: no point waiting. Not found (endpoint.json gone, its pid dead) is waited out:
          // a restarted endpoint writes a new one (at a new port), and its tasks are sent again.
          const final = error instanceof EndpointRefused
          if (busy && (final || waited >= this.options.reconnectTimeoutMs)) {
            const failure = final
              ? (error as Error)
              : new EndpointUnreachable(
                  this.target?.name ?? '?',
                  this.target?.address ?? '?',
                  `unreachable for ${waited} ms (reconnectTimeoutMs ${this.options.reconnectTimeoutMs}) while tasks were outstanding; last error: ${(error as Error).message}`,
                  { cause: error },
                )
            this.options.logger?.error(failure.message)
            this.handlers.unreachable(failure)
            this.lostSince = Date.now()
          }
          if (!this.handlers.busy()) {
            // Nothing waits: reconnect when work arrives (demand) rather than keep trying.
            this.state = 'lost'
            this.lostSince = undefined
            return
          }
          // A timer that holds the event loop: tasks wait on this retry, and nothing else may be
          // left to keep the process alive (the endpoint stopped or died, its endpoint.json gone or stale).
          // The last wait ends at reconnectTimeoutMs, so tasks fail then, not up to a retry later.
          const left = this.options.reconnectTimeoutMs - (Date.now() - this.lostSince)
          const wait = Math.min(RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]!, Math.max(10, left))
          await new Promise((resolve) => setTimeout(resolve, wait))
        }
      }
    } finally {
      this.reconnecting = false
    }
  }

  /** The error that made the link lost, if any (for errors of tasks submitted meanwhile). */
  get lostReason(): Error | undefined {
    return this.lastError
  }

  private holdsLoop(): boolean {
    return this.handlers.busy() || this.state === 'connecting' || this.statusWaiters.size > 0
  }

  /**
   * The receive loop of one socket (transport/sockets.ts receiveLoop); ends when it closes or is
   * replaced. While nothing is outstanding it idles without holding the event loop, and demand()
   * wakes it.
   */
  private receive(socket: Dealer): Promise<void> {
    return receiveLoop(socket, {
      holdsLoop: () => this.holdsLoop(),
      idle: this.idle,
      onReceiveError: (error, failures) => failures % 1000 === 1 && this.options.logger?.error(`receiving from endpoint ${this.target?.name} failed (${failures} times)`, error),
      onFrames: (frames) => {
        if (socket !== this.socket) return false
        this.liveness?.beat('endpoint')
        let message: EndpointToClient
        try {
          message = decodeMessage<EndpointToClient>(frames, ENDPOINT_ACCEPTED.clientFromEndpoint)
        } catch (error) {
          this.options.logger?.warn(`dropped a bad message from endpoint ${this.target?.name}: ${(error as Error).message}`)
          return
        }
        try {
          this.handle(message)
        } catch (error) {
          this.options.logger?.error(`handling a '${message.t}' message from endpoint ${this.target?.name} failed; receiving goes on`, error)
        }
        // The owner hears of the welcome a few promise turns later (connectOnce returns, then
        // opened): what follows it waits until then.
        if (message.t === 'ep_welcome' && this.welcomeTaken) return this.welcomeTaken.promise.then(() => this.flushAcks())
        this.flushAcks()
      },
    })
  }

  private handle(message: EndpointToClient): void {
    switch (message.t) {
      case 'ep_welcome':
        this.helloWaiter?.resolve(message)
        return
      case 'refused':
        if (this.helloWaiter) {
          this.helloWaiter.reject(new EndpointRefused(this.target?.name ?? '?', message.reason))
          return
        }
        // The connection lost its session (ZeroMQ reconnected it under a new identity after a
        // network drop, or the endpoint took us for silent): say hello again at once.
        if (this.state === 'open') void this.reconnect(`the endpoint no longer knows this connection: ${message.reason}`)
        return
      case 'results': {
        if (message.dispatched) this.handlers.dispatched(message.dispatched.ids, message.dispatched.tries)
        if (message.results.length > 0) this.handlers.results(message.results)
        return
      }
      case 'failed': {
        if (message.failures.length > 0) this.handlers.failed(message.failures)
        return
      }
      case 'dispatched':
        this.handlers.dispatched(message.ids, message.tries)
        return
      case 'ep_status':
        this.statusWaiters.get(message.req)?.resolve(message.status)
        return
      case 'heartbeat':
        return
      case 'stopping':
        this.options.logger?.warn(`endpoint ${this.target?.name} is stopping: ${message.reason}`)
        this.handlers.stopping(message.reason)
        // It closes its sockets next; work submitted later reconnects (to a restarted endpoint) or fails.
        this.state = 'lost'
        this.lostSince = undefined
        this.dropSocket()
        return
    }
  }

  private flushAcks(): void {
    this.ackScheduled = false
    if (this.ackIds.length === 0) return
    // Unsent acks stay queued across a reconnect; the endpoint resends those results meanwhile.
    if (this.send({ t: 'ack', ids: this.ackIds, tries: this.ackTries })) {
      this.ackIds = []
      this.ackTries = []
    }
  }
}
