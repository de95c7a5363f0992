// A block that cannot start must not leave tasks waiting forever: the futures fail with the
// provider's message and the block's own stderr, within about one strategy period.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ProviderError } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-block-failure-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('a block whose workerInit fails fails the waiting tasks with the failing line and its stderr', async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    // 'none' starts no replacement: one failed block must be enough to explain the failure
    strategy: 'none',
    strategyPeriodMs: 200,
    provider: new LocalProvider({
      initBlocks: 1,
      maxBlocks: 1,
      workerInit: ['echo "preparing the environment"', 'source /nonexistent/tsflow-venv/bin/activate'],
    }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'init'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  const futures = [apps.double.with({ dfk: kernel })(1), apps.double.with({ dfk: kernel })(2)]
  for (const future of futures) {
    const error = await future.then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError, 'a ProviderError, not a hang')
    t.match((error as Error).message, /block \S+ failed before any manager connected/)
    t.match((error as Error).message, /ended during workerInit with exit code 1; the command did not start/)
    t.match((error as Error).message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/, "bash's own complaint, from the block's stderr")
  }
})

t.test('a block failing while another block is still starting leaves the tasks to that one', async (t) => {
  // Two blocks: the first fails at once, the second starts normally and runs the task.
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    strategy: 'none',
    strategyPeriodMs: 200,
    provider: new LocalProvider({
      initBlocks: 2,
      maxBlocks: 2,
      // only the first block (block id "0") fails; the manager of the other starts after a pause
      workerInit: '[ "$TSFLOW_BLOCK_ID" != 0 ] || exit 7; sleep 1',
    }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'two'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.equal(await apps.double.with({ dfk: kernel })(21), 42, 'the task waits for the block that can start')
})

t.test('managerCommand starts the managers with the program the user names (nodes without this host\'s paths)', async (t) => {
  const { writeFileSync, readFileSync, existsSync } = await import('node:fs')
  const { fileURLToPath } = await import('node:url')
  const dir = mkdtempSync(join(scratch, 'launch-'))
  const managerBin = fileURLToPath(new URL('../dist/bin/manager.js', import.meta.url))
  const wrapper = join(dir, 'site-manager')
  // A site's own launcher: logs, then runs the manager with the flags tsflow appended. The apps
  // are TypeScript, so it loads tsx itself (a custom command replaces tsflow's node flags).
  writeFileSync(wrapper, `#!/bin/bash\necho "started with $# flags" >> ${JSON.stringify(join(dir, 'used'))}\nexec ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(managerBin)} "$@"\n`, { mode: 0o755 })
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    managerCommand: wrapper,
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(dir, 'run'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.equal(await apps.double.with({ dfk: kernel })(21), 42)
  t.ok(existsSync(join(dir, 'used')), 'the block ran the named program')
  t.match(readFileSync(join(dir, 'used'), 'utf8'), /started with \d+ flags/)
})

t.test('a managerCommand that does not exist on the node fails the waiting tasks with "command not found"', async (t) => {
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    strategy: 'none',
    managerCommand: 'tsflow-manager-not-installed-here',
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'missing-cmd'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  await t.rejects(apps.double.with({ dfk: kernel })(1), { message: /exited with code 127 \(command not found.*tsflow-manager-not-installed-here: command not found/s })
})
