import { readFileSync } from 'node:fs'
import t from 'tap'
import { listSharedMemory, unlinkSharedMemory } from 'tsflow/native'
import { ShmConnector } from 'tsflow/proxy'

// An evicted shm object's pages are freed when the last mapping of it goes, and a mapping goes
// when the garbage collector collects its Buffer. That only happens soon enough if V8 knows how
// big the mapping is: these tests check that it does, and that a process reading many large
// objects one after the other does not pile their mappings up.

const prefix = `shmmem${process.pid}`
t.teardown(() => {
  for (const name of listSharedMemory(`tsflow-${prefix}`)) unlinkSharedMemory(name)
})

const MB = 1024 * 1024

/** How many segments of this connector are mapped in this process now (evicted ones included; a segment mapped twice counts once). */
function liveMappings(connector: ShmConnector): number {
  const marker = `/dev/shm/tsflow-${connector.prefix}-`
  const mappings = new Set<string>()
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const at = line.indexOf(marker)
    if (at !== -1) mappings.add(line.slice(at).replace(/ \(deleted\)$/, ''))
  }
  return mappings.size
}

t.test('V8 counts a mapping as external memory (the garbage collector sees its size)', async (t) => {
  const connector = new ShmConnector({ prefix: `${prefix}_a` })
  t.teardown(() => connector.close())
  const key = await connector.put(new Uint8Array(64 * MB))
  // Eight views of one object, all held: whatever else the collector frees meanwhile, external
  // memory must cover these eight mappings (the pages are shared, so this costs 64 MB, not 512).
  const views = Array.from({ length: 8 }, () => connector.getSync(key))
  const external = process.memoryUsage().external
  t.equal(views[7]!.byteLength, 64 * MB)
  t.ok(external >= 8 * 64 * MB, `external memory counts every mapping held (${(external / MB).toFixed(0)} MB for 8 x 64 MB)`)
  await connector.evict(key)
})

t.test('reading and evicting many large objects keeps only a few mapped at a time', async (t) => {
  const connector = new ShmConnector({ prefix: `${prefix}_b` })
  t.teardown(() => connector.close())
  const rounds = 40
  const size = 32 * MB
  let most = 0
  for (let i = 0; i < rounds; i++) {
    const key = await connector.put(new Uint8Array(size).fill(i))
    const bytes = await connector.get(key)
    if (bytes[size - 1] !== i) t.fail(`round ${i}: read back the wrong bytes`)
    await connector.evict(key)
    most = Math.max(most, liveMappings(connector))
    // Node unmaps a collected Buffer from the event loop, so a reader has to yield now and then;
    // a task reading large objects does (between tasks, on every await).
    await new Promise((resolve) => setImmediate(resolve))
  }
  // Without V8 knowing the sizes nothing would prompt a collection in this small heap, and every
  // object's pages would stay (as they do when the mappings are never released: all 40).
  t.ok(most <= rounds / 2, `the pages of at most ${most} of ${rounds} evicted objects were still mapped at once (${((most * size) / MB).toFixed(0)} MB)`)
})
