/** The end-of-bench check that a connector holds none of the objects a bench stored. */
import { existsSync, readdirSync } from 'node:fs'
import type { ConnectorConfig, ObjectKey, Store } from 'tsflow/proxy'

export interface StoreCheck {
  check: 'store-empty'
  connector: string
  empty: boolean
  /** objects the runs stored (proxies made and returned) */
  objectsMade: number
  /** of those, how many the connector still has */
  objectsLeft: number
  /** for connectors whose contents can be listed (file, shm, redis, multi): every entry left, ours or not */
  entriesLeft?: string[]
}

/**
 * After the runs: the connector must hold none of the objects the runs stored; where its contents
 * can be listed (file, shm, redis by key prefix, multi of those) it must hold nothing at all (catches objects whose key
 * the bench never saw, and partial writes).
 */
export async function checkStoreEmpty(store: Store, config: ConnectorConfig, madeKeys: ReadonlyMap<string, ObjectKey>): Promise<StoreCheck> {
  const keys = [...madeKeys.values()]
  const present = await Promise.all(keys.map((key) => store.connector.exists(key)))
  const objectsLeft = present.filter(Boolean).length
  const check: StoreCheck = { check: 'store-empty', connector: store.connector.label, empty: objectsLeft === 0, objectsMade: keys.length, objectsLeft }
  const listed = config.type === 'redis' ? await listRedis(config) : listEntries(config)
  if (listed !== undefined) {
    check.entriesLeft = listed
    if (listed.length > 0) check.empty = false
  }
  return check
}

/**
 * What a connector holds, for the connectors whose contents can be listed from here: a file
 * connector's directory, an shm connector's segments of its prefix in /dev/shm, and the children
 * of a multi connector. undefined: not listable (redis, zmq, local).
 */
export function listEntries(config: ConnectorConfig): string[] | undefined {
  if (config.type === 'file' && typeof config.directory === 'string') return existsSync(config.directory) ? readdirSync(config.directory) : []
  if (config.type === 'shm' && typeof config.prefix === 'string' && existsSync('/dev/shm')) return readdirSync('/dev/shm').filter((name) => name.startsWith(`tsflow-${config.prefix}-`))
  if (config.type === 'multi' && typeof config.connectors === 'object' && config.connectors !== null) {
    const lists = Object.values(config.connectors as Record<string, { connector: ConnectorConfig }>).map((child) => listEntries(child.connector))
    return lists.every((list) => list === undefined) ? undefined : lists.flatMap((list) => list ?? [])
  }
  return undefined
}

/** The files that hold a connector's objects, for the memory sampler's stored_bytes (file, shm, multi of those). */
export function storedPlaces(config: ConnectorConfig | undefined): { directory: string; prefix: string }[] {
  if (!config) return []
  if (config.type === 'file' && typeof config.directory === 'string') return [{ directory: config.directory, prefix: '' }]
  if (config.type === 'shm' && typeof config.prefix === 'string') return [{ directory: '/dev/shm', prefix: `tsflow-${config.prefix}-` }]
  if (config.type === 'multi' && typeof config.connectors === 'object' && config.connectors !== null) {
    return Object.values(config.connectors as Record<string, { connector: ConnectorConfig }>).flatMap((child) => storedPlaces(child.connector))
  }
  return []
}

/** The keys under a redis connector's key prefix (KEYS: fine for a bench's server, not for a busy one). */
async function listRedis(config: ConnectorConfig): Promise<string[] | undefined> {
  if (typeof config.keyPrefix !== 'string' || config.keyPrefix === '') return undefined
  const { createClient } = await import('redis')
  const client = config.url !== undefined ? createClient({ url: String(config.url) }) : createClient({ socket: { host: String(config.host ?? '127.0.0.1'), port: Number(config.port ?? 6379) }, database: Number(config.db ?? 0) })
  await client.connect()
  try {
    return await client.keys(`${config.keyPrefix}*`)
  } finally {
    await client.close()
  }
}

export function storeCheckText(check: StoreCheck): string {
  if (check.empty) return `store empty: yes (${check.connector}: ${check.objectsMade} objects stored during the runs, 0 left)`
  const entries = check.entriesLeft?.length ? `; entries left: ${check.entriesLeft.slice(0, 10).join(', ')}${check.entriesLeft.length > 10 ? ', ...' : ''}` : ''
  return `store empty: NO (${check.connector}: ${check.objectsLeft} of ${check.objectsMade} objects left${entries})`
}
