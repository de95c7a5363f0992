// The launchers inside a real block: an HTEX whose LocalProvider starts its manager through
// mpirun (Debian's Open MPI) or under a wrapped prefix. Tasks run and report what the launcher
// gave the manager's environment, so a launcher that breaks the manager command (quoting, the
// rank prelude) fails here.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import t, { type Test } from 'tap'

import { DataFlowKernel, HighThroughputExecutor, LocalProvider, type Launcher } from 'tsflow'
import { envOf } from '../fixtures/launcher-apps.js'

async function startWith(t: Test, launcher: Launcher | Record<string, unknown>): Promise<DataFlowKernel> {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-launcher-htex-'))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  const executor = new HighThroughputExecutor({
    maxWorkersPerNode: 1,
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1, launcher: launcher as Launcher }),
  })
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
  return kernel
}

const openMpi = /Open MPI/.test(spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout ?? '')

t.test('HTEX manager started by mpirun: tasks run, the rank comes from Open MPI', { skip: openMpi ? false : 'Open MPI (openmpi-bin) is not installed' }, async (t) => {
  const kernel = await startWith(t, { type: 'mpirun', overrides: '--allow-run-as-root --oversubscribe' })
  const seen = await envOf.with({ dfk: kernel })(['TSFLOW_RANK', 'TSFLOW_NODE_RANK', 'TSFLOW_LOCAL_RANK', 'OMPI_COMM_WORLD_SIZE']).result({ timeoutMs: 60_000 })
  t.same(seen, { TSFLOW_RANK: '0', TSFLOW_NODE_RANK: '0', TSFLOW_LOCAL_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' })
})

t.test('HTEX manager under a wrapped prefix (env VAR=...): the prefix reaches the workers', async (t) => {
  const kernel = await startWith(t, { type: 'wrapped', prefix: ['env', 'TSFLOW_WRAPPED_BY=env prefix'] })
  const seen = await envOf.with({ dfk: kernel })(['TSFLOW_WRAPPED_BY', 'TSFLOW_RANK']).result({ timeoutMs: 60_000 })
  t.same(seen, { TSFLOW_WRAPPED_BY: 'env prefix', TSFLOW_RANK: '0' })
})
