// ThreadPoolExecutor specifics: batching, priorities, thread loss.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, ThreadPoolExecutor, WorkerLost, app } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { stampOrder } from './fixtures/order.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pool-'))
let kernel: DataFlowKernel
t.before(async () => {
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 1 })] }).start()
})
t.teardown(async () => {
  await kernel.cleanup()
  rmSync(scratch, { recursive: true, force: true })
})

t.test('a thread that dies mid-task fails that task with WorkerLost and the pool recovers', async (t) => {
  const error = (await apps.exitWorker.with({ dfk: kernel })(3).then(() => undefined, (e: unknown) => e)) as WorkerLost
  t.ok(error instanceof WorkerLost, `WorkerLost (got ${String(error)})`)
  t.equal(error.exitCode, 3)
  t.match(error.message, /exited with code 3/)
  t.equal(await apps.double.with({ dfk: kernel })(21), 42, 'a replacement thread runs the next task')
})

t.test('queued tasks leave in priority order', async (t) => {
  const order = (priority: number) => stampOrder.with({ dfk: kernel, priority })(priority)
  const blocker = apps.spin.with({ dfk: kernel })(200)
  const futures = [order(0), order(10), order(5), order(-1), order(7)]
  await blocker
  const stamps = await Promise.all(futures)
  const byTime = [...stamps].sort((a, b) => (a.at < b.at ? -1 : 1)).map((s) => s.priority)
  t.same(byTime, [10, 7, 5, 0, -1])
})

t.test('cancel() stops a task already running alone on a thread', async (t) => {
  const running = apps.spin.with({ dfk: kernel, walltime: 60 })(30_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(running.cancel(), true)
  await t.rejects(running, { code: 'E_CANCELLED' })
  t.equal(await apps.double.with({ dfk: kernel })(2), 4)
})

t.test('an app made from an exported function of another module works by reference', async (t) => {
  t.equal(await apps.add.with({ dfk: kernel })(2, 3), 5)
  t.type(app, 'function')
})
