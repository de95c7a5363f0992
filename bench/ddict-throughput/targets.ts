/**
 * What bench/ddict-throughput measures against: the Redis servers (shards) and the clients that
 * talk to them.
 *
 * The servers are a DDict's own: `DDict.create({ managersPerNode, totalMem })` starts them (real
 * redis-servers with a per-dictionary password) and `descriptor()` names them, so redis-benchmark
 * is pointed at exactly the servers the DDict used.
 *
 * When DDict.create cannot start servers in this build (the shard host not merged yet), the bench
 * starts them itself (a DDict shard's settings) and attaches the DDict by `addresses`: the rows
 * are still the DDict's.
 *
 * TEMPORARY (until the DDict of issue 11 is on main): when `tsflow/ddict` does not export
 * `DDict` yet, the bench's servers are measured with the raw node-redis client only. The run says
 * so on its first line, in the table and in every result row (`ddict: false`), so no such figure
 * can pass for a DDict one.
 */
import { randomBytes } from 'node:crypto'
import { onCleanup } from '../lib/cleanup.js'
import { startRedisServer, type RedisServer } from '../lib/redis-server.js'

export interface ShardAddress {
  host: string
  port: number
}

/** A client of the shards: the operations the bench times, keys are strings. */
export interface KV {
  /** 'ddict', or 'node-redis' (the raw client, no DDict) */
  name: string
  set(key: string, value: Buffer): Promise<void>
  /** the value's byte length (checked by the bench), undefined when missing */
  get(key: string): Promise<number | undefined>
  setMany(entries: [string, Buffer][]): Promise<void>
  getMany(keys: string[]): Promise<(number | undefined)[]>
  close(): Promise<void>
}

export interface Deployment {
  shards: ShardAddress[]
  password: string
  /** how the servers were started, for the output */
  how: string
  /** true when the servers (and the 'ddict' client) are a DDict's */
  ddict: boolean
  /** a client; 'ddict' is the DDict itself (or, TEMPORARY, node-redis when there is none) */
  client(name: 'ddict' | 'node-redis'): Promise<KV>
  /** removes every key of the servers (between sizes: the memory limit stays far away) */
  flush(): Promise<void>
  /** destroys the DDict / stops the servers */
  stop(): Promise<void>
}

/** The part of DDict's API the bench uses (typed here so the bench builds before it lands). */
interface DDictLike {
  descriptor(): { shards: { host: string; port: number }[]; password: string }
  set(key: string, value: unknown): Promise<unknown>
  get(key: string): Promise<unknown>
  setMany(entries: Iterable<[string, unknown]>): Promise<unknown>
  getMany(keys: string[]): Promise<unknown[]>
  clear(): Promise<unknown>
  destroy(): Promise<unknown>
}
interface DDictClass {
  create(options?: Record<string, unknown>): Promise<DDictLike>
}

/** DDict from the public entry, or why it is not there (TEMPORARY: until issue 11 lands). */
async function loadDDict(): Promise<DDictClass | string> {
  for (const entry of ['tsflow/ddict', 'tsflow']) {
    try {
      // A variable specifier: the bench compiles whether or not tsflow exports DDict yet.
      const module = (await import(entry)) as { DDict?: DDictClass }
      if (typeof module.DDict?.create === 'function') return module.DDict
    } catch {
      // not exported yet: try the next entry
    }
  }
  return 'tsflow/ddict does not export DDict in this build (issue 11 not merged yet)'
}

const byteLength = (value: unknown): number | undefined => (value instanceof Uint8Array ? value.byteLength : value === undefined || value === null ? undefined : NaN)

/**
 * Redis servers of the bench's own, with a DDict shard's settings (password, maxmemory = 90% of
 * the share, noeviction); each is registered for clean-up as soon as it runs.
 */
async function startServers(options: { shards: number; totalMem: number }): Promise<{ servers: RedisServer[]; password: string; stop(): Promise<void> }> {
  const password = randomBytes(18).toString('base64url')
  const maxmemory = Math.floor((options.totalMem / options.shards) * 0.9)
  const servers: RedisServer[] = []
  const stop = async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()))
  }
  onCleanup(stop)
  for (let i = 0; i < options.shards; i++) servers.push(await startRedisServer('redis-server', ['--requirepass', password, '--maxmemory', String(maxmemory), '--maxmemory-policy', 'noeviction']))
  return { servers: [...servers], password, stop }
}

/**
 * Starts the shards: the DDict's own (DDict.create), or when that cannot start servers in this
 * build, the bench's servers with the DDict attached to them by addresses; without a DDict at all
 * (TEMPORARY) the bench's servers and node-redis.
 */
