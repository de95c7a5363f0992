/**
 * Large data through a store without changing the apps: the executor's `proxy` option.
 *   npm run build:ts && node out/examples/proxy-executor-option.js
 * The apps below know nothing about stores. The thread executor is given
 * `proxy: { store, threshold }`: any argument or result that encodes to more than the threshold
 * goes through the store instead of the task message, and is evicted when the task is reported.
 * Tasks get plain values and futures resolve to plain values. The same option works on
 * `HighThroughputExecutor` (with a connector its workers reach: `file`, `redis`, `shm` on one node, `zmq`).
 */
import { readdirSync, watch } from 'node:fs'
import { join } from 'node:path'
import { ThreadPoolExecutor, app, load, main } from 'tsflow'

const meanOf = app((samples: Float64Array) => samples.reduce((a, b) => a + b, 0) / samples.length, { name: 'meanOf' })
const doubled = app((samples: Float64Array) => samples.map((x) => 2 * x), { name: 'doubled' })
const describe = app((value: unknown) => `${Object.prototype.toString.call(value)} of ${(value as ArrayLike<unknown>).length}`, { name: 'describe' })

main(import.meta, async () => {
  const directory = join('runinfo', `objects-${process.pid}`)
  const kernel = await load({
    executors: [
      new ThreadPoolExecutor({
        // A store config: the executor builds the store when it starts and closes it at shutdown.
        proxy: { store: { name: 'auto', connector: { type: 'file', directory } }, threshold: '1MB' },
      }),
    ],
  })

  // Only to show what happens: count the objects written to the store directory.
  const puts = new Set<string>()
  const watcher = watch(directory, (_event, name) => {
    if (name?.endsWith('.ready')) puts.add(name) // each object's ready marker, made by its put
  })

  try {
    const small = new Float64Array(1000).fill(1) // 8 kB: travels with the task, as always
    const large = Float64Array.from({ length: 2_000_000 }, (_, i) => i % 10) // 16 MB: through the store

    console.log(`the task sees: ${await describe(large)}`) // a plain Float64Array, not a proxy
    console.log(`mean of the small array: ${await meanOf(small)}`)
    console.log(`mean of the large array: ${await meanOf(large)}`)

    // A large result comes back through the store too; the future resolves to the array itself.
    const twice = await doubled(large)
    console.log(`the future gives: ${Object.prototype.toString.call(twice)}, mean ${await meanOf(twice)}`)

    // One large argument shared by four tasks is stored once and evicted after the last.
    const means = await Promise.all([1, 2, 3, 4].map(() => meanOf(large)))
    console.log(`fan-out means: ${means.join(' ')}`)
  } finally {
    watcher.close()
  }
  await kernel.cleanup() // also closes the store the executor built
  console.log(`objects that went through the store: ${puts.size}`)
  console.log(`files left in ${directory}: ${readdirSync(directory).length}`)
})
