/**
 * A lean RESP2 client for the DDict's connections to its Redis servers (see connection.ts for why
 * not node-redis: measured figures). One TCP socket, commands pipelined: each is queued FIFO with
 * its resolvers and written at once, replies resolve them in order. Bulk strings come back as
 * Buffers; simple strings as strings, integers as numbers, nil as null, arrays as arrays; error
 * replies reject with ReplyError (the server's message kept as is).
 *
 * The costs that matter for large values: a Buffer argument is written as its own chunk (the socket
 * is corked, header / payload / CRLF go out as one writev), never copied into a command buffer; a
 * large bulk reply is allocated once at its exact size (Buffer.allocUnsafeSlow: byteOffset 0, so a
 * payload after the DDict's 8-byte header stays aligned for zero-copy typed arrays) and each socket
 * chunk is copied into it as it arrives: one copy, no chunk list, no concat.
 *
 * A transport failure (close, reset, the caller's destroy) fails every pending command at once
 * with RespTransportError, and the client stays closed: the owner (Connection) reconnects.
 */
import { connect, type Socket } from 'node:net'

/** An error reply of the server (`-ERR ...`, OOM, NOSCRIPT, WRONGTYPE, our scripts' refusals). */
export class ReplyError extends Error {
  override name = 'ReplyError'
}

/** The connection failed (refused, reset, closed, timed out): no reply will come. */
export class RespTransportError extends Error {
  override name = 'RespTransportError'
}

/** The connect (and AUTH) did not finish within connectTimeoutMs. */
export class RespConnectTimeout extends RespTransportError {
  override name = 'RespConnectTimeout'
}

export type RespValue = string | number | null | Buffer | ReplyError | RespValue[]

/** Bulk strings at least this long are allocated on their own (byteOffset 0) and filled chunk by chunk. */
export const LARGE_BULK = 32 * 1024

const CR = 13
const LF = 10

interface Frame {
  items: RespValue[]
  filled: number
}

/**
 * A streaming RESP2 reply parser: feed it socket chunks in any cut; it calls `onReply` once per
 * complete top-level reply. It never keeps a view into a chunk (the caller may reuse it).
 */
export class RespParser {
  /** the start of a header line cut by the chunk's end (copied) */
  private partial: Buffer | undefined
  /** a bulk string being filled across chunks, and how much of it is there */
  private bulk: Buffer | undefined
  private bulkFilled = 0
  /** bytes of a CRLF still to skip after a bulk string */
  private skip = 0
  private readonly stack: Frame[] = []

  constructor(private readonly onReply: (reply: RespValue) => void) {}

