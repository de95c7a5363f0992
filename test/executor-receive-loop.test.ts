// An exception thrown while an executor delivers an outcome (a settle handler that throws
// synchronously) must not end the executor's receive loop: the other results of the same batch
// and every later task are still reported, and the error is logged naming the task.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, type Executor } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-receive-loop-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const executors: Record<string, () => Executor> = {
  threads: () => new ThreadPoolExecutor({ maxThreads: 2 }),
  htex: () =>
    new HighThroughputExecutor({
      maxWorkersPerNode: 2,
      strategyPeriodMs: 200,
      provider: new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 1 }),
    }),
}

for (const [name, make] of Object.entries(executors)) {
  t.test(`${name}: a settle handler that throws does not stop the executor reporting other tasks`, async (t) => {
    const runDir = join(scratch, name)
    const kernel = await new DataFlowKernel({ runDir, executors: [make()] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 2000 }))
    const double = apps.double.with({ dfk: kernel })
    // Submitted in one turn: they travel, and their results come back, together.
    const first = double(1)
    first.onSettled(() => {
      throw new Error('a settle handler failed on purpose')
    })
    const others = Array.from({ length: 20 }, (_, i) => double(i + 2))
    let results: number[] | undefined
    void Promise.all(others).then((r) => (results = r))
    await waitFor(() => results !== undefined, 'the other tasks of the batch to be reported', 30_000)
    t.same(results, Array.from({ length: 20 }, (_, i) => (i + 2) * 2), 'every other result arrives')
    // It may travel alone (an app's first task does), so its result can come after the others.
    await waitFor(() => first.done, 'the task whose handler threw to settle', 30_000)
    t.ok(first.done, 'the task whose handler threw is settled')
    t.equal(await double(50), 100, 'tasks submitted afterwards are still reported')
    t.equal(kernel.outstanding, 0, 'the task whose handler threw is no longer counted as outstanding')
    let idle = false
    void kernel.waitForCurrentTasks().then(() => (idle = true))
    await waitFor(() => idle, 'waitForCurrentTasks() to return', 10_000)
    await kernel.cleanup({ deadlineMs: 2000 })
    const log = readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8')
    t.match(log, /handling the result of task #1 \(double\) failed in the workflow process: a settle handler failed on purpose/, 'logged, naming the task')
  })
}
