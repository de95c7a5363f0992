// Config-level retries and the retry handler's cost model.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, ThreadPoolExecutor, type RetryTaskInfo } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-retries-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('the retry handler decides what each failure costs', async (t) => {
  const seen: { message: string; tries: number; failCost: number }[] = []
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'a'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 4,
    // Expensive failures (cost 2) use up the budget twice as fast.
    retryHandler: (error: unknown, task: RetryTaskInfo) => {
      seen.push({ message: (error as Error).message, tries: task.tries, failCost: task.failCost })
      return 2
    },
  }).start()
  t.teardown(() => kernel.cleanup())
  const future = apps.failWithCause.with({ dfk: kernel })('always')
  await t.rejects(future, /outer always/)
  t.same(
    seen.map((s) => [s.tries, s.failCost]),
    [
      [1, 0],
      [2, 2],
      [3, 4],
    ],
    'tries 1 and 2 are retried (cost 2, 4 <= 4); the third failure (cost 6) ends it',
  )
})

t.test('a retry handler that throws stops retrying, and the task still fails with its own error', async (t) => {
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'b'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 5,
    retryHandler: () => {
      throw new Error('handler bug')
    },
  }).start()
  t.teardown(() => kernel.cleanup())
  await t.rejects(apps.failWithCause.with({ dfk: kernel })('x'), /outer x/)
})

t.test('config retries apply to every app; zero cost means retry for free', async (t) => {
  let calls = 0
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'c'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 1,
    retryHandler: () => (++calls < 3 ? 0 : 1),
  }).start()
  t.teardown(() => kernel.cleanup())
  // flaky has its own retries: 3, which wins over the config's 1.
  t.equal(await apps.flaky.with({ dfk: kernel })(3), 3)
  await t.rejects(apps.failWithCause.with({ dfk: kernel })('y'), /outer y/)
})
