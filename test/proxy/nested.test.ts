// Proxies nested in arrays and plain objects among task arguments are resolved before the call;
// a proxy a task returns goes back as a proxy; workers do not keep a task's targets in their store
// cache once it ended (docs/proxy.md "Proxies as task arguments", "Worker caches").
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { extract, factoryOf, FileConnector, isProxy, isResolved, Store } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-exec-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-proxy-nested-'))
const store = new Store(`nested-${process.pid}`, new FileConnector({ directory: join(scratch, 'objects') }))
t.teardown(async () => {
  await store.close()
  rmSync(scratch, { recursive: true, force: true })
})

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: nested proxies, proxies in results, worker caches`, async (t) => {
    const kernel = await startKernel(t, kind, { workers: 1 })
    const dfk = { dfk: kernel }
    const [a, b, c, d] = await store.proxyBatch([{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 'd' }])
    const seen = await apps.nested.with(dfk)({ a: a!, list: [b!, c!], deep: { more: [d!] } })
    t.same(seen, { resolvedBeforeUse: [true, true, true, true], values: ['a', 'b', 'c', 'd'] }, 'every nested proxy was resolved before the call')
    t.notOk(isResolved(a), 'the caller fetched nothing')

    // A proxy returned by a task comes back as a proxy of the same object (only its factory travelled).
    const back = (await apps.identity.with(dfk)(a)) as { value: string }
    t.ok(isProxy(back), 'a returned proxy is a proxy for the caller')
    t.notOk(isResolved(back), 'and was not fetched on the way back')
    t.same(factoryOf(back).key, factoryOf(a).key)
    t.equal(back.value, 'a')
    const nestedBack = (await apps.passBack.with(dfk)([b, { c }])) as { same: [{ value: string }, { c: { value: string } }]; top: boolean }
    t.ok(isProxy(nestedBack.same[0]) && isProxy(nestedBack.same[1].c), 'nested proxies in a result come back as proxies')
    t.same(await extract(nestedBack.same[1].c), { value: 'c' })

    // Worker caches: the target is cached while the task runs (shared by its proxies), dropped when it ends.
    const key = factoryOf(d).key
    t.same(await apps.cachedDuring.with(dfk)(d!, store.name, key), { value: 'd', cached: true }, 'cached during the task')
    t.same(await apps.cachedAfter.with(dfk)(store.name, key), { known: true, cached: false }, 'not kept by the worker once the task ended')
  })
}
