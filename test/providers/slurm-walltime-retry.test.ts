// Walltime-aware scheduling end to end on the real Slurm (test/setup/slurm-up.sh), with 1-minute
// blocks that Slurm itself kills at their time limit (TIMEOUT): a task longer than any block fails
// at once; a task whose declared walltime no longer fits the first block waits for the replacement,
// which the strategy starts ahead of the first block's end; a task running when Slurm kills its
// block is retried for free (the config has retries: 0) on the replacement and succeeds.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

import { DataFlowKernel, ErrorCode, HighThroughputExecutor, SlurmProvider } from 'tsflow'
import { hold, outlast, outlastBash } from '../fixtures/walltime-apps.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { waitFor } from '../helpers/wait.js'

interface BlockInfoLike {
  blockId: string
  jobId: string | undefined
  state: string
  submittedAtMs: number
  endedAtMs: number | undefined
  message: string | undefined
}

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('walltime retries on Slurm', { skip: cluster }, () => {})
} else {
  t.test('Slurm kills a block at its walltime: the cut-off task runs again, free, on a replacement started ahead', async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-slurm-wallretry-'))
    let kernel: DataFlowKernel | undefined
    t.teardown(async () => {
      await kernel?.cleanup({ deadlineMs: 10_000 })
      if (!process.env.TSFLOW_TEST_KEEP) rmSync(scratch, { recursive: true, force: true })
    })
    const htex = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      // Three workers (the nodes have 2 CPUs): the task that waits for the replacement finds an
      // idle worker on block 0, so only its walltime keeps it off.
      maxWorkersPerNode: 3,
      coresPerWorker: 0.5,
      // Tasks wait in the interchange, which decides each one at dispatch.
      prefetchCapacity: 0,
      heartbeatPeriodMs: 1000,
      heartbeatThresholdMs: 10_000,
      strategy: 'simple',
      strategyPeriodMs: 1000,
      // The replacement is submitted 12 s before block 0's end. Slurm kills a job at its time
      // limit only at its next time-limit check (we saw 5 to 13 s late): with a longer lead the
      // replacement would itself be drained (at its own end less the lead) before block 0 is gone.
      drainLeadMs: 12_000,
      walltimeMarginMs: 5000,
      // parallelism 0: one block while there is work, so a second block appears only as a replacement.
      provider: new SlurmProvider({ partition: cluster.partition, walltime: '00:01:00', nodesPerBlock: 1, initBlocks: 1, maxBlocks: 2, parallelism: 0 }),
    })
    kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [htex], retries: 0 }).start()
    const blocks = () => (htex as unknown as { blocks: { blocks: BlockInfoLike[] } }).blocks.blocks

    const tooLong = await hold.with({ dfk: kernel, walltime: 70 })(0).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: string },
    )
    t.equal(tooLong?.code, ErrorCode.WALLTIME_EXCEEDS_BLOCK, 'a task longer than the block walltime fails at once')
    t.match(tooLong?.message, /declares a walltime of 70 s, but the blocks of executor htex \(provider slurm\) have a walltime of 60 s/)

    await waitFor(() => htex.managers().some((info) => info.blockId === '0'), "block 0's manager to register", 120_000)
    const endMs = htex.managers().find((info) => info.blockId === '0')!.endMs
    t.ok(endMs !== undefined, "block 0's manager reported its end")
    const firstJob = blocks()[0]!.jobId

    // Runs past block 0's end: Slurm kills it there (TIMEOUT).
    const cut = outlast.with({ dfk: kernel })(300_000)
    // The same in a bash app: Slurm's SIGTERM reaches its child process (a failed command, not a lost worker).
    const marker = join(scratch, 'bash-job')
    const cutBash = outlastBash.with({ dfk: kernel })(marker)
    // Once block 0 has less than 48 s left, a task declaring 45 s (+ the 5 s margin) no longer fits it.
    await waitFor(() => endMs! - Date.now() < 48_000, 'block 0 to have less than 48 s left', 60_000)
    const late = outlast.with({ dfk: kernel, walltime: 45 })(0)

    const lateResult = await late
    t.not(lateResult.job, firstJob, `the task whose walltime no longer fit block 0 (job ${firstJob}) ran on the replacement (job ${lateResult.job})`)
    const result = await cut
    const cutDoneMs = Date.now()
    t.equal(result.tryNumber, 1, 'the cut-off task ran again (its second try) with retries 0')
    t.not(result.job, firstJob, `on the replacement block's job ${result.job}`)

    t.equal(await cutBash, 0, 'the cut-off bash app ran again with retries 0')
    t.not(readFileSync(marker, 'utf8').trim(), firstJob, 'on the replacement block')

    await waitFor(() => blocks()[0]?.endedAtMs !== undefined, 'block 0 to end', 60_000)
    const [first, second] = blocks()
    t.equal(first?.state, 'failed')
    t.match(first?.message, /slurm says TIMEOUT.*the block reached its walltime \(00:01:00\) and Slurm stopped it/)
    t.ok(second && second.submittedAtMs < endMs!, 'the replacement was submitted before block 0 ended')
    const err = readFileSync(join(kernel.runDir, 'htex', 'submit_scripts', 'block-0.err'), 'utf8')
    t.match(err, /DUE TO TIME LIMIT/, "Slurm's own word in the block's stderr")
    // The evidence the provider falls back on once Slurm forgets the job (MinJobAge, no accounting)
    // must not say the block's command ended well: none (SIGKILL) or the signal's exit code.
    const exit = (() => {
      try {
        return readFileSync(join(kernel.runDir, 'htex', 'submit_scripts', 'block-0.exit'), 'utf8')
      } catch {
        return 'none'
      }
    })()
    t.notMatch(exit, /^0 /, `the exit record of the block Slurm killed does not say exit code 0 (it says ${exit.trim()})`)

    const log = readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8')
    t.match(log, /stopped by its block's walltime; retrying \(free retry 1 of 3, not counted against retries\)/)
    t.match(log, /draining 0 ahead of their walltime/)
    t.comment(
      `block 0 (job ${firstJob}) ends ${new Date(endMs!).toISOString()}; replacement submitted ${((endMs! - second!.submittedAtMs) / 1000).toFixed(1)} s before; ` +
        `retry started ${((result.startedMs - endMs!) / 1000).toFixed(1)} s after the end, result ${((cutDoneMs - endMs!) / 1000).toFixed(1)} s after; ` +
        `block 0 seen ended ${((first!.endedAtMs! - endMs!) / 1000).toFixed(1)} s after its end`,
    )
  })
}
