import { randomUUID } from 'node:crypto'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { isMainThread } from 'node:worker_threads'
import { ConfigError, ConnectorError, ObjectNotFound } from '../errors.js'
import { boolean, integer, object, optional, positiveInt, string } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'
import { OwnerLink, ownerLabel, replyError, Status, type OpName, type Reply } from './zmq-link.js'
import { SyncBridge } from './sync-bridge.js'
import { closedLocally, localServer, ObjectServer, zeromq } from './zmq-server.js'

export interface ZmqConnectorOptions {
  /** the IP address this process listens on and advertises in its keys (default 127.0.0.1); not a wildcard */
  address?: string
  /** a network interface name (`eth0`, `ib0`) whose address to use, looked up in each process; instead of `address` */
  interface?: string
  /** the port to listen on (default 0: any free port; a fixed port allows one owning connector per address) */
  port?: number
  /** the bound on every request to another process, in ms (default 10 000) */
  timeoutMs?: number
  /** serve this process's objects over CURVE encryption; its keys then carry the server's public key (default false) */
  encrypt?: boolean
}

/**
 * A key of the zmq connector: `owner` is the endpoint of the process that keeps the object; an
 * owner with `encrypt: true` adds `pk`, its CURVE public key (40 z85 characters).
 */
export interface ZmqKey extends ObjectKey {
  readonly id: string
  readonly owner: string
}

const optionsSchema = object({
  type: optional(string),
  address: optional(string),
  interface: optional(string),
  port: optional(integer(0, 65535)),
  timeoutMs: optional(positiveInt),
  encrypt: optional(boolean),
})
const DEFAULT_TIMEOUT_MS = 10_000
// A blocking read through the bridge thread: the request's own bound plus the thread's start.
const BRIDGE_START_MARGIN_MS = 5000
const ENDPOINT = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+):\d{1,5}$/
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

/**
 * A peer-to-peer connector: each process serves the objects it put from its own memory over a
 * ZeroMQ ROUTER socket, and the key names that owner (`{ id, owner: 'tcp://10.0.0.1:40123' }`),
 * so whoever holds the key fetches the bytes from the owner directly. No server or shared file
 * system is needed; the price is that an object lives only as long as its owner's connector.
 */
export class ZmqConnector implements Connector<ZmqKey> {
  readonly type = 'zmq'
  readonly timeoutMs: number
  readonly port: number
  readonly encrypt: boolean
  private readonly options: { address?: string; interface?: string }
  private server: ObjectServer | undefined
  private readonly links = new Map<string, OwnerLink>()
  // This reader's CURVE key pair, made when it first reads from an encrypting owner.
  private readerKeys: { publicKey: string; secretKey: string } | undefined
  private bridge: SyncBridge | undefined
  private closed = false

  constructor(options: ZmqConnectorOptions = {}) {
    const checked = optionsSchema(options, 'connector')
    if (checked.address !== undefined && checked.interface !== undefined) {
      throw new ConfigError('connector.interface', 'give either address or interface, not both')
    }
    if (checked.address !== undefined && (isIP(checked.address) === 0 || ['0.0.0.0', '::'].includes(checked.address))) {
      throw new ConfigError(
        'connector.address',
        `must be an IP address of this host that other processes can reach (got '${checked.address}'); use the interface option to name a network interface`,
      )
    }
    this.options = {}
    if (checked.address !== undefined) this.options.address = checked.address
    if (checked.interface !== undefined) this.options.interface = checked.interface
    this.port = checked.port ?? 0
    this.timeoutMs = checked.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.encrypt = checked.encrypt ?? false
  }

  /** `zmq(tcp://host:port)` once this process serves objects, else the address it would listen on */
  get label(): string {
    if (this.server) return ownerLabel(this.server.endpoint)
    return `zmq(${this.options.interface !== undefined ? `interface ${this.options.interface}` : (this.options.address ?? '127.0.0.1')})`
  }

