// Failure visibility on the real Slurm (test/setup/slurm-up.sh): a block that cannot start fails
// the tasks waiting for it with Slurm's own words and the block's stderr, never a hang.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'

import { DataFlowKernel, HighThroughputExecutor, ProviderError, SlurmProvider } from 'tsflow'
import * as apps from '../fixtures/apps.js'
import { ensureSlurm, type SlurmCluster } from '../helpers/slurm.js'

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('Slurm block failures reach the futures', { skip: cluster }, () => {})
} else {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-slurm-failures-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

  /** The error a task gets from an executor whose only block is started with these options. */
  async function taskError(t: Test, name: string, options: Record<string, unknown>): Promise<Error> {
    const executor = new HighThroughputExecutor({
      address: (cluster as SlurmCluster).controllerAddress,
      maxWorkersPerNode: 1,
      // 'none' starts no replacement: the one block's failure must explain itself
      strategy: 'none',
      strategyPeriodMs: 500,
      provider: new SlurmProvider({ partition: (cluster as SlurmCluster).partition, initBlocks: 1, maxBlocks: 1, ...options }),
    })
    const kernel = new DataFlowKernel({ runDir: join(scratch, name), executors: [executor] })
    t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
    // The first blocks are submitted as the executor starts: a submission Slurm refuses fails
    // start() itself; a block that fails later fails the waiting task.
    const error = await kernel
      .start()
      .then(() => apps.double.with({ dfk: kernel })(1))
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    t.ok(error instanceof ProviderError, `a ProviderError, not a hang or a result (got ${String(error)})`)
    return error as Error
  }

  t.test('a bad partition: starting the executor fails with sbatch’s message', async (t) => {
    const error = await taskError(t, 'partition', { partition: 'nosuchpartition' })
    t.match(error.message, /invalid partition specified: nosuchpartition/)
  })

  t.test('a failing workerInit: the task fails with the failing line and bash’s complaint', async (t) => {
    const error = await taskError(t, 'init', { workerInit: 'source /nonexistent/tsflow-venv/bin/activate' })
    t.match(error.message, /slurm says FAILED/)
    t.match(error.message, /ended during workerInit/)
    t.match(error.message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/)
  })

  t.test('a block Slurm will never start: the task fails with the reason at the first poll', async (t) => {
    const error = await taskError(t, 'never', { nodesPerBlock: (cluster as SlurmCluster).nodes.length + 1 })
    t.match(error.message, /Slurm will never start this job as submitted: Partition(Config|NodeLimit)/)
  })
}