  feed(chunk: Buffer): void {
    const end = chunk.length
    let pos = 0
    while (pos < end) {
      if (this.bulk !== undefined) {
        const n = Math.min(this.bulk.length - this.bulkFilled, end - pos)
        chunk.copy(this.bulk, this.bulkFilled, pos, pos + n)
        this.bulkFilled += n
        pos += n
        if (this.bulkFilled < this.bulk.length) return
        const value = this.bulk
        this.bulk = undefined
        this.skip = 2
        this.value(value)
        continue
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - pos)
        pos += n
        this.skip -= n
        continue
      }
      const nl = chunk.indexOf(LF, pos)
      if (nl < 0) {
        const rest = Buffer.from(chunk.subarray(pos))
        this.partial = this.partial ? Buffer.concat([this.partial, rest]) : rest
        return
      }
      let line: Buffer
      let start: number
      let stop: number // the CR's index
      if (this.partial) {
        line = Buffer.concat([this.partial, chunk.subarray(pos, nl + 1)])
        this.partial = undefined
        start = 0
        stop = line.length - 2
      } else {
        line = chunk
        start = pos
        stop = nl - 1
      }
      pos = nl + 1
      if (stop < start || line[stop] !== CR) throw new Error(`RESP protocol error: a line without CRLF (${JSON.stringify(line.toString('latin1', start, stop + 2).slice(0, 80))})`)
      const type = line[start]
      switch (type) {
        case 0x2b: // + simple string
          this.value(line.toString('utf8', start + 1, stop))
          break
        case 0x2d: // - error
          this.value(new ReplyError(line.toString('utf8', start + 1, stop)))
          break
        case 0x3a: // : integer
          this.value(integer(line, start + 1, stop))
          break
        case 0x24: {
          // $ bulk string
          const length = integer(line, start + 1, stop)
          if (length < 0) {
            this.value(null)
          } else if (line === chunk && pos + length + 2 <= end && length < LARGE_BULK) {
            const value = Buffer.allocUnsafe(length)
            chunk.copy(value, 0, pos, pos + length)
            pos += length + 2
            this.value(value)
          } else {
            this.bulk = length >= LARGE_BULK ? Buffer.allocUnsafeSlow(length) : Buffer.allocUnsafe(length)
            this.bulkFilled = 0
            if (length === 0) {
              this.bulk = undefined
              this.skip = 2
              this.value(Buffer.alloc(0))
            }
          }
          break
        }
        case 0x2a: {
          // * array
          const length = integer(line, start + 1, stop)
          if (length < 0) this.value(null)
          else if (length === 0) this.value([])
          else this.stack.push({ items: new Array<RespValue>(length), filled: 0 })
          break
        }
        default:
          throw new Error(`RESP protocol error: unknown reply type ${JSON.stringify(String.fromCharCode(type ?? 0))}`)
      }
    }
  }

  /** A complete value: into the array under construction, or out as a reply. */
  private value(value: RespValue): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1]
      if (top === undefined) {
        this.onReply(value)
        return
      }
      top.items[top.filled++] = value
      if (top.filled < top.items.length) return
      this.stack.pop()
      value = top.items
    }
  }
}

function integer(line: Buffer, from: number, to: number): number {
  let negative = false
  let i = from
  if (line[i] === 0x2d) {
    negative = true
    i++
  }
  let n = 0
  if (to - i > 15) {
    n = Number(line.toString('latin1', i, to)) // beyond 2^53: as node-redis, a (rounded) number
  } else {
    for (; i < to; i++) {
      const d = line[i]! - 48
      if (d < 0 || d > 9) throw new Error(`RESP protocol error: bad integer ${JSON.stringify(line.toString('latin1', from, to))}`)
      n = n * 10 + d
    }
  }
  return negative ? -n : n
}

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  /** a SUBSCRIBE/UNSUBSCRIBE: its confirmation, not a message, answers it */
  pubsub: boolean
}

export interface RespClientOptions {
  host: string
  port: number
  /** sent with AUTH first, before any command */
  password?: string
  /** the connect and AUTH fail with RespConnectTimeout after this long (none: unbounded) */
  connectTimeoutMs?: number
}

export type MessageListener = (message: Buffer, channel: string) => void

/** The socket's read buffer (reused for every read) */
const READ_BUFFER = 256 * 1024

/** Arguments up to this size are merged into the command's one buffer; larger ones are written as they are. */
const INLINE_ARG = 16 * 1024

export class RespClient {
  readonly address: string
  /** resolves once connected (and authenticated); rejects with the cause otherwise */
  readonly ready: Promise<void>
  /** called once when the connection is gone (with the cause), whoever ended it */
  onClose: ((cause: string) => void) | undefined
  private readonly socket: Socket
  private readonly parser: RespParser
  private queue: Pending[] = []
  private head = 0
  private open = true
  private connected = false
  private ending = false
  private readonly closed: Promise<void>
  private readonly channels = new Map<string, MessageListener>()
  /** SUBSCRIBE sent: other commands are refused until every channel is unsubscribed */
  private subscribeMode = false
  /** commands encoded this turn, written together on the next tick */
  private out: (string | Buffer)[] = []
  private outBytes = 0
  private flushScheduled = false
  private rejectReady: ((error: Error) => void) | undefined

