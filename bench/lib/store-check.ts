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
  /** for connectors whose contents can be listed (file): every entry left, ours or not */
  entriesLeft?: string[]
}

/**
 * After the runs: the connector must hold none of the objects the runs stored; a file connector's
 * directory must be empty too (catches objects whose key the bench never saw, and partial writes).
 */
export async function checkStoreEmpty(store: Store, config: ConnectorConfig, madeKeys: ReadonlyMap<string, ObjectKey>): Promise<StoreCheck> {
  const keys = [...madeKeys.values()]
  const present = await Promise.all(keys.map((key) => store.connector.exists(key)))
  const objectsLeft = present.filter(Boolean).length
  const check: StoreCheck = { check: 'store-empty', connector: store.connector.label, empty: objectsLeft === 0, objectsMade: keys.length, objectsLeft }
  if (config.type === 'file' && typeof config.directory === 'string' && existsSync(config.directory)) {
    check.entriesLeft = readdirSync(config.directory)
    if (check.entriesLeft.length > 0) check.empty = false
  }
  return check
}

export function storeCheckText(check: StoreCheck): string {
  if (check.empty) return `store empty: yes (${check.connector}: ${check.objectsMade} objects stored during the runs, 0 left)`
  const entries = check.entriesLeft?.length ? `; entries left: ${check.entriesLeft.slice(0, 10).join(', ')}${check.entriesLeft.length > 10 ? ', ...' : ''}` : ''
  return `store empty: NO (${check.connector}: ${check.objectsLeft} of ${check.objectsMade} objects left${entries})`
}
