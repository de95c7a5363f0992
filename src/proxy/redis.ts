import { randomUUID } from 'node:crypto'
// The client library is loaded on first connect: this module is loaded wherever tasks run and by
// `import 'tsflow'`, and node-redis takes ~100 ms to load.
import type { createClient } from 'redis'
import { ConfigError, ConnectorError, ObjectNotFound, TsflowError } from '../errors.js'
import { nonNegativeInt, object, optional, positiveInt, string } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'
import { SyncBridge } from './sync-bridge.js'

export interface RedisConnectorOptions {
  /** the server's host (default '127.0.0.1'); or give `url` */
  host?: string
  /** the server's port (default 6379) */
  port?: number
  /**
   * `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for TLS) instead of host, port
   * and db. It travels in the connector's config (inside every proxy), password included.
   */
  url?: string
  /** the database number (default 0) */
  db?: number
  /** put before every key id to make the Redis key (default 'tsflow:') */
  keyPrefix?: string
  /** how long connecting (TCP plus the handshake) may take before it fails (default 5000 ms) */
  connectTimeoutMs?: number
  /** how long one command may wait for its answer, a 100 MB value included (default 60 000 ms) */
  commandTimeoutMs?: number
}

const optionsSchema = object({
  type: optional(string),
  host: optional(string),
  port: optional(positiveInt),
  url: optional(string),
  db: optional(nonNegativeInt),
  keyPrefix: optional((value, path) => (value === '' ? '' : string(value, path))),
  connectTimeoutMs: optional(positiveInt),
  commandTimeoutMs: optional(positiveInt),
})

const DEFAULT_HOST = '127.0.0.1'
const DEFAULT_PORT = 6379
const DEFAULT_PREFIX = 'tsflow:'
const DEFAULT_CONNECT_TIMEOUT_MS = 5000
const DEFAULT_COMMAND_TIMEOUT_MS = 60_000
// The bridge thread's read does its own connect and command under the same bounds; this margin
// covers the thread's start.
const BRIDGE_START_MARGIN_MS = 10_000

/** What the connector uses of a node-redis client whose bulk strings come back as Buffers. */
interface Commands {
  get(key: string): Promise<Buffer | null>
  set(key: string, value: Buffer): Promise<unknown>
  mGet(keys: string[]): Promise<(Buffer | null)[]>
  mSet(pairs: [string, Buffer][]): Promise<unknown>
  exists(key: string): Promise<number>
  unlink(key: string): Promise<number>
}
type Client = ReturnType<typeof createClient>

interface Connection {
  client: Client
  commands: Commands
  /** lost, timed out or closed: never used again */
  retired: boolean
}

/**
 * Objects in a Redis server (`SET`/`GET` of the raw bytes under `keyPrefix + id`): one back end
 * every node can reach. The connection is made on first use. Node-redis would reconnect forever
 * by default; here a lost connection is dropped (pending commands fail with ConnectorError) and
 * the next command connects again, once, within `connectTimeoutMs`. So an unreachable or killed
 * server shows as a ConnectorError naming `redis(host:port)` within a bounded time, every time.
 * `getSync` goes through a SyncBridge (a thread of its own with its own connection).
 */
export class RedisConnector implements Connector {
  readonly type = 'redis'
  readonly host: string
  readonly port: number
  readonly db: number
  readonly url: string | undefined
  readonly keyPrefix: string
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
  private current: Connection | undefined
  private connecting: Promise<Connection> | undefined
  private bridge: SyncBridge | undefined
  private closed = false

