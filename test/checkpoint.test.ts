// Checkpointing of cached results, and later runs reloading them.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CheckpointError, DataFlowKernel, TaskState, ThreadPoolExecutor, getAllCheckpoints, getLastCheckpoint, type Config } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-checkpoint-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

async function run(config: Config, body: (kernel: DataFlowKernel) => Promise<void>): Promise<DataFlowKernel> {
  const kernel = await new DataFlowKernel({ executors: [new ThreadPoolExecutor({ maxThreads: 1 })], ...config }).start()
  try {
    await body(kernel)
  } finally {
    await kernel.cleanup()
  }
  return kernel
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean)
}

t.test('task_exit writes each cached result as it finishes; a later run reuses them', async (t) => {
  const runDir = join(scratch, 'task-exit')
  let first: unknown
  const k1 = await run({ runDir, checkpointMode: 'task_exit' }, async (kernel) => {
    first = await apps.stamped.with({ dfk: kernel })(7)
    await apps.double.with({ dfk: kernel })(1) // not cached: never checkpointed
    t.equal(lines(join(kernel.runDir, 'checkpoint', 'tasks.jsonl')).length, 1, 'written before cleanup')
  })
  t.same(getAllCheckpoints(runDir), [join(k1.runDir, 'checkpoint', 'tasks.jsonl')])
  await run({ runDir, checkpointFiles: getLastCheckpoint(runDir) }, async (kernel) => {
    const again = apps.stamped.with({ dfk: kernel })(7)
    t.same(await again, first, 'the same result, from the checkpoint')
    t.equal(again.state, TaskState.memo_done)
    const other = apps.stamped.with({ dfk: kernel })(8)
    await other
    t.equal(other.state, TaskState.exec_done, 'other arguments still run')
  })
})

t.test('dfk_exit writes only at cleanup; manual only when asked; periodic on its timer', async (t) => {
  const runDir = join(scratch, 'modes')
  await run({ runDir, checkpointMode: 'dfk_exit' }, async (kernel) => {
    await apps.stamped.with({ dfk: kernel })(1)
    t.equal(lines(join(kernel.runDir, 'checkpoint', 'tasks.jsonl')).length, 0, 'nothing before cleanup (the file exists, empty)')
  })
  t.equal(lines(getLastCheckpoint(runDir)[0]!).length, 1, 'written at cleanup')

  await run({ runDir, checkpointMode: 'manual' }, async (kernel) => {
    await apps.stamped.with({ dfk: kernel })(2)
    await apps.stamped.with({ dfk: kernel })(3)
    t.equal(kernel.checkpoint(), 2, 'checkpoint() writes what is pending')
    t.equal(kernel.checkpoint(), 0, 'and nothing twice')
  })

  await run({ runDir, checkpointMode: 'periodic', checkpointPeriodMs: 50 }, async (kernel) => {
    await apps.stamped.with({ dfk: kernel })(4)
    const file = join(kernel.runDir, 'checkpoint', 'tasks.jsonl')
    const deadline = Date.now() + 5000
    while (lines(file).length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    t.equal(lines(file).length, 1, 'the timer wrote it before cleanup')
  })
  t.equal(getAllCheckpoints(runDir).length, 3)
})

t.test('a torn last line (crash mid-write) is skipped, the rest is used', async (t) => {
  const runDir = join(scratch, 'torn')
  let value: unknown
  const k1 = await run({ runDir, checkpointMode: 'task_exit' }, async (kernel) => {
    value = await apps.stamped.with({ dfk: kernel })(11)
  })
  appendFileSync(join(k1.runDir, 'checkpoint', 'tasks.jsonl'), '{"k":"abc","v":"AAA')
  await run({ runDir, checkpointFiles: [k1.runDir] }, async (kernel) => {
    const again = apps.stamped.with({ dfk: kernel })(11)
    t.same(await again, value)
    t.equal(again.state, TaskState.memo_done)
    t.match(readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8'), /skipped unreadable checkpoint line 2/)
  })
})

t.test('a checkpoint file that does not exist is a clear error at start', async (t) => {
  const kernel = new DataFlowKernel({ runDir: join(scratch, 'missing'), checkpointFiles: ['/nonexistent/tasks.jsonl'], executors: [new ThreadPoolExecutor({ maxThreads: 1 })] })
  await t.rejects(kernel.start(), CheckpointError)
  await t.rejects(new DataFlowKernel({ runDir: join(scratch, 'missing'), checkpointFiles: ['/nonexistent/tasks.jsonl'] }).start(), /could not be read \(ENOENT\)/)
})
