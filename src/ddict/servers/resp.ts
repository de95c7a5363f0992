/**
 * A few Redis commands over one short-lived TCP connection, in plain RESP, for the shard host's
 * own needs (AUTH + PING to see a server ready, INFO replication, SHUTDOWN NOSAVE). The shard host
 * runs on every node of a dictionary and must start fast and never load node-redis for this.
 */
import { createConnection } from 'node:net'

/** One reply: a simple string, an integer, a bulk string (null when nil), an array, or an error reply. */
export type RespReply = string | number | null | RespReply[] | RespErrorReply

export class RespErrorReply {
  constructor(readonly message: string) {}
}

/** `*2\r\n$4\r\nPING\r\n...`: how a client sends a command. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const bytes = Buffer.from(arg, 'utf8')
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Parses one reply at `offset`; undefined when the buffer does not hold all of it yet. */
export function parseReply(buffer: Buffer, offset = 0): { reply: RespReply; next: number } | undefined {
  const end = buffer.indexOf('\r\n', offset)
  if (end < 0) return undefined
  const type = String.fromCharCode(buffer[offset]!)
  const line = buffer.toString('utf8', offset + 1, end)
  const after = end + 2
  switch (type) {
    case '+':
      return { reply: line, next: after }
    case '-':
      return { reply: new RespErrorReply(line), next: after }
    case ':':
      return { reply: Number(line), next: after }
    case '$': {
      const length = Number(line)
      if (length < 0) return { reply: null, next: after }
      if (buffer.length < after + length + 2) return undefined
      return { reply: buffer.toString('utf8', after, after + length), next: after + length + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { reply: null, next: after }
      const items: RespReply[] = []
      let next = after
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next)
        if (!item) return undefined
        items.push(item.reply)
        next = item.next
      }
      return { reply: items, next }
    }
    default:
      throw new Error(`not a RESP reply (starts with ${JSON.stringify(type)})`)
  }
}

/**
 * Sends `commands` in one write and resolves to their replies, in order. Rejects on a connection
 * failure or when the replies do not all arrive within `timeoutMs`. With `expectClose`, a
 * connection closed by the server before every reply came is an answer too (SHUTDOWN closes it
 * without replying): the replies received so far are returned.
 */
export function redisCommands(host: string, port: number, commands: readonly (readonly string[])[], timeoutMs: number, expectClose = false): Promise<RespReply[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port })
    const replies: RespReply[] = []
    let buffer: Buffer = Buffer.alloc(0)
    let settled = false
    const finish = (error?: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error) reject(error)
      else resolve(replies)
    }
    const timer = setTimeout(() => finish(new Error(`${host}:${port} did not answer within ${timeoutMs} ms`)), timeoutMs)
    socket.on('connect', () => socket.write(Buffer.concat(commands.map((args) => encodeCommand(args)))))
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      try {
        let parsed = parseReply(buffer)
        while (parsed) {
          replies.push(parsed.reply)
          buffer = buffer.subarray(parsed.next)
          if (replies.length === commands.length) return finish()
          parsed = buffer.length > 0 ? parseReply(buffer) : undefined
        }
      } catch (error) {
        finish(error as Error)
      }
    })
    socket.on('error', (error) => finish(expectClose && replies.length > 0 ? undefined : new Error(`${host}:${port}: ${error.message}`)))
    socket.on('close', () => finish(expectClose ? undefined : new Error(`${host}:${port} closed the connection after ${replies.length} of ${commands.length} replies`)))
  })
}

/** True when the server answers AUTH (if a password is given) and PING. */
export async function pingRedis(host: string, port: number, password: string, timeoutMs: number): Promise<boolean> {
  const commands = password ? [['AUTH', password], ['PING']] : [['PING']]
  try {
    const replies = await redisCommands(host, port, commands, timeoutMs)
    return replies[replies.length - 1] === 'PONG' && replies.every((reply) => !(reply instanceof RespErrorReply))
  } catch {
    return false
  }
}
