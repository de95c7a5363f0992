// The headline of the Slurm provider: one block of two nodes on the real two-node Slurm
// (test/setup/slurm-up.sh), its managers started by srun on both network-namespace hosts,
// connecting over TCP to the interchange on the bridge address; tasks run on both hosts.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
    t.comment(`submit-to-first-result on Slurm (2-node block, srun): ${firstResultMs.toFixed(0)} ms; first task ran on ${first.host} ${first.address}`)

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
}
