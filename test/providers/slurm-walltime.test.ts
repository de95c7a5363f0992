// Walltime-aware scheduling on the real Slurm (test/setup/slurm-up.sh): the block's walltime
// reaches its managers, so each manager reports its job's end to the interchange; a task longer
// than the block walltime fails at once, a task that fits runs. (Slurm 22.05 sets no
// SLURM_JOB_END_TIME; the batch script looks the job's end up with squeue and exports it.)
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

import { DataFlowKernel, ErrorCode, HighThroughputExecutor, SlurmProvider } from 'tsflow'
import { whereAmI } from '../fixtures/hosts.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { waitFor } from '../helpers/wait.js'

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('walltime-aware scheduling on Slurm', { skip: cluster }, () => {})
} else {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-slurm-walltime-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

  t.test("a Slurm block's managers know its end; too long fails at once, a task that fits runs", async (t) => {
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      maxWorkersPerNode: 1,
      heartbeatPeriodMs: 500,
      heartbeatThresholdMs: 5000,
      provider: new SlurmProvider({ partition: cluster.partition, walltime: '00:05:00', initBlocks: 1, maxBlocks: 1 }),
    })
    const started = Date.now()
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }))

    const tooLong = await whereAmI.with({ dfk: kernel, walltime: 400 })(0).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: string },
    )
    t.equal(tooLong?.code, ErrorCode.WALLTIME_EXCEEDS_BLOCK)
    t.match(tooLong?.message, /declares a walltime of 400 s, but the blocks of executor htex \(provider slurm\) have a walltime of 300 s/)

    const fits = await whereAmI.with({ dfk: kernel, walltime: 60 })(1)
    t.ok(cluster.nodes.some((node) => node.address === fits.address), `a task that fits ran on a Slurm node (${fits.address})`)

    await waitFor(() => executor.managers().length === 1, 'the manager to register', 60_000)
    const endMs = executor.managers()[0]!.endMs
    t.ok(endMs !== undefined, "the manager reported its block's end")
    t.ok(endMs! > started + 290_000 && endMs! <= Date.now() + 300_000, 'about 300 s after the job started')
    const logs = readdirSync(join(kernel.runDir, 'htex')).filter((name) => name.startsWith('manager-'))
    const log = logs.map((name) => readFileSync(join(kernel.runDir, 'htex', name), 'utf8')).join('\n')
    // Slurm 22.05 exports no SLURM_JOB_END_TIME: the batch script asks squeue for the job's end.
    t.match(log, /block ends .* \(from SLURM_JOB_END_TIME\)/, "Slurm's own end for the job, which the batch script looked up")
    const jobId = (executor as unknown as { blocks: { blocks: { jobId?: string }[] } }).blocks.blocks[0]!.jobId!
    const slurmEnd = /EndTime=(\S+)/.exec(execFileSync('scontrol', ['show', 'job', jobId], { encoding: 'utf8' }))?.[1]
    // The manager sends the time left, which the interchange adds to its own clock: equal to the ms it took.
    const off = Math.abs(endMs! - new Date(slurmEnd!).getTime())
    t.ok(off < 1000, `the end the manager reported is Slurm's EndTime (${slurmEnd}; ${off} ms off)`)
  })
}