  /** The endpoint this process serves its objects on (starts serving if it does not yet). */
  get endpoint(): string {
    return this.serve().endpoint
  }

  private checkOpen(): void {
    if (this.closed) throw new ConnectorError(this.label, 'is closed')
  }

  /** The address to listen on, resolved in this process (an interface has another address on every node). */
  private address(): string {
    const name = this.options.interface
    if (name === undefined) return this.options.address ?? '127.0.0.1'
    const all = networkInterfaces()
    const addresses = all[name]
    if (!addresses) throw new ConnectorError(this.label, `this host has no network interface '${name}' (it has: ${Object.keys(all).join(', ')})`)
    const usable = addresses.filter((a) => !(a.family === 'IPv6' && a.address.startsWith('fe80')))
    const chosen = usable.find((a) => a.family === 'IPv4') ?? usable[0]
    if (!chosen) throw new ConnectorError(this.label, `network interface '${name}' has no usable address`)
    return chosen.address
  }

  /** This process's server, started on first need (put, newKey): binding is synchronous. */
  private serve(): ObjectServer {
    this.checkOpen()
    if (this.server) return this.server
    // Thread pools (piscina) block an idle thread's event loop until its next task, so a server
    // there would not answer; and a thread's sockets must not outlive it.
    if (!isMainThread) {
      throw new ConnectorError(
        this.label,
        'cannot own objects in a worker thread (an idle pool thread cannot answer requests); put them from the main thread of a process ' +
          "(the workflow, an HTEX worker process: workerMode 'processes'), or use another connector. Reading, and setting a proxy future made elsewhere, work here",
      )
    }
    return (this.server = new ObjectServer(this.address(), this.port, this.label, this.encrypt))
  }

  newKey(): ZmqKey {
    const server = this.serve()
    return server.publicKey === undefined ? { id: randomUUID(), owner: server.endpoint } : { id: randomUUID(), owner: server.endpoint, pk: server.publicKey }
  }

  private ownerOf(key: ObjectKey): string {
    const owner = key.owner
    if (typeof owner !== 'string' || !ENDPOINT.test(owner)) {
      throw new ConnectorError(this.label, `key ${keyText(key)} has no owner endpoint (tcp://host:port); it was not made by a zmq connector`)
    }
    if (key.pk !== undefined && (typeof key.pk !== 'string' || !Z85_KEY.test(key.pk))) {
      throw new ConnectorError(this.label, `key ${keyText(key)} has a malformed owner public key (pk: 40 z85 characters)`)
    }
    return owner
  }

  /** The link to `owner`; one per owner and public key (a restarted owner has a new key). */
  private link(owner: string, pk: string | undefined): OwnerLink {
    const name = pk === undefined ? owner : `${owner} ${pk}`
    let link = this.links.get(name)
    if (!link || link.closed) {
      let curve: ConstructorParameters<typeof OwnerLink>[3]
      if (pk !== undefined) {
        this.readerKeys ??= zeromq().curveKeyPair()
        curve = { serverKey: pk, ...this.readerKeys }
      }
      link = new OwnerLink(
        owner,
        this.timeoutMs,
        (dead) => {
          if (this.links.get(name) === dead) this.links.delete(name)
        },
        curve,
      )
      this.links.set(name, link)
    }
    return link
  }

  private async ask(owner: string, op: OpName, key: ObjectKey, payload?: Uint8Array): Promise<Reply> {
    const what = `${op} of object ${keyText(key)}`
    if (closedLocally(owner)) throw new ConnectorError(ownerLabel(owner), `cannot ${what}: its owner, a connector of this process, was closed and its objects are gone`)
    const reply = await this.link(owner, key.pk as string | undefined).request(op, key.id, what, payload)
    if (reply.status === Status.failed) throw replyError(owner, reply, what)
    return reply
  }