  constructor(options: RespClientOptions) {
    this.address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`
    this.parser = new RespParser((reply) => this.reply(reply))
    // Reads land in one buffer of this client's, reused for every read (the parser copies out of
    // it): no 64 KB allocation per read, which on 4 MiB replies cost more in GC than the copy.
    const socket = (this.socket = connect({
      host: options.host,
      port: options.port,
      onread: {
        buffer: Buffer.allocUnsafeSlow(READ_BUFFER),
        callback: (bytes: number, buffer: Uint8Array) => {
          try {
            this.parser.feed((buffer as Buffer).subarray(0, bytes))
          } catch (error) {
            this.destroy((error as Error).message)
          }
          return true
        },
      },
    }))
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 10_000)
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    let timer: NodeJS.Timeout | undefined
    this.ready = new Promise<void>((resolve, reject) => {
      this.rejectReady = reject
      const fail = (error: Error) => {
        reject(error)
        this.destroy(error.message)
      }
      if (options.connectTimeoutMs !== undefined) {
        timer = setTimeout(
          () => fail(new RespConnectTimeout(`no connection to ${this.address} within ${options.connectTimeoutMs} ms`)),
          options.connectTimeoutMs,
        ) // ref'd: while it connects, an unref'd client's process stays up for the answer
      }
      socket.once('connect', () => {
        this.connected = true
        if (!options.password) return resolve()
        this.sendCommand(['AUTH', options.password]).then(
          () => resolve(),
          (error: Error) =>
            fail(
              error instanceof ReplyError
                ? new ReplyError(`authentication failed at ${this.address} (${error.message}): the password does not match the server's requirepass`)
                : error,
            ),
        )
      })
    }).finally(() => {
      clearTimeout(timer)
      this.rejectReady = undefined
    })
    this.ready.catch(() => {})
    socket.on('error', (error) => this.shut(error.message))
    socket.on('close', () => this.shut('connection closed'))
  }

  get isOpen(): boolean {
    return this.open
  }

  /** Sends one command; its reply (or ReplyError) in order with every other. */
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T> {
    if (this.subscribeMode) {
      return Promise.reject(new Error(`${String(args[0])} refused: this connection to ${this.address} is in subscribe mode (only SUBSCRIBE/UNSUBSCRIBE)`))
    }
    return this.send(args, false) as Promise<T>
  }

  private send(args: ReadonlyArray<string | Buffer>, pubsub: boolean): Promise<unknown> {
    if (!this.open || this.ending) return Promise.reject(new RespTransportError(`connection to ${this.address} is closed`))
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject, pubsub })
      this.encode(args)
    })
  }

  private encode(args: ReadonlyArray<string | Buffer>): void {
    let text = `*${args.length}\r\n`
    for (const arg of args) {
      if (typeof arg === 'string') {
        text += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`
      } else {
        text += `$${arg.length}\r\n`
        this.push(text)
        this.push(arg)
        text = '\r\n'
      }
    }
    this.push(text)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(() => this.flush())
    }
  }

  private push(part: string | Buffer): void {
    this.out.push(part)
    this.outBytes += typeof part === 'string' ? part.length * 3 : part.length
  }

  /**
   * Writes what this turn's commands encoded: small parts merged into one buffer, large Buffer
   * arguments as their own chunks of one corked write (writev), so they are never copied.
   */
  private flush(): void {
    this.flushScheduled = false
    const parts = this.out
    this.out = []
    const bytes = this.outBytes
    this.outBytes = 0
    if (!this.open || parts.length === 0) return
    const socket = this.socket
    if (parts.length === 1) {
      socket.write(parts[0]!)
      return
    }
    if (bytes <= 4 * INLINE_ARG) {
      socket.write(merge(parts, 0, parts.length))
      return
    }
    socket.cork()
    let from = 0
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!
      if (typeof part === 'string' || part.length <= INLINE_ARG) continue
      if (i > from) socket.write(merge(parts, from, i))
      socket.write(part)
      from = i + 1
    }
    if (from < parts.length) socket.write(merge(parts, from, parts.length))
    socket.uncork()
  }

  private reply(reply: RespValue): void {
    if (this.subscribeMode && Array.isArray(reply) && this.isMessage(reply)) return
    const pending = this.queue[this.head]
    if (pending === undefined) {
      this.destroy(`RESP protocol error: a reply with no command waiting for it`)
      return
    }
    this.queue[this.head++] = undefined as unknown as Pending
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    if (reply instanceof ReplyError) pending.reject(reply)
    else pending.resolve(reply)
    if (this.ending && this.head === this.queue.length) this.socket.end()
  }

  /** A pub/sub message (delivered to its channel's listener), or a confirmation (false). */
  private isMessage(reply: RespValue[]): boolean {
    const head = this.queue[this.head]
    if (head !== undefined && !head.pubsub) return false // a reply of a command sent before SUBSCRIBE
    const kind = reply[0]
    if (!Buffer.isBuffer(kind)) return false
    const name = kind.toString('latin1')
    if (name === 'message' && reply.length === 3) {
      const channel = (reply[1] as Buffer).toString()
      const listener = this.channels.get(channel)
      if (listener) {
        try {
          listener(reply[2] as Buffer, channel)
        } catch {
          // a listener's failure is its own; the connection goes on
        }
      }
      return true
    }
    if (name === 'unsubscribe' && reply[2] === 0) {
      // No channel left: normal commands again, unless a SUBSCRIBE is already on its way.
      this.subscribeMode = this.channels.size > 0
    }
    return false
  }

  /** Subscribes `listener` to `channel`; resolves on the server's confirmation. */
  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    this.subscribeMode = true
    this.channels.set(channel, listener)
    try {
      await this.send(['SUBSCRIBE', channel], true)
    } catch (error) {
      if (this.channels.get(channel) === listener) this.channels.delete(channel)
      throw error
    }
  }

  /** Unsubscribes `channel`; resolves on the server's confirmation (the connection then leaves subscribe mode when none is left). */
  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel)
    await this.send(['UNSUBSCRIBE', channel], true)
  }

  ref(): void {
    this.socket.ref()
  }

  /** An idle client keeps no process alive. */
  unref(): void {
    this.socket.unref()
  }

  /** Closes after the pending replies came (a graceful close); resolves when the socket is closed. */
  async close(): Promise<void> {
    if (this.open && !this.ending) {
      this.ending = true
      if (this.head === this.queue.length) {
        this.flush()
        this.socket.end()
      }
    }
    await this.closed
  }

  /** Closes now: every pending command fails with RespTransportError(cause). */
  destroy(cause = 'connection destroyed'): void {
    this.shut(cause)
    this.socket.destroy()
  }

  private shut(cause: string): void {
    if (!this.open) return
    this.open = false
    const message = this.connected ? `${cause} (${this.address})` : `cannot connect to ${this.address}: ${cause}`
    const pending = this.queue
    const from = this.head
    this.queue = []
    this.head = 0
    this.out = []
    this.channels.clear()
    const error = new RespTransportError(message)
    this.rejectReady?.(new RespTransportError(cause))
    for (let i = from; i < pending.length; i++) pending[i]!.reject(error)
    this.onClose?.(message)
  }
}

function merge(parts: (string | Buffer)[], from: number, to: number): Buffer {
  let size = 0
  for (let i = from; i < to; i++) {
    const part = parts[i]!
    size += typeof part === 'string' ? Buffer.byteLength(part) : part.length
  }
  const buffer = Buffer.allocUnsafe(size)
  let at = 0
  for (let i = from; i < to; i++) {
    const part = parts[i]!
    at += typeof part === 'string' ? buffer.write(part, at) : part.copy(buffer, at)
  }
  return buffer
}
