// The producer-consumer programs on HTEX with managers on two fake hosts (network namespaces),
// through a --config module (fixtures/netns-config.ts), as bench/producer-consumer runs them on
// several nodes: the data must reach trainers on both hosts.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../helpers/netns.js'
import { redisMissing } from '../helpers/redis.js'
import { checkRun, runProgram } from '../helpers/producer-consumer.js'

const config = fileURLToPath(new URL('./fixtures/netns-config.ts', import.meta.url))
const why = netnsUnavailable()
if (why) {
  t.test('producer-consumer on two hosts', { skip: `multi-host test skipped: it ${why} (CI runs it as root)` }, () => {})
} else {
  const prefix = `tspc${process.pid % 10000}`
  const subnet = `10.232.${process.pid % 200}`
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pc-hosts-'))
  // Cleanup first, so a failure half-way through setup still removes what was made (and kills
  // anything left inside the namespaces).
  t.teardown(() => {
    fakeHostsDown(prefix, 2)
    rmSync(scratch, { recursive: true, force: true })
  })
  const hosts = fakeHostsUp(prefix, 2, subnet)
  const env = { PC_NETNS_HOSTS: hosts.hosts.map((h) => h.name).join(','), PC_NETNS_ROOT: hosts.rootAddress }

  for (const variant of ['futures', 'filesystem']) {
    t.test(`${variant}.js on HTEX with a manager on each of two hosts`, async (t) => {
      const cwd = mkdtempSync(join(scratch, `${variant}-`))
      const run = await runProgram(variant, ['--num-sims', '4', '--grid-size', '32', '--config', config], { cwd, env, timeoutMs: 150_000 })
      const models = checkRun(t, run, variant, 4, 32, 2)
      t.match(run.stdout, /^Executor: HighThroughputExecutor \S+, 2 blocks x 1 worker; 2 workers on 2 nodes$/m)
      t.equal(run.result.nodes, 2)
      t.same(models.map((m) => m.host).sort(), hosts.hosts.map((h) => h.name).sort(), 'a trainer ran on each host and read all the data there')
    })
  }

  t.test('ddict.js on the two hosts, the shards on this machine reached at the bridge address', { skip: redisMissing() }, async (t) => {
    const cwd = mkdtempSync(join(scratch, 'ddict-'))
    const run = await runProgram('ddict', ['--num-sims', '4', '--grid-size', '32', '--config', config], { cwd, env, timeoutMs: 150_000 })
    const models = checkRun(t, run, 'ddict', 4, 32, 2)
    t.equal(run.result.nodes, 2)
    t.same(models.map((m) => m.host).sort(), hosts.hosts.map((h) => h.name).sort(), 'a trainer ran on each host')
    t.match(run.result.ddict, { shards: 1, keysPerShard: [4] })
    t.same(run.result.ddict.addresses.map((a: string) => a.replace(/:\d+$/, '')), [hosts.rootAddress], 'the shard is advertised at the bridge address')
    for (const model of models) t.equal(model.localKeys, 0, `no shard is on ${model.host}: every read crossed the bridge`)
    t.match(run.stdout, /^DDict: 1 shard on 1 node \(/m)
  })

  t.test('ddict.js on the two hosts, a shard on each host (provider placement): trainers read their host\'s keys locally', { skip: redisMissing() }, async (t) => {
    const cwd = mkdtempSync(join(scratch, 'ddict-hosts-'))
    const run = await runProgram('ddict', ['--num-sims', '6', '--grid-size', '32', '--config', config], { cwd, env: { ...env, PC_DDICT_ON_HOSTS: '1' }, timeoutMs: 150_000 })
    const models = checkRun(t, run, 'ddict', 6, 32, 2)
    t.match(run.stdout, /^DDict: 2 shards on 2 nodes \(/m)
    t.match(run.result.ddict, { shards: 2, nodes: 2 })
    t.same(run.result.ddict.addresses.map((a: string) => a.replace(/:\d+$/, '')).sort(), hosts.hosts.map((h) => h.address).sort(), 'one shard at each host\'s address')
    t.same(models.map((m) => m.host).sort(), hosts.hosts.map((h) => h.name).sort(), 'a trainer ran on each host')
    const keys = run.result.ddict.keysPerShard as number[]
    t.equal(keys.reduce((a, b) => a + b, 0), 6)
    t.equal(models.reduce((sum, m) => sum + m.localKeys, 0), 6, "each trainer found its own host's shard's keys local, and only those")
  })
}
