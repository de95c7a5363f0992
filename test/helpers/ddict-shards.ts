// Real redis-servers set up as a DDict's shards are (as the servers helper starts them: a
// password, noeviction, keyspace notifications), for the client tests; and a raw node-redis
// client to look at what the DDict stored.
import type { Test } from 'tap'
import { createClient, RESP_TYPES } from 'redis'
import { startRedis, type RedisServer } from './redis.js'

export const PASSWORD = 'ddict-test-pw'

export const SHARD_ARGS = ['--maxmemory-policy', 'noeviction', '--notify-keyspace-events', 'K$g']

/**
 * `count` servers with SHARD_ARGS + `extra`, then the password (set after the start: the
 * helper's readiness PING goes without AUTH).
 */
export async function startShards(t: Test, count: number, extra: string[] = [], password = PASSWORD): Promise<RedisServer[]> {
  const servers: RedisServer[] = []
  for (let i = 0; i < count; i++) {
    const server = await startRedis(t, { args: [...SHARD_ARGS, ...extra] })
    if (password) {
      const client = await raw(t, server, '')
      await client.send(['CONFIG', 'SET', 'requirepass', password])
      await client.close()
    }
    servers.push(server)
  }
  return servers
}

export function addresses(servers: RedisServer[], password = PASSWORD): string[] {
  return servers.map((s) => `redis://:${password}@${s.host}:${s.port}`)
}

export interface Raw {
  send<T = unknown>(args: (string | Buffer)[]): Promise<T>
  close(): Promise<void>
}

/** A plain node-redis connection to one server (closed at teardown). */
export async function raw(t: Test, server: { host: string; port: number }, password = PASSWORD): Promise<Raw> {
  const client = createClient({ socket: { host: server.host, port: server.port, reconnectStrategy: false }, ...(password ? { password } : {}) })
  client.on('error', () => {})
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    if (client.isOpen) await client.close().catch(() => client.destroy())
  }
  t.teardown(close)
  await client.connect()
  const typed = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  return { send: (args) => typed.sendCommand(args) as never, close }
}

/** The rejection of `promise` (fails the test if it resolves, or hangs past `hangMs`). */
export async function failureOf(promise: Promise<unknown>, what: string, hangMs = 60_000): Promise<Error & { code?: string; [k: string]: unknown }> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} hung for ${hangMs} ms`)), hangMs)))
  try {
    await Promise.race([promise, hang])
  } catch (error) {
    return error as Error & { code?: string; [k: string]: unknown }
  } finally {
    clearTimeout(timer)
  }
  throw new Error(`${what} succeeded; it should have failed`)
}
