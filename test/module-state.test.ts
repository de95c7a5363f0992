// docs/apps.md, "What workers see of your module": a module-level variable changed by the
// workflow is not seen by workers, because each worker imports the app's module afresh and runs
// its top level again. Shown on the thread executor and on HTEX with worker processes.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, type Config } from 'tsflow'
import { makeExecutor } from './helpers/executors.js'
import * as state from './fixtures/module-state.js'

// The thread executor and HTEX with worker processes, built as every kind-parametrized test does.
const configs: [string, (runDir: string) => Config][] = (['threads', 'htex-processes'] as const).map((kind) => [
  kind,
  (runDir) => ({ runDir, executors: [makeExecutor(kind)] }),
])

state.changeSetting('changed-by-the-workflow')

for (const [name, makeConfig] of configs) {
  t.test(name, async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-module-state-'))
    let kernel: DataFlowKernel | undefined
    t.teardown(async () => {
      await kernel?.cleanup({ deadlineMs: 5000 })
      rmSync(scratch, { recursive: true, force: true })
    })
    kernel = await new DataFlowKernel(makeConfig(join(scratch, 'runinfo'))).start()
    const dfk = kernel

    t.equal(state.setting, 'changed-by-the-workflow', 'the workflow sees its own change')
    const seen = await state.readSetting.with({ dfk })()
    t.equal(seen.setting, 'as-written-in-the-module', 'the worker does not see the change')
    t.not(seen.evaluatedIn, state.evaluatedIn, 'the module\'s top level ran again on the worker')
    t.equal(await state.useSetting.with({ dfk })(state.setting), 'changed-by-the-workflow', 'an argument carries the value')
  })
}
