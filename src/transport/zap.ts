import { Router } from 'zeromq'
import type { Context } from 'zeromq'

/**
 * A ZAP (ZeroMQ authentication protocol, RFC 27) handler admitting only CURVE peers whose public
 * key is in an allow-list. Without it a CURVE server encrypts but lets in anyone who knows its
 * public key; with it, joining the executor's network needs the client secret key.
 *
 * libzmq asks the handler bound at `inproc://zeromq.zap.01` of the server socket's context, so
 * each interchange gives its sockets a context of its own: two interchanges in one process (a
 * benchmark) then never answer for each other.
 */
export interface ZapDecision {
  allowed: boolean
  address: string
  mechanism: string
  reason: string
  /** the ZAP domain of the socket asked about (one handler serves every socket of a context) */
  domain: string
  /** the peer's CURVE public key as z85 text, when it presented one */
  publicKey?: string
}

/** The keys admitted on the sockets of one ZAP domain, asked at every handshake (so the list may change). */
export type ZapAllowList = (domain: string) => readonly Buffer[]

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01'

export class ZapHandler {
  private readonly socket: Router
  private readonly allowed: ZapAllowList

  /** `allowedPublicKeys`: z85 keys admitted on every domain, or a list asked per domain at each handshake. */
  constructor(
    context: Context,
    allowedPublicKeys: readonly string[] | ZapAllowList,
    private readonly onDecision: (decision: ZapDecision) => void = () => {},
  ) {
    this.socket = new Router({ context, linger: 0 })
    if (typeof allowedPublicKeys === 'function') {
      this.allowed = allowedPublicKeys
    } else {
      const fixed = allowedPublicKeys.map(z85Decode)
      this.allowed = () => fixed
    }
  }

  async start(): Promise<void> {
    await this.socket.bind(ZAP_ENDPOINT)
    void this.loop()
  }

  close(): void {
    if (!this.socket.closed) this.socket.close()
  }

  private async loop(): Promise<void> {
    while (!this.socket.closed) {
      let frames: Buffer[]
      try {
        frames = await this.socket.receive()
      } catch {
        return // closed
      }
      // [routing id, empty delimiter, version, request id, domain, address, identity, mechanism, credentials...]
      const [peer, delimiter, version, requestId, domain, address, , mechanism, key] = frames
      if (!peer || !delimiter || !version || !requestId) continue
      const decision = this.decide(domain?.toString() ?? '', address?.toString() ?? '?', mechanism?.toString() ?? '?', key)
      this.onDecision(decision)
      const status = decision.allowed ? '200' : '400'
      try {
        await this.socket.send([peer, delimiter, '1.0', requestId, status, decision.reason, '', ''])
      } catch {
        return
      }
    }
  }

  private decide(domain: string, address: string, mechanism: string, key: Buffer | undefined): ZapDecision {
    if (mechanism !== 'CURVE') return { allowed: false, address, mechanism, domain, reason: 'only CURVE peers are admitted' }
    const publicKey = key?.length === 32 ? z85Encode(key) : undefined
    let allowed: readonly Buffer[]
    try {
      allowed = this.allowed(domain)
    } catch {
      allowed = [] // an allow-list that cannot be read admits nobody
    }
    if (!key || !allowed.some((entry) => entry.equals(key))) {
      return { allowed: false, address, mechanism, domain, reason: 'unknown client key', ...(publicKey ? { publicKey } : {}) }
    }
    return { allowed: true, address, mechanism, domain, reason: 'OK', ...(publicKey ? { publicKey } : {}) }
  }
}

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'
const Z85_VALUE = new Map([...Z85_ALPHABET].map((char, index) => [char, index]))

/** Encodes bytes (a multiple of 4) as Z85 text (ZeroMQ RFC 32), as CURVE keys are written. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new Error(`z85 needs a multiple of 4 bytes, got ${bytes.length}`)
  let out = ''
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < bytes.length; i += 4) {
    let word = view.getUint32(i)
    let group = ''
    for (let j = 0; j < 5; j++) {
      group = Z85_ALPHABET[word % 85]! + group
      word = Math.floor(word / 85)
    }
    out += group
  }
  return out
}

/** Decodes Z85 text (ZeroMQ RFC 32) to bytes: every 5 characters are one big-endian 32-bit word. */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) throw new Error(`z85 text must have a multiple of 5 characters, got ${text.length}`)
  const out = Buffer.alloc((text.length / 5) * 4)
  for (let i = 0; i < text.length; i += 5) {
    let word = 0
    for (let j = 0; j < 5; j++) {
      const value = Z85_VALUE.get(text[i + j]!)
      if (value === undefined) throw new Error(`'${text[i + j]}' is not a z85 character`)
      word = word * 85 + value
    }
    out.writeUInt32BE(word, (i / 5) * 4)
  }
  return out
}
