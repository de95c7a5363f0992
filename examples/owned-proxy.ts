/**
 * Owned proxies: one owner per stored object, borrowed into tasks, evicted when disposed.
 *   npm run build:ts && node out/examples/owned-proxy.js
 * The owner lends the array to tasks as shared borrows (read) or one mutable borrow (update);
 * `submitScoped` gives the borrows back when each task's future settles. A task can also make an
 * owned object and return it: ownership moves to the caller. Disposing an owner (`await using`,
 * or `dispose()`) evicts its object, so the store is empty at the end without any evict call.
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { TsflowError, app, load, main, submitScoped } from 'tsflow'
import { FileConnector, Store, borrow, borrowCount, dispose, mutBorrow, release, update, type RefMutProxy, type StoreConfig } from 'tsflow/proxy'

const sumOf = app((values: Float64Array) => values.reduce((a, b) => a + b, 0), { name: 'sumOf' })

// A mutable borrow may write a new value under the same key; the owner sees it after the task.
const scale = app(
  async (values: RefMutProxy<Float64Array>, factor: number) => {
    await update(values, values.map((x) => x * factor))
  },
  { name: 'scale' },
)

// Made in the worker and returned owned: the caller's future resolves to the new owner.
const histogram = app(
  async (config: StoreConfig, values: Float64Array, bins: number) => {
    const counts = new Float64Array(bins)
    for (const x of values) counts[Math.min(bins - 1, Math.floor(x / 100))]! += 1
    return Store.fromConfig(config).owned(counts)
  },
  { name: 'histogram' },
)

main(import.meta, async () => {
  await using kernel = await load()
  const directory = join(kernel.runDir, 'objects')
  // Declared first, closed last: every owned proxy below is disposed before the store closes.
  await using store = new Store('owned-example', new FileConnector({ directory }))
  const files = (): number => readdirSync(directory).filter((f) => f.endsWith('.ready')).length
  {
    await using data = await store.owned(Float64Array.from({ length: 1_000_000 }, (_, i) => i % 1000))

    // Three tasks read it at once, each through a shared borrow released when its task settles.
    const sums = await Promise.all([1, 2, 3].map(() => submitScoped(sumOf, borrow(data))))
    console.log(`sums through shared borrows: ${sums.join(' ')}; borrows out now: ${borrowCount(data).shared}`)

    // One task changes it through the one mutable borrow.
    await submitScoped(scale, mutBorrow(data), 0.5)
    console.log(`after the mutable borrow, the owner reads data[999] = ${data[999]}`)

    // Breaking a rule is a typed error, not a silent leak: no dispose while a borrow is out.
    const lent = borrow(data)
    try {
      await dispose(data)
    } catch (error) {
      console.log(`refused: ${(error as TsflowError).code}: ${(error as Error).message}`)
    }
    release(lent)

    // A task's owned result: this process owns it now, and disposes it by hand.
    const counts = await submitScoped(histogram, store.toConfig(), borrow(data), 5)
    console.log(`histogram made in a task: ${Array.from(counts).join(' ')}; objects in the store: ${files()}`)
    await dispose(counts)
  } // `await using`: `data` is disposed here, which evicts it
  console.log(`files left in ${directory}: ${readdirSync(directory).length}`)
})
