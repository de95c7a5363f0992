import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { factoryOf, FileConnector, isResolved, Store } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-proxy-tasks-'))
const store = new Store(`tasks-${process.pid}`, new FileConnector({ directory: join(scratch, 'objects') }))
t.teardown(async () => {
  await store.close()
  rmSync(scratch, { recursive: true, force: true })
})

for (const kind of EXECUTOR_KINDS) t.test(`${kind}: a proxy argument travels as its factory and arrives resolved in the task`, async (t) => {
  const kernel = await startKernel(t, kind)
  const data = new Float64Array(100_000).fill(1)
  const proxy = await store.proxy(data)
  const seen = await apps.inspect.with({ dfk: kernel })(proxy, 5)
  t.same(seen, { isProxy: true, resolved: true, sum: 100_005 }, 'the worker resolved the proxy before the call')
  t.notOk(isResolved(proxy), 'the caller never fetched the data')

  const once = await store.proxy({ value: 'read once' }, { evict: true })
  t.equal(await apps.readKey.with({ dfk: kernel })(once), 'read once')
  t.notOk(await store.exists(factoryOf(once).key), 'evict: true removed it after the task resolved it')

  const gone = await store.proxy({ value: 'gone' })
  await store.evict(factoryOf(gone).key)
  const error = (await apps.readKey.with({ dfk: kernel })(gone).then(
    () => undefined,
    (e: unknown) => e,
  )) as Error & { code?: string }
  t.equal(error?.code, ErrorCode.PROXY_RESOLVE, 'a proxy that cannot be resolved fails the task with E_PROXY_RESOLVE')
  t.match(error.message, store.name)
  t.equal((error.cause as { code?: string } | undefined)?.code, ErrorCode.OBJECT_NOT_FOUND, 'with the connector error as cause')
})
