import { ConfigError, ConnectorError, ObjectNotFound } from '../errors.js'
import { arrayOf, integer, isPlainObject, nonNegativeInt, object, optional, string, type Check } from '../util/schema.js'
import { connectorFromConfig, connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey, type PutHints } from './connector.js'
import { withSyncGet } from './sync-bridge.js'

/**
 * Which objects a child connector takes. Every field is optional; an empty policy takes anything.
 * Sizes are the encoded object's bytes, both bounds inclusive.
 */
export interface MultiPolicy {
  /** the smallest object taken, in bytes (default 0) */
  minSize?: number
  /** the largest object taken, in bytes (default: no limit) */
  maxSize?: number
  /**
   * the object must carry every one of these tags (ProxyStore's `superset_tags`): e.g.
   * `['checkpoint']` takes only objects put with that tag
   */
  requireTags?: readonly string[]
  /**
   * the object may carry no tag outside this list (ProxyStore's `subset_tags`); untagged objects
   * pass. Default: any tags.
   */
  allowTags?: readonly string[]
  /** higher is tried first (default 0); equal priorities keep their order in `connectors` */
  priority?: number
}

export interface MultiChild {
  connector: Connector | ConnectorConfig
  policy?: MultiPolicy
}

export interface MultiConnectorOptions {
  /** the child connectors by name; the name goes into every key (`via`) */
  connectors: Record<string, MultiChild>
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/
const tag: Check<string> = string
const policySchema = object({
  minSize: optional(nonNegativeInt),
  maxSize: optional(nonNegativeInt),
  requireTags: optional(arrayOf(tag)),
  allowTags: optional(arrayOf(tag)),
  priority: optional(integer()),
})
const childSchema = object({ connector: (value, path) => connectorFromConfig(value as ConnectorConfig, path), policy: optional(policySchema) })

interface Child {
  name: string
  connector: Connector
  policy: MultiPolicy
  order: number
}

function accepts(policy: MultiPolicy, size: number | undefined, tags: readonly string[]): boolean {
  if (size !== undefined && (size < (policy.minSize ?? 0) || size > (policy.maxSize ?? Infinity))) return false
  if (policy.requireTags && !policy.requireTags.every((t) => tags.includes(t))) return false
  if (policy.allowTags && !tags.every((t) => policy.allowTags!.includes(t))) return false
  return true
}

function describePolicy(policy: MultiPolicy): string {
  const parts: string[] = []
  if (policy.minSize !== undefined) parts.push(`minSize ${policy.minSize}`)
  if (policy.maxSize !== undefined) parts.push(`maxSize ${policy.maxSize}`)
  if (policy.requireTags) parts.push(`requireTags [${policy.requireTags.join(', ')}]`)
  if (policy.allowTags) parts.push(`allowTags [${policy.allowTags.join(', ')}]`)
  return parts.length ? parts.join(', ') : 'anything'
}

/**
 * Routes each object to one of several connectors by its size and tags (ProxyStore's
 * MultiConnector): a put goes to the first child, by priority, whose policy accepts it, and the
 * key records which (`{ ...childKey, via: name }`), so get/exists/evict go straight to it.
 * Typical: small objects in redis or local memory, large ones in shm on the node, objects tagged
 * for sharing across nodes in a file system.
 */
export class MultiConnector implements Connector {
  readonly type = 'multi'
  private readonly children: Child[]
  private readonly byName = new Map<string, Child>()
  /** present when every child has `evictSync`, so having it always means it works */
  readonly evictSync?: (key: ObjectKey) => void

  constructor(options: MultiConnectorOptions) {
    if (!isPlainObject(options)) throw new ConfigError('connector', 'must be an object with `connectors`')
    const { type: _type, connectors: given, ...unknown } = options as MultiConnectorOptions & { type?: unknown }
    const stray = Object.keys(unknown)
    if (stray.length) throw new ConfigError(`connector.${stray[0]}`, `is not a known option (known: type, connectors)`)
    if (!isPlainObject(given) || Object.keys(given).length === 0) {
      throw new ConfigError('connector.connectors', 'must name at least one child: { name: { connector, policy } }')
    }
    this.children = Object.entries(given).map(([name, raw], order) => {
      const path = `connector.connectors.${name}`
      if (!NAME.test(name)) throw new ConfigError(path, `the name must be 1 to 64 letters, digits, '_' or '-' (it goes into every key)`)
      const checked = childSchema(raw, path)
      if (!checked.connector) throw new ConfigError(`${path}.connector`, 'is required (a connector or its config)')
      const policy = (checked.policy ?? {}) as MultiPolicy
      if (policy.minSize !== undefined && policy.maxSize !== undefined && policy.minSize > policy.maxSize) {
        throw new ConfigError(`${path}.policy`, `minSize ${policy.minSize} is above maxSize ${policy.maxSize}: it accepts no object`)
      }
      return { name, connector: checked.connector, policy, order }
    })
    for (const child of this.children) this.byName.set(child.name, child)
    this.children.sort((a, b) => (b.policy.priority ?? 0) - (a.policy.priority ?? 0) || a.order - b.order)
    if (this.children.every((c) => c.connector.evictSync)) {
      this.evictSync = (key) => {
        const { child, childKey } = this.child(key)
        child.connector.evictSync!(childKey)
      }
    }
  }

  get label(): string {
    return `multi(${[...this.byName.keys()].join(', ')})`
  }

  /** The child connector of that name (e.g. to check it is empty). */
  connector(name: string): Connector | undefined {
    return this.byName.get(name)?.connector
  }

