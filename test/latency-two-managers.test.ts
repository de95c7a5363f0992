// Across managers: a short task submitted with a long one must not sit in the prefetch of the
// manager running the long task while another manager has an idle worker (the interchange fills
// idle workers on every manager before it uses any manager's prefetch).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider } from 'tsflow'
import { sleepFor, spinFor } from './fixtures/latency.js'
import { waitFor } from './helpers/wait.js'

t.test('two managers of one worker each, deep prefetch: the short task runs on the idle manager', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-two-managers-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    prefetchCapacity: 16,
    provider: new LocalProvider({ initBlocks: 2, minBlocks: 2, maxBlocks: 2 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
  await waitFor(() => executor.managers().length === 2, 'both managers to register', 60_000)
  // Each worker has imported the app module: two overlapping tasks take both managers.
  t.same(await Promise.all([sleepFor.with({ dfk: kernel })(300), sleepFor.with({ dfk: kernel })(300)]), [300, 300])

  for (let round = 0; round < 3; round++) {
    const spin = spinFor.with({ dfk: kernel })
    // Submitted in one turn, so they reach the interchange in one message.
    const long = spin(4000)
    const short = spin(10)
    await waitFor(() => short.done, 'the short task to be done', 60_000, 5)
    t.equal(long.done, false, `round ${round}: the short task did not wait behind the long one`)
    t.equal(await long, 4000)
  }
})
