// Checkpoints across runs (issue 6, section 3): results answered from a loaded checkpoint are
// written to the new run's checkpoint too, every checkpointing run leaves a checkpoint file,
// and a run directory that cannot be made is a ConfigError naming runDir.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, DataFlowKernel, TaskState, ThreadPoolExecutor, getLastCheckpoint, type Config } from 'tsflow'
import * as apps from './fixtures/kernel-apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-carryover-'))
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

function entries(file: string): number {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).length
}

t.test('results answered from a loaded checkpoint are still there two runs later', async (t) => {
  const runDir = join(scratch, 'chain')
  await run({ runDir, checkpointMode: 'task_exit' }, async (kernel) => {
    t.same(await Promise.all([1, 2, 3].map((x) => apps.cachedInc.with({ dfk: kernel })(x))), [2, 3, 4])
  })
  // Run 2 answers 1..3 from run 1's checkpoint and computes 4.
  const second = await run({ runDir, checkpointMode: 'task_exit', checkpointFiles: getLastCheckpoint(runDir) }, async (kernel) => {
    const futures = [1, 2, 3, 4].map((x) => apps.cachedInc.with({ dfk: kernel })(x))
    t.same(await Promise.all(futures), [2, 3, 4, 5])
    t.same(futures.map((f) => f.state), [TaskState.memo_done, TaskState.memo_done, TaskState.memo_done, TaskState.exec_done])
    // A second hit on the same loaded entry is not written again.
    await apps.cachedInc.with({ dfk: kernel })(1)
  })
  t.equal(entries(join(second.runDir, 'checkpoint', 'tasks.jsonl')), 4, 'run 2 wrote the carried-over results and its own, once each')
  // Run 3 loads only run 2's checkpoint and still finds every result.
  await run({ runDir, checkpointMode: 'task_exit', checkpointFiles: getLastCheckpoint(runDir) }, async (kernel) => {
    t.same(getLastCheckpoint(runDir).length, 1)
    const futures = [1, 2, 3, 4].map((x) => apps.cachedInc.with({ dfk: kernel })(x))
    t.same(await Promise.all(futures), [2, 3, 4, 5])
    t.ok(futures.every((f) => f.state === TaskState.memo_done), 'every result came from the checkpoint')
  })
})

t.test('a checkpointing run always leaves a checkpoint file, even an empty one', async (t) => {
  const runDir = join(scratch, 'empty')
  for (const checkpointMode of ['task_exit', 'dfk_exit', 'manual', 'periodic'] as const) {
    const kernel = await run({ runDir, checkpointMode }, async (kernel) => {
      t.ok(existsSync(join(kernel.runDir, 'checkpoint', 'tasks.jsonl')), `${checkpointMode}: the file exists from the start`)
    })
    const file = join(kernel.runDir, 'checkpoint', 'tasks.jsonl')
    t.same(getLastCheckpoint(runDir), [file], `${checkpointMode}: getLastCheckpoint finds the empty run`)
    t.equal(entries(file), 0)
  }
  await run({ runDir, checkpointFiles: getLastCheckpoint(runDir) }, async (kernel) => {
    t.equal(await apps.cachedInc.with({ dfk: kernel })(10), 11, 'an empty checkpoint file loads fine')
  })
  const none = await run({ runDir }, async () => {})
  t.notOk(existsSync(join(none.runDir, 'checkpoint')), 'checkpointMode none writes no checkpoint')
})

t.test('a runDir that cannot hold run directories is a ConfigError naming runDir', async (t) => {
  const file = join(scratch, 'a-file')
  writeFileSync(file, 'not a directory')
  const underFile = new DataFlowKernel({ runDir: join(file, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 1 })] })
  const error = (await underFile.start().then(() => undefined, (e: unknown) => e)) as ConfigError
  t.ok(error instanceof ConfigError, `a path under a regular file: ConfigError (got ${String(error)})`)
  t.equal(error.path, 'runDir')
  t.match(error.message, /^runDir .*a-file.*is a file, not a directory/)
  await underFile.cleanup()

  const isFile = await new DataFlowKernel({ runDir: file, executors: [new ThreadPoolExecutor({ maxThreads: 1 })] }).start().then(() => undefined, (e: unknown) => e)
  t.ok(isFile instanceof ConfigError, `a regular file: ConfigError (got ${String(isFile)})`)

  if (process.getuid?.() !== 0) {
    const locked = join(scratch, 'locked')
    mkdirSync(locked)
    chmodSync(locked, 0o500)
    t.teardown(() => chmodSync(locked, 0o700))
    const notWritable = await new DataFlowKernel({ runDir: join(locked, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 1 })] })
      .start()
      .then(() => undefined, (e: unknown) => e)
    t.ok(notWritable instanceof ConfigError, `a directory that is not writable: ConfigError (got ${String(notWritable)})`)
    t.match(String((notWritable as Error).message), /^runDir .*not writable/)
  }
})
