import { randomUUID } from 'node:crypto'
import { ObjectNotFound } from '../errors.js'
import { object, optional, string } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'

export interface LocalConnectorOptions {
  /** connectors of one process with the same name share their objects (default: a new name) */
  name?: string
}

const optionsSchema = object({ type: optional(string), name: optional(string) })

// The objects of each named local space, for this thread only (a worker thread loads its own copy
// of this module): a LocalConnector rebuilt from its config in the same thread sees the same objects.
const spaces = new Map<string, Map<string, Uint8Array>>()
// The spaces this thread has put into: a miss in one it never wrote is almost always a proxy
// that crossed into a worker thread or process, which the error then says.
const written = new Set<string>()
const ELSEWHERE =
  "nothing was ever put into it here: a local connector's objects live in the memory of the thread that put them, " +
  "where worker threads and processes cannot read them; for tasks use a connector the workers reach ('file', 'shm' on one node, 'redis', 'zmq')"

/** Objects in this thread's memory. Fast and test-friendly; other threads and processes cannot read them. */
export class LocalConnector implements Connector {
  readonly type = 'local'
  readonly name: string
  private readonly objects: Map<string, Uint8Array>

  constructor(options: LocalConnectorOptions = {}) {
    const checked = optionsSchema(options, 'connector')
    this.name = checked.name ?? `local-${randomUUID()}`
    let space = spaces.get(this.name)
    if (!space) spaces.set(this.name, (space = new Map()))
    this.objects = space
  }

  get label(): string {
    return `local(${this.name})`
  }

  newKey(): ObjectKey {
    return { id: randomUUID() }
  }

  async put(bytes: Uint8Array, key: ObjectKey = this.newKey()): Promise<ObjectKey> {
    // A copy, so a caller reusing its buffer cannot change a stored object.
    this.objects.set(key.id, Uint8Array.prototype.slice.call(bytes))
    written.add(this.name)
    return key
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    return this.getSync(key)
  }

  getSync(key: ObjectKey): Uint8Array {
    const bytes = this.objects.get(key.id)
    if (!bytes) throw new ObjectNotFound(this.label, keyText(key), written.has(this.name) ? undefined : ELSEWHERE)
    return bytes
  }

  async exists(key: ObjectKey): Promise<boolean> {
    return this.objects.has(key.id)
  }

  async evict(key: ObjectKey): Promise<void> {
    this.evictSync(key)
  }

  evictSync(key: ObjectKey): void {
    this.objects.delete(key.id)
  }

  async putBatch(values: readonly Uint8Array[]): Promise<ObjectKey[]> {
    return Promise.all(values.map((bytes) => this.put(bytes)))
  }

  async getBatch(keys: readonly ObjectKey[]): Promise<Uint8Array[]> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  /** how many objects the space holds (benchmarks check it is empty at the end) */
  get size(): number {
    return this.objects.size
  }

  async close(): Promise<void> {}

  toConfig(): ConnectorConfig {
    return { type: this.type, name: this.name }
  }
}

connectors.register('local', (options) => new LocalConnector(options as LocalConnectorOptions))
