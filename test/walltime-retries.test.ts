// The kernel's side of walltime-aware scheduling: a try stopped by its block's walltime
// (E_BLOCK_WALLTIME) is retried without counting against `retries`, a bounded number of times,
// and the final error says so; a task longer than any block (E_WALLTIME_EXCEEDS_BLOCK) is never retried.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, ErrorCode, ThreadPoolExecutor } from 'tsflow'
import { walltimeVictim } from './fixtures/walltime-apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-walltime-retries-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('tries stopped by the block walltime are retried for free, even with retries 0', async (t) => {
  const seen: number[] = []
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'a'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 0,
    retryHandler: (_error, task) => {
      seen.push(task.tries)
      return 1
    },
  }).start()
  t.teardown(() => kernel.cleanup())
  t.equal(await walltimeVictim.with({ dfk: kernel })(2), 'done', 'two walltime-stopped tries, then success, with retries 0')
  t.same(seen, [], 'the retry handler (the user budget) is never consulted for them')
})

t.test('free retries are bounded; the final error says the block walltime ended each try', async (t) => {
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'b'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 0,
  }).start()
  t.teardown(() => kernel.cleanup())
  const future = walltimeVictim.with({ dfk: kernel })(100)
  const error = await future.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  t.equal((error as { code?: string }).code, ErrorCode.BLOCK_WALLTIME)
  t.match((error as Error).message, /reached the end of its walltime/)
  t.match((error as Error).message, /its blocks reached their walltime on 4 tries; 3 free retries used/)
})

t.test('after the free retries, user retries still apply', async (t) => {
  const kernel = await new DataFlowKernel({
    runDir: join(scratch, 'c'),
    executors: [new ThreadPoolExecutor({ maxThreads: 1 })],
    retries: 1,
  }).start()
  t.teardown(() => kernel.cleanup())
  // 3 free retries + 1 counted retry: the 5th try succeeds.
  t.equal(await walltimeVictim.with({ dfk: kernel })(4), 'done')
})
