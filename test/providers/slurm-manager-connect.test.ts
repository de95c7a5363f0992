// Managers that never connect (an address the nodes cannot reach, a workerInit that never ends)
// on the real Slurm (test/setup/slurm-up.sh): the block is running, so nothing ever fails on its
// own; managerConnectTimeoutMs bounds the wait, cancels the job and fails the waiting task with
// what to check.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'

import { DataFlowKernel, HighThroughputExecutor, ProviderError, SlurmProvider } from 'tsflow'
import * as apps from '../fixtures/apps.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { waitFor } from '../helpers/wait.js'

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('managers that never connect', { skip: cluster }, () => {})
} else {
  /** squeue's line for the job ('' once Slurm lists it no more). */
  const queued = (jobId: string): string => {
    try {
      return execFileSync('squeue', ['-h', '-j', jobId, '-t', 'all', '-o', '%T'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).replace(/(CANCELLED|COMPLETED|FAILED)\s*/g, '').trim()
    } catch (error) {
      // An id Slurm has already purged: "Invalid job id specified".
      if (/Invalid job id/.test(String((error as { stderr?: string }).stderr))) return ''
      throw error
    }
  }

  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-slurm-connect-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

  /** Starts a kernel on `executor` (cleaned up with `t`) and runs one task: its error, if it failed. */
  const firstTaskError = async (t: Test, executor: HighThroughputExecutor, runDir: string): Promise<Error | undefined> => {
    const kernel = new DataFlowKernel({ runDir: join(scratch, runDir), executors: [executor] })
    t.teardown(() => kernel.cleanup({ deadlineMs: 5000 }))
    await kernel.start()
    return apps.double.with({ dfk: kernel })(1).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
  }

  t.test('a running block whose managers never connect fails the waiting task and is cancelled', async (t) => {
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      maxWorkersPerNode: 1,
      strategyPeriodMs: 500,
      managerConnectTimeoutMs: 2000,
      // The job runs, but its managers never start: from the interchange's side the same as
      // managers that cannot reach it.
      provider: new SlurmProvider({ partition: cluster.partition, initBlocks: 1, maxBlocks: 1, walltime: '00:05:00', workerInit: 'sleep 600' }),
    })
    const error = await firstTaskError(t, executor, 'run')
    t.ok(error instanceof ProviderError, `a ProviderError, not a hang or a result (got ${String(error)})`)
    t.match(error!.message, /provider slurm: block 0 failed before any manager connected/)
    t.match(error!.message, /block 0 was running \(job \d+; slurm says RUNNING: on tsfslurm\d\)/)
    t.match(error!.message, /none of its managers connected within 2 s/)
    t.match(error!.message, new RegExp(`check that the nodes can reach ${cluster.controllerAddress.replace(/\./g, '\\.')}:\\d+ \\(executor option address\\)`))
    t.match(error!.message, /managerConnectTimeoutMs/)
    t.match(error!.message, /its job was cancelled/)
    const jobId = /job (\d+)/.exec(error!.message)![1]!
    // scancel is asynchronous in Slurm: the job leaves the queue shortly after.
    await waitFor(() => queued(jobId) === '', `job ${jobId} to leave the queue`, 30_000, 200)
    t.pass(`job ${jobId} left the queue`)
  })

  t.test('address 127.0.0.1, which the nodes cannot reach: the managers say so and the task fails with their words', async (t) => {
    const executor = new HighThroughputExecutor({
      address: '127.0.0.1',
      maxWorkersPerNode: 1,
      strategy: 'none',
      strategyPeriodMs: 500,
      provider: new SlurmProvider({ partition: cluster.partition, initBlocks: 1, maxBlocks: 1, walltime: '00:05:00' }),
    })
    const error = await firstTaskError(t, executor, 'loopback')
    t.ok(error instanceof ProviderError, `a ProviderError, not a hang or a result (got ${String(error)})`)
    t.match(error!.message, /could not connect to the interchange at tcp:\/\/127\.0\.0\.1:\d+ from tsfslurm\d/)
    t.match(error!.message, /check that this node can reach that address \(the executor's address option; 127\.0\.0\.1 only works on the workflow's own host\)/)
  })
}
