// A block that cannot start must not leave tasks waiting forever: the futures fail with the
// provider's message and the block's own stderr, within about one strategy period.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ProviderError } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-block-failure-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('a block whose workerInit fails fails the waiting tasks with the failing line and its stderr', async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    // 'none' starts no replacement: one failed block must be enough to explain the failure
    strategy: 'none',
    strategyPeriodMs: 200,
    provider: new LocalProvider({
      initBlocks: 1,
      maxBlocks: 1,
      workerInit: ['echo "preparing the environment"', 'source /nonexistent/tsflow-venv/bin/activate'],
    }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'init'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  const futures = [apps.double.with({ dfk: kernel })(1), apps.double.with({ dfk: kernel })(2)]
  for (const future of futures) {
    const error = await future.then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError, 'a ProviderError, not a hang')
    t.match((error as Error).message, /block \S+ failed before any manager connected/)
    t.match((error as Error).message, /ended during workerInit with exit code 1; the command did not start/)
    t.match((error as Error).message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/, "bash's own complaint, from the block's stderr")
  }
})

t.test('a block failing while another block is still starting leaves the tasks to that one', async (t) => {
  // Two blocks: the first fails at once, the second starts normally and runs the task.
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    strategy: 'none',
    strategyPeriodMs: 200,
    provider: new LocalProvider({
      initBlocks: 2,
      maxBlocks: 2,
      // only the first block (block id "0") fails; the manager of the other starts after a pause
      workerInit: '[ "$TSFLOW_BLOCK_ID" != 0 ] || exit 7; sleep 1',
    }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'two'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.equal(await apps.double.with({ dfk: kernel })(21), 42, 'the task waits for the block that can start')
})
