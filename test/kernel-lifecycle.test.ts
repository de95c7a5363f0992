// Loading, shutting down and misuse of the DataFlowKernel.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, DataFlowKernel, DependencyError, ShutdownError, TaskState, ThreadPoolExecutor, load, clear } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-lifecycle-'))
t.teardown(async () => {
  await clear()
  rmSync(scratch, { recursive: true, force: true })
})
const runDir = join(scratch, 'runinfo')
const small = () => ({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: 1 })] })

t.test('calling an app with no kernel loaded explains what to do', async (t) => {
  t.throws(() => apps.double(1), /no DataFlowKernel is loaded: call `await load\(\)`/)
})

t.test('load() starts a kernel in a new numbered run directory with a log', async (t) => {
  const first = await load(small())
  t.equal(first.runDir, join(runDir, '000'))
  t.equal(await apps.double(2), 4, 'apps use the loaded kernel')
  await t.rejects(load(small()), /already loaded/, 'a second load() is refused with advice')
  await first.cleanup()
  const second = await load(small())
  t.equal(second.runDir, join(runDir, '001'))
  await second.cleanup()
  t.match(readFileSync(join(runDir, '000', 'tsflow.log'), 'utf8'), /run directory .*000/)
})

t.test('config mistakes are reported before anything starts, naming the option path', async (t) => {
  await t.rejects(load({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: 0 })] }), {
    name: 'ConfigError',
    message: 'executors[0].maxThreads must be a positive integer (got 0)',
  })
  await t.rejects(load({ runDir, retires: 2 } as never), /retires is not a known option; did you mean 'retries'\?/)
  t.throws(() => new DataFlowKernel({ executors: [{ type: 'threads', maxThreads: 'x' }] }), ConfigError)
  t.throws(() => new DataFlowKernel({ executors: [{ type: 'nope' }] }), /executors\[0\]\.type must be one of 'threads'/)
  t.notOk(existsSync(join(runDir, '002')), 'no run directory was made for a rejected config')
})

t.test('cleanup() lets running tasks finish within the deadline', async (t) => {
  const kernel = await new DataFlowKernel(small()).start()
  const slow = apps.sleep.with({ dfk: kernel })(200)
  await kernel.cleanup({ deadlineMs: 10_000 })
  t.equal(slow.state, TaskState.exec_done)
  t.equal(await slow, 200)
})

t.test('cleanup() never hangs: tasks past the deadline are cancelled with ShutdownError', async (t) => {
  const kernel = await new DataFlowKernel(small()).start()
  const stuck = apps.spin.with({ dfk: kernel })(60_000)
  const queued = apps.double.with({ dfk: kernel })(1)
  const dependent = apps.double.with({ dfk: kernel })(stuck)
  const started = Date.now()
  await kernel.cleanup({ deadlineMs: 300 })
  t.ok(Date.now() - started < 10_000, `cleanup returned in ${Date.now() - started} ms`)
  await t.rejects(stuck, ShutdownError)
  t.equal(stuck.state, TaskState.cancelled)
  const error = (await dependent.then(() => undefined, (e: unknown) => e)) as DependencyError
  t.ok(error instanceof DependencyError, 'a task waiting on a cancelled one fails as its dependent')
  t.ok(error.rootCause instanceof ShutdownError, 'and the root cause says the kernel shut down')
  t.ok(queued.done, 'every future is settled')
  const late = apps.double.with({ dfk: kernel })(1)
  await t.rejects(late, /submitted to a kernel that is stopped/, 'a call after cleanup fails at once instead of hanging')
})

t.test('await using disposes of the kernel', async (t) => {
  let kernel: DataFlowKernel | undefined
  {
    await using k = await new DataFlowKernel(small()).start()
    kernel = k
    t.equal(await apps.double.with({ dfk: k })(5), 10)
  }
  await t.rejects(apps.double.with({ dfk: kernel })(1), ShutdownError)
})

t.test('task counts and states are visible', async (t) => {
  const kernel = await new DataFlowKernel(small()).start()
  t.teardown(() => kernel.cleanup())
  await Promise.all([1, 2, 3].map((x) => apps.double.with({ dfk: kernel })(x)))
  await apps.failWithCause.with({ dfk: kernel })('x').catch(() => undefined)
  const counts = kernel.taskCounts()
  t.equal(counts.exec_done, 3)
  t.equal(counts.failed, 1)
  t.equal(counts.pending + counts.launched + counts.running, 0)
  t.equal(kernel.outstanding, 0)
})
