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
}

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01'

export class ZapHandler {
  private readonly socket: Router
  private readonly allowed: Buffer[]

  constructor(
    context: Context,
    allowedPublicKeys: readonly string[],
    private readonly onDecision: (decision: ZapDecision) => void = () => {},
  ) {
    this.socket = new Router({ context, linger: 0 })
    this.allowed = allowedPublicKeys.map(z85Decode)
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
      const [peer, delimiter, version, requestId, , address, , mechanism, key] = frames
      if (!peer || !delimiter || !version || !requestId) continue
      const decision = this.decide(address?.toString() ?? '?', mechanism?.toString() ?? '?', key)
      this.onDecision(decision)
      const status = decision.allowed ? '200' : '400'
      try {
        await this.socket.send([peer, delimiter, '1.0', requestId, status, decision.reason, '', ''])
      } catch {
        return
      }
    }
  }

  private decide(address: string, mechanism: string, key: Buffer | undefined): ZapDecision {
    if (mechanism !== 'CURVE') return { allowed: false, address, mechanism, reason: 'only CURVE peers are admitted' }
    if (!key || !this.allowed.some((allowed) => allowed.equals(key))) {
      return { allowed: false, address, mechanism, reason: 'unknown client key' }
    }
    return { allowed: true, address, mechanism, reason: 'OK' }
  }
}

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'
const Z85_VALUE = new Map([...Z85_ALPHABET].map((char, index) => [char, index]))

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
