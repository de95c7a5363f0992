import { isIP } from 'node:net'
import type { MessageLike, Socket, Writable } from 'zeromq'

/**
 * Binds `socket` to `tcp://address:port` and returns the port actually bound. Port 0 (the
 * default) lets the OS choose a free port, so two runs on one node never collide and tests need
 * no fixed ports.
 */
export async function bindTcp(socket: Socket, address: string, port = 0): Promise<number> {
  const host = isIP(address) === 6 ? `[${address}]` : address
  const target = `tcp://${host}:${port === 0 ? '*' : port}`
  try {
    await socket.bind(target)
  } catch (error) {
    // ZeroMQ says only "Address already in use": name the address, which is what to change.
    const cause = error as Error & { code?: string }
    throw Object.assign(new Error(`cannot bind ${target}: ${cause.message}`, { cause }), cause.code ? { code: cause.code } : {})
  }
  const endpoint = socket.lastEndpoint
  const bound = endpoint ? portOf(endpoint) : undefined
  if (bound === undefined) throw new Error(`bound ${address}:${port} but cannot read the port from '${endpoint}'`)
  return bound
}

/** The port of a `tcp://host:port` endpoint, or undefined. */
export function portOf(endpoint: string): number | undefined {
  const match = /:(\d+)$/.exec(endpoint)
  return match ? Number(match[1]) : undefined
}

/** The endpoint a peer connects to, with IPv6 literals bracketed. */
export function tcpEndpoint(address: string, port: number): string {
  return `tcp://${isIP(address) === 6 ? `[${address}]` : address}:${port}`
}

/**
 * True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. Used to warn when
 * a port is reachable from the network without encryption.
 */
export function isLoopback(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '').toLowerCase()
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true
  if (isIP(bare) === 4) return bare.startsWith('127.')
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare)
  return mapped ? mapped[1]!.startsWith('127.') : false
}

/**
 * Sends messages on one socket strictly one after another. zeromq.js rejects a send() issued
 * while an earlier one is still waiting (EBUSY); this keeps a small queue instead, so callers
 * can fire and forget. Send failures go to `onError` and do not stop later messages.
 */
export class Outbox<M extends MessageLike[] = MessageLike[]> {
  private queue: M[] = []
  private head = 0
  private running = false

  constructor(
    private readonly socket: Writable<MessageLike[]> & { readonly closed: boolean },
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Messages waiting behind a send in progress. */
  get backlog(): number {
    return this.queue.length - this.head
  }

  send(message: M): void {
    this.queue.push(message)
    if (!this.running) void this.pump()
  }

  private async pump(): Promise<void> {
    this.running = true
    try {
      while (this.head < this.queue.length) {
        const message = this.queue[this.head]!
        this.queue[this.head++] = undefined as unknown as M
        if (this.socket.closed) continue
        try {
          await this.socket.send(message)
        } catch (error) {
          this.onError(error)
        }
      }
      this.queue = []
      this.head = 0
    } finally {
      this.running = false
    }
  }
}

/** How often an idle receive loop looks at its socket. */
export const IDLE_POLL_MS = 50

/** Where an idle receive loop leaves the function that ends its wait early (see idleUntilReadable). */
export interface WakeSlot {
  wake?: (() => void) | undefined
}

/**
 * A receive loop's wait while nothing it is owed is outstanding. A waiting ZeroMQ receive keeps
 * the event loop alive and cannot be unref'd, so instead the socket is checked on an unref'd
 * timer: the wait ends once the socket is readable or closed, once `holdsLoop()` says results are
 * owed again, or at once when the owner calls `slot.wake` (a submit).
 */
export function idleUntilReadable(socket: { readonly closed: boolean; readonly readable: boolean }, holdsLoop: () => boolean, slot: WakeSlot): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearInterval(timer)
      // Another loop's wait (a new socket's) may have taken the slot meanwhile.
      if (slot.wake === done) slot.wake = undefined
      resolve()
    }
    const timer = setInterval(() => {
      if (socket.closed || holdsLoop() || socket.readable) done()
    }, IDLE_POLL_MS)
    timer.unref()
    slot.wake = done
    if (socket.closed || holdsLoop() || socket.readable) done()
  })
}

export interface ReceiveLoopOptions {
  /** whether results are owed: then the loop waits in receive(), holding the event loop */
  holdsLoop: () => boolean
  idle: WakeSlot
  /** one message's frames; `false` ends the loop; a promise is awaited before the next receive */
  onFrames: (frames: Buffer[]) => boolean | void | Promise<void>
  /** receive() failed (not because the socket closed); `failures` counts them, from 1 */
  onReceiveError: (error: unknown, failures: number) => void
}

/**
 * A client's receive loop (the HTEX executor's, an endpoint link's): it ends only when the socket
 * closes or `onFrames` says so; a failed receive is reported and retried after 10 ms. While
 * nothing is owed it idles without holding the event loop (idleUntilReadable).
 */
export async function receiveLoop(socket: { readonly closed: boolean; readonly readable: boolean; receive(): Promise<Buffer[]> }, options: ReceiveLoopOptions): Promise<void> {
  let failures = 0
  while (!socket.closed) {
    if (!options.holdsLoop()) {
      await idleUntilReadable(socket, options.holdsLoop, options.idle)
      if (socket.closed) return
    }
    let frames: Buffer[]
    try {
      frames = await socket.receive()
    } catch (error) {
      if (socket.closed) return
      options.onReceiveError(error, ++failures)
      await new Promise((resolve) => setTimeout(resolve, 10))
      continue
    }
    const handled = options.onFrames(frames)
    if (handled === false) return
    if (handled) await handled
  }
}
