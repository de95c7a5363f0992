// The serving side of the zmq peer connector (zmq.ts): one ROUTER socket per owning connector
// answers get/put/exists/evict for the objects this process keeps in memory.
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import type * as Zmq from 'zeromq'
import { ConnectorError } from '../errors.js'
import { Outbox, portOf, tcpEndpoint } from '../transport/sockets.js'

/**
 * The zeromq module, loaded on first use: importing `tsflow/proxy` (workers do) must not load a
 * native addon that only zmq connectors need. Sync (createRequire), because `newKey()` is sync
 * and must start the server to know the endpoint it advertises.
 */
let zmqModule: typeof Zmq | undefined
export function zeromq(): typeof Zmq {
  return (zmqModule ??= createRequire(import.meta.url)('zeromq') as typeof Zmq)
}

// Wire format. A request is [requestId, op, keyId, payload?], a reply [requestId, status,
// payload?]; the ROUTER adds and strips the reader's routing id in front. `op` is two bytes,
// [WIRE_VERSION, op letter], so a peer of another release is told, not misread.
export const WIRE_VERSION = 1
export const Op = { get: 0x67, put: 0x70, exists: 0x65, evict: 0x78 } as const
export const Status = { ok: 0, missing: 1, failed: 2 } as const

// The servers running in this process (or thread) by endpoint: a key owned by any of them is
// read from memory, not over a socket, whichever connector instance holds the key.
const servers = new Map<string, ObjectServer>()

// Endpoints of servers this process closed: asking them would only wait for the timeout.
const closedHere = new Set<string>()

export function localServer(endpoint: string): ObjectServer | undefined {
  return servers.get(endpoint)
}

/** whether `endpoint` was served by a connector of this process that has been closed since */
export function closedLocally(endpoint: string): boolean {
  return closedHere.has(endpoint)
}

/** Objects of this process, served to peers over one ROUTER socket bound at `endpoint`. */
export class ObjectServer {
  readonly endpoint: string
  readonly objects = new Map<string, Uint8Array>()
  private readonly socket: Zmq.Router
  private readonly outbox: Outbox
  private closed = false

  /** the CURVE public key readers must know (it travels in the keys), when encrypting */
  readonly publicKey: string | undefined

  /**
   * Binds `tcp://address:port` (port 0: any free port) synchronously; ConnectorError naming
   * `label` if it cannot. `encrypt`: CURVE with a key pair made now, for this server only.
   */
  constructor(address: string, port: number, label: string, encrypt = false) {
    const { Router, curveKeyPair } = zeromq()
    // linger 0: closing drops unsent replies instead of holding the process; no high-water marks,
    // so a burst of requests is queued rather than dropped by the ROUTER.
    const socket = new Router({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 })
    if (encrypt) {
      // Any reader may connect (no ZAP handler): what it can reach is decided by the keys it
      // holds; CURVE keeps those keys and the objects from eavesdroppers and proves the owner.
      const pair = curveKeyPair()
      socket.curveServer = true
      socket.curvePublicKey = pair.publicKey
      socket.curveSecretKey = pair.secretKey
      this.publicKey = pair.publicKey
    }
    if (isIP(address) === 6) socket.ipv6 = true
    const host = isIP(address) === 6 ? `[${address}]` : address
    try {
      socket.bindSync(`tcp://${host}:${port === 0 ? '*' : port}`)
    } catch (error) {
      socket.close()
      throw new ConnectorError(label, `cannot listen on ${tcpEndpoint(address, port)} to serve this process's objects: ${(error as Error).message}`, {
        cause: error,
      })
    }
    const bound = socket.lastEndpoint ? portOf(socket.lastEndpoint) : undefined
    if (bound === undefined) {
      socket.close()
      throw new ConnectorError(label, `bound ${tcpEndpoint(address, port)} but cannot read the port from '${socket.lastEndpoint}'`)
    }
    this.socket = socket
    this.endpoint = tcpEndpoint(address, bound)
    this.outbox = new Outbox(socket, () => {
      // A reply to a reader that left is dropped by the ROUTER; other send errors mean the
      // socket closed under us. Either way the reader's own timeout reports it.
    })
    servers.set(this.endpoint, this)
    closedHere.delete(this.endpoint)
    void this.serve()
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.socket) this.answer(frames)
    } catch (error) {
      if (!this.closed) process.emitWarning(`zmq object server ${this.endpoint} stopped: ${(error as Error).message}`)
    }
  }

  private answer(frames: Buffer[]): void {
    const [routing, requestId, op, id, payload] = frames
    if (!routing || !requestId || !op || !id) return // not ours: nothing to answer to
    const reply = (status: number, body?: Uint8Array) => this.outbox.send(body === undefined ? [routing, requestId, Uint8Array.of(status)] : [routing, requestId, Uint8Array.of(status), body])
    if (op.length !== 2 || op[0] !== WIRE_VERSION) {
      reply(Status.failed, Buffer.from(`the owner speaks zmq connector wire version ${WIRE_VERSION}, the request another (${op[0]}); use one tsflow release on all nodes`))
      return
    }
    const key = id.toString('utf8')
    switch (op[1]) {
      case Op.get: {
        const bytes = this.objects.get(key)
        // Sent as one frame; zeromq sends buffers over 128 bytes without copying them.
        return bytes ? reply(Status.ok, bytes) : reply(Status.missing)
      }
      case Op.put:
        // The received frame is a fresh buffer nobody else holds: kept as it is, no copy.
        this.objects.set(key, payload ?? new Uint8Array(0))
        return reply(Status.ok)
      case Op.exists:
        return reply(Status.ok, Uint8Array.of(this.objects.has(key) ? 1 : 0))
      case Op.evict:
        this.objects.delete(key)
        return reply(Status.ok)
      default:
        return reply(Status.failed, Buffer.from(`unknown operation ${op[1]}`))
    }
  }

  /** Stops serving: the socket closes and the objects this process owned are dropped. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (servers.get(this.endpoint) === this) servers.delete(this.endpoint)
    closedHere.add(this.endpoint)
    this.objects.clear()
    this.socket.close()
  }
}
