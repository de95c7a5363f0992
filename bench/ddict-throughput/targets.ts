/**
 * What bench/ddict-throughput measures against: the Redis servers (shards) and the clients that
 * talk to them.
 *
 * The servers are a DDict's own: `DDict.create({ managersPerNode, totalMem })` starts them (real
 * redis-servers with a per-dictionary password) and `descriptor()` names them, so redis-benchmark
 * is pointed at exactly the servers the DDict used. `--via node-redis` adds the raw node-redis
 * client on the same servers: what the DDict adds on top of its client library.
 */
import { DDict } from 'tsflow/ddict'

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
  client(name: 'ddict' | 'node-redis'): Promise<KV>
  /** removes every key of the servers (between sizes: the memory limit stays far away) */
  flush(): Promise<void>
  /** destroys the DDict (which stops its servers) */
  stop(): Promise<void>
}

const byteLength = (value: unknown): number | undefined => (value instanceof Uint8Array ? value.byteLength : value === undefined || value === null ? undefined : NaN)

/** Starts the shards through DDict.create; the caller registers stop() for clean-up. */
export async function deploy(options: { shards: number; totalMem: number }): Promise<Deployment> {
  const dict = await DDict.create({ name: 'ddict-throughput', managersPerNode: options.shards, totalMem: options.totalMem })
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
    how: `DDict.create({ managersPerNode: ${options.shards} })`,
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