  async put(bytes: Uint8Array, key?: ZmqKey): Promise<ZmqKey> {
    this.checkOpen()
    if (key === undefined) key = this.newKey()
    const owner = this.ownerOf(key)
    const local = localServer(owner)
    // A copy, so a caller reusing its buffer cannot change a stored object.
    if (local) local.objects.set(key.id, Uint8Array.prototype.slice.call(bytes))
    // Someone else's key (a proxy future made there): the bytes go to the owner, sent without a
    // copy; the put resolves once the owner has them, so the caller may reuse its buffer then.
    else await this.ask(owner, 'put', key, bytes)
    return key
  }

  /** The object from this thread's own servers; undefined when another process (or thread) owns it. */
  private localGet(owner: string, key: ZmqKey): Uint8Array | undefined {
    const local = localServer(owner)
    if (!local) return undefined
    const bytes = local.objects.get(key.id)
    if (!bytes) throw new ObjectNotFound(ownerLabel(owner), keyText(key))
    return bytes
  }

  async get(key: ZmqKey): Promise<Uint8Array> {
    this.checkOpen()
    const owner = this.ownerOf(key)
    const local = this.localGet(owner, key)
    if (local) return local
    const reply = await this.ask(owner, 'get', key)
    if (reply.status === Status.missing) throw new ObjectNotFound(ownerLabel(owner), keyText(key))
    return reply.payload ?? new Uint8Array(0)
  }

  /**
   * `get`, blocking. This process's own objects come from memory; another owner's through a
   * SyncBridge thread (started on first use, closed with the connector) running this connector
   * rebuilt from its config. The owner is never this thread, which the wait blocks.
   */
  getSync(key: ZmqKey): Uint8Array {
    this.checkOpen()
    const owner = this.ownerOf(key)
    const local = this.localGet(owner, key)
    if (local) return local
    if (closedLocally(owner)) throw new ConnectorError(ownerLabel(owner), `cannot get object ${keyText(key)}: its owner, a connector of this process, was closed and its objects are gone`)
    this.bridge ??= new SyncBridge(this.toConfig(), this.label, { timeoutMs: this.timeoutMs + BRIDGE_START_MARGIN_MS })
    return this.bridge.get(key)
  }

  async exists(key: ZmqKey): Promise<boolean> {
    this.checkOpen()
    const owner = this.ownerOf(key)
    const local = localServer(owner)
    if (local) return local.objects.has(key.id)
    const reply = await this.ask(owner, 'exists', key)
    return reply.payload?.[0] === 1
  }

  /** Drops the object; from a process that does not own it, the owner is asked to drop it. */
  async evict(key: ZmqKey): Promise<void> {
    this.checkOpen()
    const owner = this.ownerOf(key)
    const local = localServer(owner)
    if (local) local.objects.delete(key.id)
    else await this.ask(owner, 'evict', key)
  }

  async putBatch(values: readonly Uint8Array[]): Promise<ZmqKey[]> {
    return Promise.all(values.map((bytes) => this.put(bytes)))
  }

  async getBatch(keys: readonly ZmqKey[]): Promise<Uint8Array[]> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  /** how many objects this connector's server holds (benchmarks check it is empty at the end) */
  get size(): number {
    return this.server?.objects.size ?? 0
  }

  /**
   * Stops serving and closes the links to other owners. The objects this connector owned are
   * gone (no other process can read them afterwards); requests still waiting fail with a
   * ConnectorError saying the connector closed.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const link of [...this.links.values()]) link.close(`the connector ${this.label} was closed while waiting for the owner's answer`)
    this.links.clear()
    this.server?.close()
    await this.bridge?.close()
  }

  toConfig(): ConnectorConfig {
    const config: ConnectorConfig = { type: this.type, ...this.options, timeoutMs: this.timeoutMs }
    if (this.port !== 0) config.port = this.port
    if (this.encrypt) config.encrypt = true
    return config
  }
}

connectors.register('zmq', (options) => new ZmqConnector(options as ZmqConnectorOptions))
