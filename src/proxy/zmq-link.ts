// The reading side of the zmq peer connector: one DEALER per owner endpoint, reused, with
// concurrent requests told apart by a request id, each bounded by the connector's timeout.
import { isMainThread } from 'node:worker_threads'
import type * as Zmq from 'zeromq'
import { ConnectorError } from '../errors.js'
import { Outbox } from '../transport/sockets.js'
import { Op, Status, WIRE_VERSION, zeromq } from './zmq-server.js'

export interface Reply {
  status: number
  payload: Buffer | undefined
}

interface Pending {
  resolve(reply: Reply): void
  reject(error: Error): void
  timer: NodeJS.Timeout
  /** replies the link had received when this request was sent */
  heardBefore: number
}

export type OpName = keyof typeof Op

/** how long a link to an owner stays open with no request waiting */
export const LINK_IDLE_MS = 1000

/** The connector label errors about an owner carry: `zmq(tcp://host:port)`. */
export const ownerLabel = (endpoint: string) => `zmq(${endpoint})`

/**
 * Requests to one owner. A request that gets no answer within `timeoutMs` fails with a
 * ConnectorError naming the owner; if nothing at all came back from the owner since it was sent,
 * the owner is taken as unreachable: the socket is closed (dropping what it queued) and every
 * request waiting on it fails too. A dropped connection (owner process ended) fails the waiting
 * requests at once.
 */
export class OwnerLink {
  private readonly socket: Zmq.Dealer
  private readonly outbox: Outbox
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private heard = 0
  private receiving = false
  private idleTimer: NodeJS.Timeout | undefined
  private dead: Error | undefined

