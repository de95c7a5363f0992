// No scale-in/scale-out oscillation under a steady load: HTEX on a LocalProvider with the real
// Strategy loop (100 ms periods, blocks released after 1 s idle) and a steady closed loop of tasks
// (each finished task replaced at once; one worker per block). The block count is sampled every
// period. With 3 tasks in flight it settles at 3 and stays there; when the load drops to 1 task
// in flight, packed dispatch keeps that task on one block, so the 2 others go idle, are released,
// and the count settles at 1 and stays there (spread dispatch would keep all 3 blocks busy). No
// block is ever started beyond the 3 (a block stopped and started again would be a flip-flop).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider } from 'tsflow'
import { hold } from '../fixtures/walltime-apps.js'
import { waitFor } from '../helpers/wait.js'

const PERIOD_MS = 100
const WATCH_PERIODS = 40

t.test('the block count settles under a steady stream of tasks, up and down, without flip-flop', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-steady-load-'))
  let kernel: DataFlowKernel | undefined
  const streams: { running: boolean; done: Promise<void> }[] = []
  t.teardown(async () => {
    for (const stream of streams) stream.running = false
    await kernel?.cleanup({ deadlineMs: 2000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  const htex = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    workerMode: 'threads',
    prefetchCapacity: 0,
    strategy: 'htex_auto_scale',
    strategyPeriodMs: PERIOD_MS,
    maxIdleTimeMs: 1000,
    // Block activity comes with the status replies, sent every heartbeat period.
    heartbeatPeriodMs: 200,
    heartbeatThresholdMs: 10_000,
    managerSelector: 'packed',
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 6 }),
  })
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [htex] }).start()
  const blockManager = (htex as unknown as { blocks: { activeCount: number; blocks: { blockId: string }[] } }).blocks

  let done = 0
  const startStream = (): void => {
    const stream = { running: true, done: Promise.resolve() }
    stream.done = (async () => {
      while (stream.running) {
        await hold.with({ dfk: kernel! })(150)
        done++
      }
    })()
    streams.push(stream)
  }
  const samples: number[] = []
  const sampler = setInterval(() => samples.push(blockManager.activeCount), PERIOD_MS)
  t.teardown(() => clearInterval(sampler))

  /** Waits until the count is `count`, then watches WATCH_PERIODS periods; returns what it saw then. */
  const settleAt = async (count: number): Promise<number[]> => {
    await waitFor(() => samples.at(-1) === count, `${count} blocks`, 60_000)
    const from = samples.length
    await waitFor(() => samples.length >= from + WATCH_PERIODS, `${WATCH_PERIODS} periods`, 60_000)
    return samples.slice(from, from + WATCH_PERIODS)
  }

  for (let i = 0; i < 3; i++) startStream()
  // Steady once every block runs tasks: a dozen done.
  await waitFor(() => done >= 12, 'the stream to flow', 60_000)
  const doneBefore = done
  const high = await settleAt(3)
  t.same([...new Set(high)], [3], 'three tasks in flight: 3 blocks, every period')
  t.ok(done - doneBefore > WATCH_PERIODS / 2, `the stream kept flowing (${done - doneBefore} tasks)`)

  // The load drops to one task in flight.
  for (const stream of streams.slice(1)) stream.running = false
  const low = await settleAt(1)
  t.same([...new Set(low)], [1], 'one task in flight: the idle blocks were released, 1 block every period')

  clearInterval(sampler)
  t.comment(`block count per period: ${samples.join(' ')}; ${done} tasks done`)
  t.equal(blockManager.blocks.length, 3, 'no block was ever started beyond the 3 (none stopped and started again)')
  for (const stream of streams) stream.running = false
  await Promise.all(streams.map((stream) => stream.done))
})