  private route(size: number | undefined, hints: PutHints | undefined): Child {
    const tags = hints?.tags ?? []
    const child = this.children.find((c) => accepts(c.policy, size, tags))
    if (child) return child
    const policies = this.children.map((c) => `${c.name}: ${describePolicy(c.policy)}`).join('; ')
    throw new ConnectorError(
      this.label,
      `no child's policy accepts an object of ${size ?? 'unknown'} bytes with tags [${tags.join(', ')}] (policies: ${policies})`,
    )
  }

  private child(key: ObjectKey): { child: Child; childKey: ObjectKey } {
    const via = key.via
    const child = typeof via === 'string' ? this.byName.get(via) : undefined
    if (!child) {
      throw new ConnectorError(this.label, `key ${keyText(key)} names no child connector in 'via' (children: ${[...this.byName.keys()].join(', ')})`)
    }
    const { via: _via, ...childKey } = key
    return { child, childKey: childKey as ObjectKey }
  }

  private wrap(child: Child, childKey: ObjectKey): ObjectKey {
    if ('via' in childKey) throw new ConnectorError(this.label, `child ${child.name}'s key ${keyText(childKey)} already has a 'via' field`)
    return { ...childKey, via: child.name }
  }

  /**
   * A key for a later put (proxy futures). The size is not known yet, so it goes to the first
   * child, by priority, that accepts the tags and has no size bounds (else the first that accepts
   * the tags); a later put under this key goes to that child whatever the size.
   */
  newKey(hints?: PutHints): ObjectKey {
    const tags = hints?.tags ?? []
    const unbounded = this.children.find((c) => c.policy.minSize === undefined && c.policy.maxSize === undefined && accepts(c.policy, undefined, tags))
    const child = unbounded ?? this.route(undefined, hints)
    return this.wrap(child, child.connector.newKey(hints))
  }

  async put(bytes: Uint8Array, key?: ObjectKey, hints?: PutHints): Promise<ObjectKey> {
    // A key handed out already (newKey, a replaced object) fixes the child.
    if (key && key.via !== undefined) {
      const { child, childKey } = this.child(key)
      await child.connector.put(bytes, childKey, hints)
      return key
    }
    const child = this.route(bytes.byteLength, hints)
    return this.wrap(child, await child.connector.put(bytes, key, hints))
  }

  // A missing key names this connector (what the user configured) and the child it went to.
  private missing(error: unknown, child: Child): unknown {
    if (!(error instanceof ObjectNotFound)) return error
    return new ObjectNotFound(this.label, error.key, `looked in child '${child.name}', ${child.connector.label}`)
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    const { child, childKey } = this.child(key)
    try {
      return await child.connector.get(childKey)
    } catch (error) {
      throw this.missing(error, child)
    }
  }

  /**
   * Through the child holding the key. A child without `getSync` of its own gets one from a
   * SyncBridge (`withSyncGet`) on its first synchronous read, so a proxy resolves on a plain
   * property access whichever child holds its object; the bridge closes with the child.
   */
  getSync(key: ObjectKey): Uint8Array {
    const { child, childKey } = this.child(key)
    const connector = withSyncGet(child.connector) // as it is when it has getSync
    try {
      return connector.getSync(childKey)
    } catch (error) {
      throw this.missing(error, child)
    }
  }

  async exists(key: ObjectKey): Promise<boolean> {
    const { child, childKey } = this.child(key)
    return child.connector.exists(childKey)
  }

  async evict(key: ObjectKey): Promise<void> {
    const { child, childKey } = this.child(key)
    await child.connector.evict(childKey)
  }

  /** One `putBatch` per child, for the values routed to it; keys in the order of `values`. */
  async putBatch(values: readonly Uint8Array[], hints?: PutHints): Promise<ObjectKey[]> {
    const groups = new Map<Child, number[]>()
    values.forEach((bytes, i) => {
      const child = this.route(bytes.byteLength, hints)
      groups.set(child, [...(groups.get(child) ?? []), i])
    })
    const keys: ObjectKey[] = new Array(values.length)
    await Promise.all(
      [...groups].map(async ([child, indices]) => {
        const childKeys = await child.connector.putBatch(indices.map((i) => values[i]!), hints)
        indices.forEach((i, j) => (keys[i] = this.wrap(child, childKeys[j]!)))
      }),
    )
    return keys
  }

  /** One `getBatch` per child; values in the order of `keys`. */
  async getBatch(keys: readonly ObjectKey[]): Promise<Uint8Array[]> {
    const groups = new Map<Child, { indices: number[]; keys: ObjectKey[] }>()
    keys.forEach((key, i) => {
      const { child, childKey } = this.child(key)
      const group = groups.get(child) ?? { indices: [], keys: [] }
      group.indices.push(i)
      group.keys.push(childKey)
      groups.set(child, group)
    })
    const values: Uint8Array[] = new Array(keys.length)
    await Promise.all(
      [...groups].map(async ([child, group]) => {
        let got: Uint8Array[]
        try {
          got = await child.connector.getBatch(group.keys)
        } catch (error) {
          throw this.missing(error, child)
        }
        group.indices.forEach((i, j) => (values[i] = got[j]!))
      }),
    )
    return values
  }

  /** Closes every child (each cleans up as its own `close` says). */
  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c.connector.close()))
  }

  toConfig(): ConnectorConfig {
    const children: Record<string, { connector: ConnectorConfig; policy: MultiPolicy }> = {}
    for (const [name, child] of this.byName) children[name] = { connector: child.connector.toConfig(), policy: { ...child.policy } }
    return { type: this.type, connectors: children }
  }
}

connectors.register('multi', (options) => new MultiConnector(options as unknown as MultiConnectorOptions))
