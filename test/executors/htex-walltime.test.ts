// Walltime-aware scheduling end to end: HTEX on a LocalProvider whose blocks have an 18 s
// walltime (the provider stops a block at its end, as a batch scheduler does). A task longer than
// any block fails at once; a task that fits runs; a task that no longer fits the time its block
// has left waits for another block; a task running when its block's walltime ends
// is retried on a replacement block without spending retries (the config has none), and that
// replacement was started ahead of the end, while the old block drained.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, ErrorCode, HighThroughputExecutor, LocalProvider } from 'tsflow'
import { hold } from '../fixtures/walltime-apps.js'
import { waitFor } from '../helpers/wait.js'

interface BlockInfoLike {
  blockId: string
  state: string
  submittedAtMs: number
  endedAtMs: number | undefined
  message: string | undefined
}

t.test('block walltime: too long fails at once, fits runs, cut-off task retried free on a replacement started ahead', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-walltime-'))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 2000 })
    if (!process.env.TSFLOW_TEST_KEEP) rmSync(scratch, { recursive: true, force: true })
  })
  const htex = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    // Threads start with their manager: a replacement block is ready soon after it registers.
    workerMode: 'threads',
    // Tasks wait in the interchange, not in a manager's prefetch, so the interchange decides each at dispatch.
    prefetchCapacity: 0,
    strategy: 'simple',
    strategyPeriodMs: 200,
    drainLeadMs: 2000,
    walltimeMarginMs: 500,
    // parallelism 0: one block while there is work, so a second block appears only as a replacement.
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 2, parallelism: 0, walltime: '00:00:18' }),
  })
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [htex], retries: 0 }).start()
  const blocks = () => (htex as unknown as { blocks: { blocks: BlockInfoLike[] } }).blocks.blocks

  const tooLong = hold.with({ dfk: kernel, walltime: 20 })(0)
  const error = (await tooLong.then(
    () => undefined,
    (reason: unknown) => reason,
  )) as Error & { code?: string }
  t.equal(error?.code, ErrorCode.WALLTIME_EXCEEDS_BLOCK, 'a task longer than any block fails at once')
  t.match(error.message, /task #\d+ \(hold\) declares a walltime of 20 s, but the blocks of executor htex \(provider local\) have a walltime of 18 s/)

  const fits = await hold.with({ dfk: kernel, walltime: 3 })(50)
  t.equal(fits.block, '0', 'a task that fits runs on the first block')

  // Plan against the end block 0's manager reported: the filler ends 3.5 s before it (1.5 s
  // before the drain lead), then `cut` starts on block 0 and would run 2.5 s past its end; on the
  // replacement (started 2 s before that end) it has about 16 s.
  const endMs = htex.managers().find((info) => info.blockId === '0')?.endMs
  t.ok(endMs !== undefined, "the manager reported its block's end")
  const filler = hold.with({ dfk: kernel })(Math.max(0, endMs! - 3500 - Date.now()))
  // Queued behind the filler: when the worker frees, block 0 has 3.5 s left, too little for 6 s.
  const late = hold.with({ dfk: kernel, walltime: 6 })(50)
  const cut = hold.with({ dfk: kernel })(6000)
  t.equal((await filler).block, '0')
  t.equal((await late).block, '1', 'a task whose walltime no longer fits block 0 waited for the replacement')
  const result = await cut.catch((e) => {
    const lines = readFileSync(join(kernel!.runDir, 'tsflow.log'), 'utf8').split('\n').filter((l) => /block|drain|scal|retry|manager/.test(l))
    t.comment(lines.join('\n'))
    t.comment(`endMs ${new Date(endMs!).toISOString()}`)
    throw e
  })
  t.equal(result.block, '1', 'the cut-off task ran again, on the replacement block, with retries 0')

  const [first, second] = blocks()
  t.match(first?.message, /reached its walltime of 18 s/, 'the local provider stopped block 0 at its walltime')
  t.ok(second && first?.endedAtMs !== undefined && second.submittedAtMs < first.endedAtMs, 'the replacement was submitted before block 0 ended')
  t.ok(second!.submittedAtMs <= endMs! - 1000, 'it was started at about the drain lead before the end')

  const log = readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8')
  t.match(log, /stopped by its block's walltime; retrying \(free retry 1 of 3, not counted against retries\)/)
  t.match(log, /draining 0 ahead of their walltime/)
  await waitFor(() => blocks()[0]?.state === 'failed', 'block 0 ended')
})
