import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { dispose, factoryOf, FileConnector, ownershipOf, Store, type OwnedProxy } from 'tsflow/proxy'
import * as apps from '../fixtures/owned-args-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'

// A task owns the owned proxies it is called with: what it neither returns, passes on nor
// disposes is dropped (its object evicted) once its result has been encoded, not whenever the
// worker's garbage collector runs. The file connector shows what is left.

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-owned-args-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const objectIds = (directory: string) => readdirSync(directory).filter((name) => name.endsWith('.ready')).map((name) => name.slice(0, -'.ready'.length))
const failure = async (run: () => unknown): Promise<Error> => {
  try {
    await run()
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a failure')
}

for (const kind of EXECUTOR_KINDS)
  t.test(`${kind}: owned arguments a task kept are dropped after it`, async (t) => {
    const kernel = await startKernel(t, kind)
    const directory = join(scratch, kind)
    const store = new Store(`owned-args-${kind}-${process.pid}`, new FileConnector({ directory }))
    t.teardown(() => store.close())
    const owned = () => store.owned(new Float64Array(100).fill(1))
    const stored = (proxy: unknown) => objectIds(directory).includes(factoryOf(proxy).key.id)

    const read = await owned()
    t.same(await apps.sumOwned.with({ dfk: kernel })(read), { kind: 'owned', sum: 100 }, 'the task got it owned')
    await waitFor(() => !stored(read), 'the object the task kept to be evicted')

    const [a, b, c] = [await owned(), await owned(), await owned()]
    t.equal(await apps.sumNested.with({ dfk: kernel })([a, b], { data: c }), 300)
    await waitFor(() => ![a, b, c].some(stored), 'owned proxies nested in an array and an object to be evicted')

    const returned = await owned()
    const back = await apps.giveBack.with({ dfk: kernel })(returned)
    const arrived = back.deep.inside[0]!
    t.equal(ownershipOf(arrived), 'owned', 'an owned argument the task returned comes back owned')
    t.equal(arrived[99], 1, 'and its object is still there')
    t.ok(stored(arrived))

    const failing = await owned()
    const error = await failure(() => apps.readThenFail.with({ dfk: kernel })(failing))
    t.match(error.message, 'failed after reading 100 values')
    t.ok(stored(failing), 'a failed task leaves its owned argument (a retry needs it)')

    const disposed = await owned()
    t.equal(await apps.disposeItself.with({ dfk: kernel })(disposed), 1)
    t.notOk(stored(disposed), 'a task that disposed its argument itself: evicted, and no error')

    const borrowed = await owned()
    t.equal(await apps.keepBorrow.with({ dfk: kernel })(borrowed), 100)
    // Nothing to wait for (the object is meant to stay); a later task running proves the worker went on.
    t.same(await apps.sumOwned.with({ dfk: kernel })(await owned()), { kind: 'owned', sum: 100 })
    t.ok(stored(borrowed), 'an argument the task still lends out (a borrow it kept) is not dropped')

    await dispose(arrived as OwnedProxy<Float64Array>)
    for (const key of objectIds(directory)) await store.evict({ id: key })
  })
