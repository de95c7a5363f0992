// Managers on two hosts (network namespaces) connect over TCP, encrypted, to one interchange.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor } from 'tsflow'
import { whereAmI } from './fixtures/hosts.js'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from './helpers/netns.js'
import { netnsProvider } from './helpers/netns-provider.js'
import { waitFor } from './helpers/wait.js'

const why = netnsUnavailable()
if (why) {
  t.test('managers on several hosts', { skip: `multi-host test skipped: it ${why} (CI runs it as root)` }, () => {})
} else {
  const prefix = `tsfh${process.pid % 10000}`
  const subnet = `10.231.${process.pid % 200}`
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-multihost-'))
  // Cleanup first, so a failure half-way through setup still removes what was made.
  t.teardown(() => {
    fakeHostsDown(prefix, 2)
    rmSync(scratch, { recursive: true, force: true })
  })
  const hosts = fakeHostsUp(prefix, 2, subnet)

  t.test('tasks run on managers on both hosts over encrypted TCP', async (t) => {
    const executor = new HighThroughputExecutor({
      address: hosts.rootAddress,
      maxWorkersPerNode: 1,
      heartbeatPeriodMs: 500,
      heartbeatThresholdMs: 5000,
      provider: netnsProvider(hosts.hosts.map((h) => h.name)),
    })
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
    t.equal(executor.describe().encrypted, true, 'CURVE is on because the interchange listens on a non-loopback address')
    await waitFor(() => executor.managers().length === 2, 'managers on both hosts to register', 30_000)
    t.same(executor.managers().map((m) => m.host).sort(), hosts.hosts.map((h) => h.name).sort(), 'one manager per host')
    const places = await Promise.all(Array.from({ length: 40 }, (_, i) => whereAmI.with({ dfk: kernel })(i)))
    const seen = new Set(places.map((p) => `${p.host} ${p.address}`))
    for (const host of hosts.hosts) t.ok(seen.has(`${host.name} ${host.address}`), `tasks ran on ${host.name} (${host.address})`)
  })
}
