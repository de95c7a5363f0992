// The headline of the Slurm provider: one block of two nodes on the real two-node Slurm
// (test/setup/slurm-up.sh), its managers started by srun on both network-namespace hosts,
// connecting over TCP to the interchange on the bridge address; tasks run on both hosts.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

import { DataFlowKernel, HighThroughputExecutor, SlurmProvider } from 'tsflow'
import { whereAmI } from '../fixtures/hosts.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { waitFor } from '../helpers/wait.js'

const cluster = ensureSlurm()
if (typeof cluster === 'string') {
  t.test('an HTEX block of two Slurm nodes', { skip: cluster }, () => {})
} else {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-slurm-two-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

  t.test('an HTEX block of nodesPerBlock 2 with srun runs a manager on each host and tasks on both', async (t) => {
    const provider = new SlurmProvider({ partition: cluster.partition, nodesPerBlock: 2, launcher: 'srun', initBlocks: 1, maxBlocks: 1 })
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      maxWorkersPerNode: 2,
      heartbeatPeriodMs: 500,
      heartbeatThresholdMs: 5000,
      provider,
    })
    const submitted = performance.now()
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }))
    t.equal(executor.describe().encrypted, true, 'CURVE is on: the interchange listens on the bridge, not loopback')

    const first = await whereAmI.with({ dfk: kernel })(0)
    const firstResultMs = performance.now() - submitted
    t.comment(`load to first result on Slurm (2-node block, srun; the app is in a TypeScript module the workers load with tsx): ${firstResultMs.toFixed(0)} ms; first task ran on ${first.host} ${first.address}`)

    await waitFor(() => executor.managers().length === 2, 'managers on both hosts to register', 60_000)
    t.same(
      executor.managers().map((m) => m.host).sort(),
      cluster.nodes.map((n) => n.name).sort(),
      'one manager per Slurm node, each on its own host',
    )
    const places = await Promise.all(Array.from({ length: 60 }, (_, i) => whereAmI.with({ dfk: kernel })(i)))
    const seen = new Set(places.map((p) => p.address))
    for (const node of cluster.nodes) t.ok(seen.has(node.address), `tasks ran on ${node.name} (${node.address})`)
    t.same([...seen].sort(), cluster.nodes.map((n) => n.address).sort(), 'and nowhere else (not in the root namespace)')
  })

  t.test('tsflow-perf runs examples/slurm.ts on the cluster and records the Slurm configuration', async (t) => {
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const results = join(scratch, 'perf-results')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(root, 'dist/bin/perf.js'), '--config', join(root, 'examples/slurm.ts'), '--iterate', '100,1000', '--results-dir', results],
      { cwd: scratch, env: { ...process.env, NODE_OPTIONS: '', TSFLOW_SLURM_ADDRESS: cluster.controllerAddress, TSFLOW_SLURM_PARTITION: cluster.partition, TSFLOW_SLURM_NODES: String(cluster.nodes.length) }, timeout: 120_000 },
    )
    t.match(stdout, /tsflow-perf: [\d,.]+ tasks\/s \(HighThroughputExecutor slurm, 1 block x 2 nodes/)
    const record = JSON.parse(readFileSync(join(results, 'tsflow-perf.jsonl'), 'utf8').trim().split('\n').pop()!)
    t.match(record.config.executors[0].provider, { type: 'slurm', nodesPerBlock: 2, partition: cluster.partition, launcher: { type: 'srun' } })
    t.equal(record.status, 'finished')
  })
}
