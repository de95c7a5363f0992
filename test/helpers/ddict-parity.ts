// Servers for the DDict parity tests (test/ddict/parity): one DDict.create per test file (real redis-servers tsflow
// starts on this machine), and more dictionaries on the same servers through `addresses`, so a
// file that needs several option sets (workingSetSize, waitForKeys) starts its servers once.
import type { Test } from 'tap'
import { DDict, type DDictCreateOptions } from 'tsflow/ddict'

/** A dictionary on servers tsflow starts (destroyed, servers stopped, at teardown). */
export async function created(t: Test, options: DDictCreateOptions = {}): Promise<DDict> {
  let dict: DDict | undefined
  t.teardown(() => dict?.destroy().catch(() => {}))
  dict = await DDict.create({ managersPerNode: 2, totalMem: 256 * 1024 * 1024, ...options })
  return dict
}

/** Another dictionary (its own id) on the servers of `base`, with its own options. */
export async function sibling(t: Test, base: DDict, options: DDictCreateOptions = {}): Promise<DDict> {
  const d = base.descriptor()
  let dict: DDict | undefined
  t.teardown(() => dict?.destroy().catch(() => {}))
  dict = await DDict.create({ addresses: d.shards.map((s) => `${s.host}:${s.port}`), password: d.password, ...options })
  return dict
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
