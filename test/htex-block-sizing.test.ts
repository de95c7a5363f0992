// Block sizing of the HTEX scaling strategy: the worker counts managers report, not this host's.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-sizing-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('blocks are sized by the workers managers report, not by the workflow host', async (t) => {
  // `taskset -c 0` gives each manager one CPU, so it starts and reports one worker, while this
  // host has more: sized by the host, four tasks would fit in fewer than four blocks.
  const executor = new HighThroughputExecutor({
    workerMode: 'threads',
    prefetchCapacity: 0,
    managerLaunchPrefix: 'taskset -c 0',
    strategy: 'simple',
    strategyPeriodMs: 200,
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 4 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'reported'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  await waitFor(() => executor.managers().length === 1, 'the first manager to register', 30_000)
  t.equal(executor.managers()[0]!.workers, 1, 'the manager reports one worker')
  const sleep = apps.sleep.with({ dfk: kernel })
  const running = Array.from({ length: 4 }, () => sleep(6000))
  await waitFor(() => executor.managers().length === 4, 'four blocks of one worker each for four tasks', 40_000)
  t.pass('four blocks for four tasks')
  t.same(await Promise.all(running), [6000, 6000, 6000, 6000])
})

t.test('before any manager registered, the estimate counts memPerWorker', async (t) => {
  const { totalmem } = await import('node:os')
  // Room for one worker by memory; before the fix the estimate looked only at CPUs.
  const executor = new HighThroughputExecutor({
    workerMode: 'threads',
    memPerWorker: Math.floor((totalmem() / 2 ** 20) * 0.75),
    strategy: 'none',
    provider: new LocalProvider({ initBlocks: 0, minBlocks: 0, maxBlocks: 4 }),
  })
  t.equal(executor.describe().workersPerNode, 1)
})
