import { randomUUID } from 'node:crypto'
import { ObjectNotFound } from '../errors.js'
import { object, optional, string } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'

export interface LocalConnectorOptions {
  /** connectors of one process with the same name share their objects (default: a new name) */
  name?: string
}

const optionsSchema = object({ type: optional(string), name: optional(string) })

// The objects of each named local space, for this process only: a LocalConnector rebuilt from
// its config in the same process (a thread executor's caller side, tests) sees the same objects.
const spaces = new Map<string, Map<string, Uint8Array>>()

/** Objects in this process's memory. Fast and test-friendly; other processes cannot read them. */
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
    return key
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    return this.getSync(key)
  }

  getSync(key: ObjectKey): Uint8Array {
    const bytes = this.objects.get(key.id)
    if (!bytes) throw new ObjectNotFound(this.label, keyText(key))
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
