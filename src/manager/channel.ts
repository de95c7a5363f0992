/**
 * The manager's ZeroMQ DEALER to the interchange. Sending is pull-based: while one send is in
 * progress, results keep accumulating in the scheduler, and the next send takes all of them,
 * so under load messages grow instead of queueing up one per event.
 */
import { Dealer } from 'zeromq'
import { applyCurve, type ClientCurveKeys } from '../transport/curve.js'

export interface ChannelOptions {
  endpoint: string
  routingId: string
  curve?: ClientCurveKeys
  /** the next message (its frames) to send, or undefined when there is nothing */
  next: () => Uint8Array[] | undefined
  /** one message: a header frame and its payload frames */
  onMessage: (frames: Buffer[]) => void
  onError: (error: unknown) => void
  /**
   * The connection dropped and did not come back within `lostAfterMs()` ms: the interchange
   * process is gone (a live one is reconnected to within ZeroMQ's 100 ms reconnect interval).
   */
  onLost?: (disconnectedForMs: number) => void
  lostAfterMs?: () => number
}

export class Channel {
  private readonly socket: Dealer
  private sending = false
  private closed = false
  private idleWaiters: (() => void)[] = []
  private lostTimer: NodeJS.Timeout | undefined
  private connectedOnce = false

  /** True once the socket has connected at least once. */
  get everConnected(): boolean {
    return this.connectedOnce
  }

  constructor(private readonly options: ChannelOptions) {
    this.socket = new Dealer({
      routingId: options.routingId,
      // Pending messages get this long to leave when we close; shutdown paths lower it.
      linger: 2000,
    })
    if (options.curve) applyCurve(this.socket, options.curve)
  }

  open(): void {
    if (this.options.onLost) this.watchConnection(this.options.onLost)
    this.socket.connect(this.options.endpoint)
    void this.receive()
  }

  private watchConnection(onLost: (ms: number) => void): void {
    const events = this.socket.events
    const startTimer = (ms: number) => {
      if (this.closed || this.lostTimer) return
      const since = Date.now()
      this.lostTimer = setTimeout(() => {
        this.lostTimer = undefined
        if (!this.closed) onLost(Date.now() - since)
      }, ms)
    }
    events.on('connect', () => {
      this.connectedOnce = true
      clearTimeout(this.lostTimer)
      this.lostTimer = undefined
    })
    events.on('disconnect', () => startTimer(this.options.lostAfterMs?.() ?? 1000))
    // Never connected and refused: the interchange is already gone (it listens before any
    // manager is started). A little more patience than for a drop, for slow networks.
    events.on('connect:retry', () => {
      if (!this.connectedOnce) startTimer(4 * (this.options.lostAfterMs?.() ?? 1000))
    })
  }

  /** Sends whatever `next` yields, unless a send loop is already running (it will pick it up). */
  kick(): void {
    if (this.sending || this.closed) return
    void this.sendLoop()
  }

  /** Resolves once nothing is left to send, or after `ms`. */
  async idle(ms: number): Promise<void> {
    if (!this.sending || this.closed) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.idleWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  close(lingerMs: number): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.lostTimer)
    this.socket.linger = lingerMs
    this.socket.close()
    this.wakeIdle()
  }

  private async sendLoop(): Promise<void> {
    this.sending = true
    try {
      for (let frame = this.options.next(); frame && !this.closed; frame = this.options.next()) {
        await this.socket.send(frame)
      }
    } catch (error) {
      if (!this.closed) this.options.onError(error)
    } finally {
      this.sending = false
      this.wakeIdle()
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const wake of waiters) wake()
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        // A leading empty frame (a REQ-style delimiter) carries nothing.
        this.options.onMessage(frames[0]?.length === 0 ? frames.slice(1) : frames)
      }
    } catch (error) {
      if (!this.closed) this.options.onError(error)
    }
  }
}
