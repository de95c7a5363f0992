// Apps pick executors by label; with several allowed, the least loaded runs the task.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor } from 'tsflow'
import { wherePid } from './fixtures/where.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-selection-'))
let kernel: DataFlowKernel
t.before(async () => {
  kernel = await new DataFlowKernel({
    runDir: join(scratch, 'runinfo'),
    executors: [
      new ThreadPoolExecutor({ label: 'local-threads', maxThreads: 1 }),
      new HighThroughputExecutor({ label: 'pool', maxWorkersPerNode: 1, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }) }),
    ],
  }).start()
})
t.teardown(async () => {
  await kernel.cleanup({ deadlineMs: 5000 })
  rmSync(scratch, { recursive: true, force: true })
})

t.test('executors: [label] sends the task to that executor', async (t) => {
  const inThreads = await wherePid.with({ dfk: kernel, executors: ['local-threads'] })()
  const inPool = await wherePid.with({ dfk: kernel, executors: ['pool'] })()
  t.equal(inThreads, process.pid, 'a thread of this process ran it')
  t.not(inPool, process.pid, 'a worker process of the HTEX manager ran it')
})

t.test('a label in the app options applies to every call', async (t) => {
  const { poolOnly } = await import('./fixtures/where.js')
  const pids = await Promise.all(Array.from({ length: 5 }, () => poolOnly.with({ dfk: kernel })()))
  t.ok(pids.every((pid) => pid !== process.pid), 'all ran in the pool')
})
