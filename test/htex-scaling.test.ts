// Blocks of the HTEX executor as the scaling strategies manage them, with real managers.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-scaling-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('the first block starts at load, not on the first strategy tick', async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    strategy: 'simple',
    strategyPeriodMs: 3_600_000, // the timer would not tick during this test
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'init'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  await waitFor(() => executor.managers().length === 1, 'the initial block to connect', 15_000)
  t.equal(await apps.double.with({ dfk: kernel })(21), 42)
})

t.test('htex_auto_scale releases an idle block and starts one again when work arrives', async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    heartbeatPeriodMs: 200,
    heartbeatThresholdMs: 2000,
    strategy: 'htex_auto_scale',
    strategyPeriodMs: 200,
    maxIdleTimeMs: 1500,
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'auto'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  // Work at once, so the initial block is not idle while its manager starts.
  t.equal(await apps.double.with({ dfk: kernel })(1), 2)
  const first = executor.managers()[0]!.managerId
  await waitFor(() => executor.managers().length === 0, 'the idle block to be scaled in', 20_000)
  t.pass('idle block released after maxIdleTime')
  t.equal(await apps.double.with({ dfk: kernel })(2), 4, 'a new task brings a new block')
  t.not(executor.managers()[0]?.managerId, first, 'served by a new manager')
})

t.test("strategy 'none' keeps exactly initBlocks", async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    strategy: 'none',
    strategyPeriodMs: 100,
    provider: new LocalProvider({ initBlocks: 2, minBlocks: 0, maxBlocks: 4 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'none'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  await waitFor(() => executor.managers().length === 2, 'both initial blocks', 15_000)
  await Promise.all(Array.from({ length: 20 }, (_, i) => apps.sleep.with({ dfk: kernel })(50 + i)))
  t.equal(executor.managers().length, 2, 'no scale-out under load')
})
