// Proxy futures in a real workflow: a consumer task started before its producer waits (in its
// worker, before the call) for the value the producer task sets, through the thread executor and
// HTEX with a file connector.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { FileConnector, Store } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-exec-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-proxy-future-'))
const directory = join(scratch, 'objects')
const store = new Store(`future-${process.pid}`, new FileConnector({ directory }))
t.teardown(async () => {
  await store.close()
  rmSync(scratch, { recursive: true, force: true })
})

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: a consumer started before its producer gets the value the producer sets`, async (t) => {
    const kernel = await startKernel(t, kind, { workers: 2 })
    const dfk = { dfk: kernel }
    const future = store.future<{ rows: number[] }>({ timeoutMs: 60_000, evict: true })
    const consumer = apps.consume.with(dfk)(future.proxy())
    // The consumer's worker is waiting for the value now (nothing is stored yet).
    await waitFor(() => consumer.state === 'running', 'the consumer to be running on a worker')
    t.notOk(await future.done(), 'the value is not set before the producer runs')
    t.equal(consumer.done, false)
    const producer = apps.produce.with(dfk)(future, [1, 2, 3, 4])
    t.equal(await producer, 'set', 'the future travelled to the producer task, which set it')
    t.equal(await consumer, 10, 'the consumer got the value')
    t.same(readdirSync(directory), [], 'evict: the consumer removed the value once read')

    // A future nobody sets: the consumer fails with the timeout naming the key.
    const never = store.future<{ rows: number[] }>({ timeoutMs: 300 })
    const error = (await apps.consume.with(dfk)(never.proxy()).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code?: string; cause?: { code?: string; message?: string } }
    t.equal(error?.code, ErrorCode.PROXY_RESOLVE)
    t.equal(error.cause?.code, ErrorCode.PROXY_FUTURE_TIMEOUT)
    t.match(error.cause?.message, never.key.id)
  })
}
