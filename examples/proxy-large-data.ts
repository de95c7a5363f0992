/**
 * Large data through a store, on the embedded local default (worker threads).
 *   npm run build:ts && node out/examples/proxy-large-data.js
 * The 16 MB array is written once into a file-backed store; the tasks get a proxy (a few hundred
 * bytes: the store's config and the key) and their worker fetches the array before calling them.
 * A lifetime evicts the shared object when the stage is done; a one-shot proxy (`evict: true`)
 * is evicted by its one reader. Nothing is left in the store directory at the end.
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { app, load, main } from 'tsflow'
import { ContextLifetime, FileConnector, Store, factoryOf, isResolved } from 'tsflow/proxy'

// Apps are defined at the top level, so workers find them by importing this module. They take
// plain arrays: a proxy argument is resolved by the worker before the call.
const meanOf = app(
  (samples: Float64Array, from: number, to: number) => {
    let sum = 0
    for (let i = from; i < to; i++) sum += samples[i]!
    return sum / (to - from)
  },
  { name: 'meanOf' },
)
const maxOf = app((samples: Float64Array) => samples.reduce((a, b) => Math.max(a, b), -Infinity), { name: 'maxOf' })

main(import.meta, async () => {
  await using kernel = await load()
  // Any directory the workers can read: here inside the run directory, next to tsflow.log.
  const directory = join(kernel.runDir, 'objects')
  // `await using`: the store is closed at the end of the body (after the lifetime below ended).
  await using store = new Store('large-data', new FileConnector({ directory }))
  const samples = Float64Array.from({ length: 2_000_000 }, (_, i) => i % 1000) // 16 MB

  {
    // Everything stored with this lifetime is evicted when the block ends (`await using`).
    await using stage = new ContextLifetime(store, { name: 'stage-1' })
    const shared = await store.proxy(samples, { lifetime: stage }) // `await`: the put happens now
    console.log(`a proxy travels as ${JSON.stringify(factoryOf(shared)).length} bytes instead of ${samples.byteLength} bytes`)

    // Four tasks read the same stored array; the caller never fetches it.
    const quarter = samples.length / 4
    const means = await Promise.all([0, 1, 2, 3].map((q) => meanOf(shared, q * quarter, (q + 1) * quarter)))
    console.log(`means of the four quarters: ${means.join(' ')}`)
    console.log(`fetched in the caller: ${isResolved(shared)}`)
    console.log(`objects in the store during the stage: ${readdirSync(directory).filter((f) => f.endsWith('.ready')).length}`)
  } // the lifetime ends here: the shared array is evicted

  // A value read exactly once: the reader evicts it as soon as it has it.
  const once = await store.proxy(samples.map((x) => x * 2), { evict: true })
  console.log(`max of the doubled samples: ${await maxOf(once)}`)

  console.log(`files left in ${directory}: ${readdirSync(directory).length}`)
}) // the store, then the kernel, are closed as their `await using` scope ends