  constructor(options: RedisConnectorOptions = {}) {
    const checked = optionsSchema(options, 'connector')
    if (checked.url !== undefined) {
      for (const option of ['host', 'port', 'db'] as const) {
        if (checked[option] !== undefined) throw new ConfigError(`connector.${option}`, 'cannot be given with connector.url (the url says it)')
      }
      const parsed = parseUrl(checked.url)
      this.url = checked.url
      this.host = parsed.host
      this.port = parsed.port
      this.db = parsed.db
    } else {
      this.url = undefined
      this.host = checked.host ?? DEFAULT_HOST
      this.port = checked.port ?? DEFAULT_PORT
      this.db = checked.db ?? 0
    }
    if (this.port > 65535) throw new ConfigError(options.url !== undefined ? 'connector.url' : 'connector.port', `must be a TCP port, 1..65535 (got ${this.port})`)
    this.keyPrefix = checked.keyPrefix ?? DEFAULT_PREFIX
    this.connectTimeoutMs = checked.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    this.commandTimeoutMs = checked.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  }

  get label(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    return `redis(${host}:${this.port}${this.db === 0 ? '' : `/${this.db}`})`
  }

  newKey(): ObjectKey {
    return { id: randomUUID() }
  }

  private redisKey(key: ObjectKey): string {
    return this.keyPrefix + key.id
  }

  /** The open connection, made now if there is none (bounded by connectTimeoutMs). */
  private connect(): Promise<Connection> {
    if (this.closed) return Promise.reject(new ConnectorError(this.label, 'is closed'))
    if (this.current && !this.current.retired) return Promise.resolve(this.current)
    // Callers arriving while a connect is under way share it; a failed connect is not retried.
    this.connecting ??= this.open()
      .then((connection) => {
        if (!connection.retired && !this.closed) this.current = connection
        return connection
      })
      .finally(() => (this.connecting = undefined))
    return this.connecting
  }

  private async open(): Promise<Connection> {
    const socket = { connectTimeout: this.connectTimeoutMs, reconnectStrategy: false as const }
    const where =
      this.url !== undefined
        ? { url: this.url, socket }
        : { socket: { host: this.host, port: this.port, ...socket }, ...(this.db === 0 ? {} : { database: this.db }) }
    const { createClient, RESP_TYPES } = await import('redis')
    // A command sent while the connection is down fails now instead of waiting for a reconnect.
    const client: Client = createClient({ ...where, disableOfflineQueue: true })
    const commands = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as Commands
    const connection: Connection = { client, commands, retired: false }
    // Errors also reject the commands they concern; the event itself only retires the
    // connection (never an unhandled 'error'), so the next command connects afresh.
    client.on('error', () => this.retire(connection))
    client.on('end', () => this.retire(connection))
    try {
      // The socket's connectTimeout covers TCP only; a server that accepts and never answers the
      // handshake is bounded here.
      await bounded(client.connect(), this.connectTimeoutMs, () => client.destroy())
    } catch (error) {
      this.retire(connection)
      if (error instanceof TimedOut) throw new ConnectorError(this.label, `cannot connect: no answer within ${this.connectTimeoutMs} ms (connectTimeoutMs)`)
      throw new ConnectorError(this.label, `cannot connect: ${(error as Error).message}`, { cause: error })
    }
    return connection
  }

  private retire(connection: Connection): void {
    connection.retired = true
    if (this.current === connection) this.current = undefined
    if (connection.client.isOpen) connection.client.destroy()
  }

  /** Runs one command on the connection, bounded by commandTimeoutMs; errors become ConnectorError. */
  private async run<T>(what: string, command: (commands: Commands) => Promise<T>): Promise<T> {
    const connection = await this.connect()
    try {
      // A command that timed out leaves the connection in an unknown state: it is dropped.
      return await bounded(command(connection.commands), this.commandTimeoutMs, () => this.retire(connection))
    } catch (error) {
      // After a failure the connection may be on its way down (a server answers a protocol error,
      // then hangs up): the next call starts on a fresh one rather than on this one.
      this.retire(connection)
      if (error instanceof TimedOut) throw new ConnectorError(this.label, `${what}: no answer within ${this.commandTimeoutMs} ms (commandTimeoutMs)`)
      if (error instanceof TsflowError) throw error
      throw new ConnectorError(this.label, `${what}: ${(error as Error).message}`, { cause: error })
    }
  }