  constructor(
    readonly endpoint: string,
    private readonly timeoutMs: number,
    /** called once when the link gives up, so the connector makes a fresh one next time */
    private readonly onDead: (link: OwnerLink) => void,
    /** the owner's CURVE public key (from the object key) and this reader's key pair, when the owner encrypts */
    curve?: { serverKey: string; publicKey: string; secretKey: string },
  ) {
    const { Dealer } = zeromq()
    this.socket = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0, reconnectInterval: 100, reconnectMaxInterval: 1000 })
    if (endpoint.startsWith('tcp://[')) this.socket.ipv6 = true
    if (curve) {
      this.socket.curveServerKey = curve.serverKey
      this.socket.curvePublicKey = curve.publicKey
      this.socket.curveSecretKey = curve.secretKey
    }
    // A connection that was up and dropped: the owner's process ended or closed its connector.
    // Its answers to what we asked before can no longer come. The monitor behind `events` keeps
    // the process alive while the socket is open (hence the idle close below), and a pool thread
    // that is blocked or terminated before the monitor wound down aborts the process, so worker
    // threads go without it and rely on the timeout.
    if (isMainThread) {
      // A connection dropped before its handshake completed: either the owner refused it (an
      // owner with encrypt: true and a key without its pk, or a pk that is not the owner's) or
      // the owner was ending just then; the socket cannot tell which, so the error says both.
      let greeted = false
      const hint = curve ? "the key's owner public key (pk) is not this owner's" : 'the owner encrypts (encrypt: true) and the key has no owner public key (pk)'
      const refused = (detail: string) => new ConnectorError(ownerLabel(endpoint), `the owner refused the connection handshake (${detail}): ${hint}`)
      const dropped = (detail: string) =>
        new ConnectorError(ownerLabel(endpoint), `the connection to the owner was dropped during its handshake (${detail}): the owner's process may be ending, or ${hint}`)
      const events = this.socket.events
      events.on('handshake', () => (greeted = true))
      events.on('handshake:error:protocol', (event) => this.fail(refused(event.error.message)))
      events.on('handshake:error:auth', (event) => this.fail(refused(event.error.message)))
      events.on('handshake:error:other', (event) => this.fail(dropped(event.error.message)))
      events.on('disconnect', () =>
        this.fail(greeted ? new ConnectorError(ownerLabel(endpoint), 'the owner closed the connection (its process ended or closed its connector)') : dropped('disconnected')),
      )
    }
    this.socket.connect(endpoint)
    this.outbox = new Outbox(this.socket, (error) => this.fail(new ConnectorError(ownerLabel(endpoint), `cannot send to the owner: ${(error as Error).message}`, { cause: error })))
  }

  get closed(): boolean {
    return this.dead !== undefined
  }

  // Receives only while requests wait: an idle link has no read in progress that would keep the
  // process alive (a reader need not close its connector for its process to exit).
  private async receive(): Promise<void> {
    this.receiving = true
    try {
      while (this.pending.size > 0 && !this.dead) {
        const [requestId, status, payload] = await this.socket.receive()
        this.heard++
        if (!requestId || requestId.length !== 4 || !status) continue
        const id = requestId.readUInt32BE(0)
        const waiting = this.pending.get(id)
        if (!waiting) continue // answered after its timeout: dropped
        this.pending.delete(id)
        clearTimeout(waiting.timer)
        waiting.resolve({ status: status[0]!, payload })
        if (this.pending.size === 0) this.idle()
      }
    } catch (error) {
      if (!this.dead) this.fail(new ConnectorError(ownerLabel(this.endpoint), `receiving from the owner failed: ${(error as Error).message}`, { cause: error }))
    } finally {
      this.receiving = false
    }
  }

  /** Sends one request; resolves to the owner's reply, rejects with a ConnectorError naming the owner. */
  request(op: OpName, keyId: string, what: string, payload?: Uint8Array): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead)
    const id = this.nextId
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1
    const requestId = Buffer.allocUnsafe(4)
    requestId.writeUInt32BE(id, 0)
    clearTimeout(this.idleTimer)
    return new Promise<Reply>((resolve, reject) => {
      const heardBefore = this.heard
      const timer = setTimeout(() => this.expire(id, what), this.timeoutMs)
      this.pending.set(id, { resolve, reject, timer, heardBefore })
      const frames: Uint8Array[] = [requestId, Uint8Array.of(WIRE_VERSION, Op[op]), Buffer.from(keyId, 'utf8')]
      if (payload !== undefined) frames.push(payload)
      this.outbox.send(frames)
      if (!this.receiving) void this.receive()
    })
  }

  /**
   * No request waits: close the link after LINK_IDLE_MS unless one comes, so a reader that never
   * closes its connector still lets its process exit (the socket's monitor would keep it alive).
   */
  private idle(): void {
    clearTimeout(this.idleTimer)
    // A pool thread may be blocked or terminated right after its task, and a socket left open
    // then is never closed: there, close as soon as nothing waits.
    if (!isMainThread) return this.close('closed after its last request (worker thread)')
    this.idleTimer = setTimeout(() => {
      if (this.pending.size === 0) this.close('closed after being idle')
    }, LINK_IDLE_MS)
    this.idleTimer.unref()
  }

  private expire(id: number, what: string): void {
    const waiting = this.pending.get(id)
    if (!waiting) return
    this.pending.delete(id)
    const error = new ConnectorError(
      ownerLabel(this.endpoint),
      `no answer from the owner within ${this.timeoutMs} ms (${what}); the process that stored the object may have ended, ` +
        `or ${this.endpoint} is not reachable from here (check the connector's address/interface option); timeoutMs sets this bound`,
    )
    waiting.reject(error)
    // Silence since the send: the owner is gone or unreachable, so stop queueing to it. And a
    // link left with a read in progress but nothing to wait for is closed, so that read does not
    // keep the process alive; the next request opens a fresh link.
    if (this.heard === waiting.heardBefore || this.pending.size === 0) this.fail(error)
  }

  /** Fails every waiting request with `error` and closes the socket; later requests get the same error. */
  fail(error: Error): void {
    if (this.dead) return
    this.dead = error
    clearTimeout(this.idleTimer)
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id)
      clearTimeout(waiting.timer)
      waiting.reject(error)
    }
    this.socket.close()
    this.onDead(this)
  }

  close(reason: string): void {
    this.fail(new ConnectorError(ownerLabel(this.endpoint), reason))
  }
}

export function replyError(endpoint: string, reply: Reply, what: string): ConnectorError {
  const detail = reply.payload ? reply.payload.toString('utf8') : `status ${reply.status}`
  return new ConnectorError(ownerLabel(endpoint), `the owner refused ${what}: ${detail}`)
}

export { Status }