export async function deploy(options: { shards: number; totalMem: number; log: (line: string) => void }): Promise<Deployment> {
  const DDict = await loadDDict()
  if (typeof DDict !== 'string') {
    let dict: DDictLike
    let how = `DDict.create({ managersPerNode: ${options.shards} })`
    let own: Awaited<ReturnType<typeof startServers>> | undefined
    try {
      dict = await DDict.create({ name: 'ddict-throughput', managersPerNode: options.shards, totalMem: options.totalMem })
    } catch (error) {
      options.log(`DDict.create could not start the servers (${(error as Error).message.split('\n')[0]}); the bench starts them (DDict shard settings) and attaches the DDict by addresses`)
      own = await startServers(options)
      dict = await DDict.create({ name: 'ddict-throughput', addresses: own.servers.map((s) => `${s.host}:${s.port}`), password: own.password })
      how = `${options.shards} redis-server(s) started by the bench, DDict.create({ addresses })`
    }
    const { shards, password } = dict.descriptor()
    const kv: KV = {
      name: 'ddict',
      async set(key, value) {
        await dict.set(key, value)
      },
      async get(key) {
        return byteLength(await dict.get(key))
      },
      async setMany(entries) {
        await dict.setMany(entries)
      },
      async getMany(keys) {
        return (await dict.getMany(keys)).map(byteLength)
      },
      async close() {},
    }
    const raw: KV[] = []
    return {
      shards: shards.map(({ host, port }) => ({ host, port })),
      password,
      how,
      ddict: true,
      client: async (name) => {
        if (name === 'ddict') return kv
        const client = await nodeRedis(shards, password)
        raw.push(client)
        return client
      },
      flush: async () => {
        await dict.clear()
        await flushAll(shards, password)
      },
      stop: async () => {
        for (const client of raw.splice(0)) await client.close()
        await dict.destroy()
        await own?.stop()
      },
    }
  }
  // TEMPORARY path (see the header): servers as a DDict would start them, node-redis as the client.
  options.log(`TEMPORARY: ${DDict}; the servers are started by the bench (bench/lib/redis-server.ts, DDict shard settings) and 'ddict' rows use the raw node-redis client`)
  const { servers, password, stop } = await startServers(options)
  const clients: KV[] = []
  return {
    shards: servers.map(({ host, port }) => ({ host, port })),
    password,
    how: `${options.shards} redis-server(s) started by the bench (TEMPORARY: no DDict in this build)`,
    ddict: false,
    client: async () => {
      const client = await nodeRedis(servers, password)
      clients.push(client)
      return client
    },
    flush: () => flushAll(servers, password),
    stop: async () => {
      for (const client of clients.splice(0)) await client.close()
      await stop()
    },
  }
}

interface RawCommands {
  set(key: string, value: Buffer): Promise<unknown>
  get(key: string): Promise<Buffer | null>
  mSet(pairs: [string, Buffer][]): Promise<unknown>
  mGet(keys: string[]): Promise<(Buffer | null)[]>
  flushAll(): Promise<unknown>
}
interface RawClient extends RawCommands {
  connect(): Promise<unknown>
  close?(): Promise<unknown>
  quit?(): Promise<unknown>
  withTypeMapping(mapping: unknown): RawCommands
  on(event: string, listener: (...args: unknown[]) => void): unknown
}

async function connectAll(shards: ShardAddress[], password: string): Promise<{ clients: RawClient[]; bytes: RawCommands[] }> {
  const { createClient, RESP_TYPES } = await import('redis')
  const clients = shards.map(({ host, port }) => createClient({ socket: { host, port }, password: password || undefined }) as unknown as RawClient)
  for (const client of clients) client.on('error', () => {}) // a command's own rejection reports it
  await Promise.all(clients.map((client) => client.connect()))
  return { clients, bytes: clients.map((client) => client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })) }
}

const closeAll = (clients: RawClient[]) => Promise.all(clients.map((client) => (client.close ?? client.quit)?.call(client)))

async function flushAll(shards: ShardAddress[], password: string): Promise<void> {
  const { clients } = await connectAll(shards, password)
  try {
    await Promise.all(clients.map((client) => client.flushAll()))
  } finally {
    await closeAll(clients)
  }
}

/** Spreads keys over shards (FNV-1a, as the DDict's shardOf; the two need not agree: no key is shared). */
function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  return (hash >>> 0) % shards
}

/**
 * The raw node-redis client, one connection per shard, keys spread over the shards by a hash;
 * batches are one MSET / MGET per shard. What the DDict adds on top of its client library shows
 * as the difference between the two.
 */
async function nodeRedis(shards: ShardAddress[], password: string): Promise<KV> {
  const { clients, bytes } = await connectAll(shards, password)
  const shard = (key: string) => bytes[shardOf(key, bytes.length)]!
  const groups = <T>(items: T[], keyOf: (item: T) => string) => {
    const out = new Map<number, { at: number[]; items: T[] }>()
    items.forEach((item, at) => {
      const index = shardOf(keyOf(item), bytes.length)
      const group = out.get(index) ?? { at: [], items: [] }
      group.at.push(at)
      group.items.push(item)
      out.set(index, group)
    })
    return out
  }
  return {
    name: 'node-redis',
    async set(key, value) {
      await shard(key).set(key, value)
    },
    async get(key) {
      return byteLength(await shard(key).get(key))
    },
    async setMany(entries) {
      await Promise.all([...groups(entries, ([key]) => key)].map(([index, group]) => bytes[index]!.mSet(group.items)))
    },
    async getMany(keys) {
      const out: (number | undefined)[] = new Array(keys.length)
      await Promise.all(
        [...groups(keys, (key) => key)].map(async ([index, group]) => {
          const values = await bytes[index]!.mGet(group.items)
          values.forEach((value, i) => (out[group.at[i]!] = byteLength(value)))
        }),
      )
      return out
    },
    async close() {
      await closeAll(clients)
    },
  }
}
