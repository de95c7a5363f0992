/**
 * The redis baseline of task-rtt: one SET and one GET of the same bytes with the node `redis`
 * client (the client tsflow's redis connector uses), as redis-benchmark measures a server. Loaded
 * only when redis is among the transports; the package arrives with the redis connector.
 */
import { BenchUsage } from '../lib/args.js'

interface RawClient {
  connect(): Promise<unknown>
  set(key: string, value: Buffer): Promise<unknown>
  del(key: string): Promise<unknown>
  quit?(): Promise<unknown>
  close?(): Promise<unknown>
}

export interface RedisRaw {
  /** seconds for SET then GET of `data` under one key (deleted afterwards, outside the time) */
  roundTrip(data: Uint8Array): Promise<number>
  close(): Promise<void>
}

export async function redisRaw(host: string, port: number): Promise<RedisRaw> {
  const name = 'redis'
  let module: Record<string, unknown>
  try {
    module = (await import(name)) as Record<string, unknown>
  } catch (error) {
    throw new BenchUsage(`the redis-raw baseline needs the 'redis' package (installed with tsflow's redis connector): ${(error as Error).message}`)
  }
  const createClient = module.createClient as (options: unknown) => RawClient & Record<string, unknown>
  const client = createClient({ socket: { host, port } })
  await client.connect()
  // GET must give bytes, not a UTF-8 string: node-redis 5+ maps the reply type; 4 takes commandOptions.
  let getBytes: (key: string) => Promise<unknown>
  const types = module.RESP_TYPES as Record<string, number> | undefined
  if (typeof client.withTypeMapping === 'function' && types) {
    const bytesClient = (client.withTypeMapping as (mapping: unknown) => { get(key: string): Promise<unknown> })({ [types.BLOB_STRING!]: Buffer })
    getBytes = (key) => bytesClient.get(key)
  } else if (typeof module.commandOptions === 'function') {
    const options = (module.commandOptions as (o: unknown) => unknown)({ returnBuffers: true })
    getBytes = (key) => (client.get as (o: unknown, k: string) => Promise<unknown>)(options, key)
  } else throw new BenchUsage('the redis-raw baseline does not know this version of the redis package (no withTypeMapping nor commandOptions)')
  let counter = 0
  return {
    async roundTrip(data) {
      const key = `tsflow-task-rtt-raw-${process.pid}-${counter++}`
      // The client takes a Buffer (a view of the same memory, no copy).
      const value = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      const started = performance.now()
      await client.set(key, value)
      const back = (await getBytes(key)) as Uint8Array | null
      const seconds = (performance.now() - started) / 1000
      await client.del(key)
      if (!back || back.byteLength !== data.byteLength) throw new Error(`redis-raw: GET gave ${back?.byteLength ?? 'nothing'} bytes for ${data.byteLength}`)
      return seconds
    },
    async close() {
      await (client.close ?? client.quit)?.call(client)
    },
  }
}
