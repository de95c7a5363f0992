// A bash app whose command dies of SIGTERM at its block's end, before the manager itself is
// signalled (seen on Slurm, which signals every process of a job at once: the worker's report of
// the dead command can beat the manager's own SIGTERM), is stopped by the block's walltime: it
// is retried for free (the config has retries: 0) on the replacement block.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider } from 'tsflow'
import { termAt } from '../fixtures/walltime-apps.js'
import { waitFor } from '../helpers/wait.js'

t.test("a bash app killed by a signal within the margin of its block's end is retried free", async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-walltime-signal-'))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 2000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  const htex = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    prefetchCapacity: 0,
    strategy: 'simple',
    strategyPeriodMs: 200,
    drainLeadMs: 3000,
    walltimeMarginMs: 4000,
    // parallelism 0: one block while there is work; a second appears only as the replacement.
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 2, parallelism: 0, walltime: '00:00:15' }),
  })
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [htex], retries: 0 }).start()
  await waitFor(() => htex.managers().some((info) => info.blockId === '0'), "block 0's manager to register", 30_000)
  const endMs = htex.managers().find((info) => info.blockId === '0')!.endMs!
  const marker = join(scratch, 'ran-on')
  // Killed 2 s before the end: inside the 4 s margin, before LocalProvider signals the block.
  t.equal(await termAt.with({ dfk: kernel })(endMs - 2000, marker), 0, 'the task ran again, with retries 0')
  t.equal(readFileSync(marker, 'utf8').trim(), '1', 'on the replacement block')
  const log = readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8')
  t.match(log, /termAt try 1 was stopped by its block's walltime; retrying \(free retry 1 of 3/)
})