  async put(bytes: Uint8Array, key: ObjectKey = this.newKey()): Promise<ObjectKey> {
    await this.run(`cannot write object ${keyText(key)}`, (c) => c.set(this.redisKey(key), asBuffer(bytes)))
    return key
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    const bytes = await this.run(`cannot read object ${keyText(key)}`, (c) => c.get(this.redisKey(key)))
    if (bytes === null) throw new ObjectNotFound(this.label, keyText(key))
    return bytes
  }

  /** `get`, blocking, through a SyncBridge thread (started on first use, closed with the connector). */
  getSync(key: ObjectKey): Uint8Array {
    if (this.closed) throw new ConnectorError(this.label, 'is closed')
    this.bridge ??= new SyncBridge(this.toConfig(), this.label, { timeoutMs: this.connectTimeoutMs + this.commandTimeoutMs + BRIDGE_START_MARGIN_MS })
    return this.bridge.get(key)
  }

  async exists(key: ObjectKey): Promise<boolean> {
    return (await this.run(`cannot check object ${keyText(key)}`, (c) => c.exists(this.redisKey(key)))) > 0
  }

  async evict(key: ObjectKey): Promise<void> {
    // UNLINK frees a large value in the server's background, not in its command loop.
    await this.run(`cannot evict object ${keyText(key)}`, (c) => c.unlink(this.redisKey(key)))
  }

  async putBatch(values: readonly Uint8Array[]): Promise<ObjectKey[]> {
    if (values.length === 0) return []
    const keys = values.map(() => this.newKey())
    await this.run(`cannot write ${values.length} objects`, (c) => c.mSet(keys.map((key, i) => [this.redisKey(key), asBuffer(values[i]!)])))
    return keys
  }

  async getBatch(keys: readonly ObjectKey[]): Promise<Uint8Array[]> {
    if (keys.length === 0) return []
    const values = await this.run(`cannot read ${keys.length} objects`, (c) => c.mGet(keys.map((key) => this.redisKey(key))))
    return values.map((bytes, i) => {
      if (bytes === null) throw new ObjectNotFound(this.label, keyText(keys[i]!))
      return bytes
    })
  }

  /** Disconnects (and ends the sync bridge); the objects stay in the server for other readers. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.bridge?.close()
    const connection = this.current ?? (await this.connecting?.catch(() => undefined))
    this.current = undefined
    if (!connection?.client.isOpen) return
    connection.retired = true
    // close() lets the commands already sent finish; bounded, then the socket is destroyed.
    await bounded(connection.client.close(), this.commandTimeoutMs, () => {}).catch(() => {})
    if (connection.client.isOpen) connection.client.destroy()
  }

  toConfig(): ConnectorConfig {
    const where = this.url !== undefined ? { url: this.url } : { host: this.host, port: this.port, db: this.db }
    return { type: this.type, ...where, keyPrefix: this.keyPrefix, connectTimeoutMs: this.connectTimeoutMs, commandTimeoutMs: this.commandTimeoutMs }
  }
}

class TimedOut extends Error {}

/** `promise`, or a TimedOut rejection after `ms` (calling `onTimeout` first). */
function bounded<T>(promise: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout()
      reject(new TimedOut())
    }, ms)
  })
  // The losing promise's rejection is handled (a command failing after its timeout).
  promise.catch(() => {})
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// No copy: node-redis writes a Buffer to the socket as it is.
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function parseUrl(url: string): { host: string; port: number; db: number } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError('connector.url', `must be a URL like redis://host:6379/0 (got '${url}')`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new ConfigError('connector.url', `must start with redis:// or rediss:// (got '${parsed.protocol}//')`)
  const path = parsed.pathname.replace(/^\//, '')
  const db = path === '' ? 0 : Number(path)
  if (!Number.isInteger(db) || db < 0) throw new ConfigError('connector.url', `names database '${path}': must be a non-negative integer`)
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || DEFAULT_HOST
  return { host, port: parsed.port === '' ? DEFAULT_PORT : Number(parsed.port), db }
}

connectors.register('redis', (options) => new RedisConnector(options as unknown as RedisConnectorOptions))
