// The provider placement on two real hosts: network namespaces on a private bridge
// (test/helpers/netns.ts), one block per host through the netns provider. The servers bind
// 0.0.0.0 and are advertised at each host's own address, which this process (in the root
// namespace) and the other host both reach.
import { execFileSync } from 'node:child_process'
import t from 'tap'
import 'tsflow/ddict'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../../helpers/netns.js'
import { netnsProvider } from '../../helpers/netns-provider.js'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { noneLeft, placementModule, redisClient, uniqueId } from '../../helpers/ddict-servers.js'

const { startShards } = (await import(new URL(placementModule, import.meta.url).href)) as typeof import('../../../dist/ddict/servers/placement.js')

const why = redisMissing() ?? netnsUnavailable()
if (why) {
  t.test('ddict servers on two netns hosts', { skip: `skipped: it ${why}` }, () => {})
} else {
  const prefix = `tsdd${process.pid % 10000}`
  const subnet = `10.237.${process.pid % 200}`
  t.teardown(() => fakeHostsDown(prefix, 2))
  const hosts = fakeHostsUp(prefix, 2, subnet)
  const [one, two] = hosts.hosts as [{ name: string; address: string }, { name: string; address: string }]

  t.test('one shard host per host, servers advertised at the host addresses, reachable from here and from each other', async (t) => {
    const id = uniqueId('ns')
    t.teardown(() => noneLeft(id))
    const provider = netnsProvider([one.name, two.name])
    t.teardown(() => provider.shutdown())
    const group = await startShards({ id, name: 'two-hosts', provider, blocks: 2, managersPerNode: 2, advertiseAddress: hosts.rootAddress, totalMem: 64 * 1024 * 1024 })
    t.teardown(() => group.stop())
    t.same(
      group.shards.map((s) => [s.index, s.node, s.host]),
      [
        [0, one.name, one.address],
        [1, one.name, one.address],
        [2, two.name, two.address],
        [3, two.name, two.address],
      ],
      'ordered by node; each advertised at its own host address',
    )
    for (const shard of group.shards) {
      const client = await redisClient(t, shard.host, shard.port, group.password)
      await client.set(`from-root-${shard.index}`, shard.node)
      t.equal(await client.get(`from-root-${shard.index}`), shard.node, `${shard.host}:${shard.port} reached from the root namespace`)
    }
    // From each host to a server of the other one.
    for (const [from, to] of [
      [one.name, group.shards[3]!],
      [two.name, group.shards[0]!],
    ] as const) {
      const reply = execFileSync('ip', ['netns', 'exec', from, 'redis-cli', '--no-auth-warning', '-h', to.host, '-p', String(to.port), '-a', group.password, 'GET', `from-root-${to.index}`], { encoding: 'utf8' })
      t.equal(reply.trim(), to.node, `${from} reads ${to.host}:${to.port}`)
    }
    const lost: string[] = []
    group.onLost((message) => lost.push(message))
    await group.stop()
    t.same(lost, [], 'a stop is not a loss')
    await noneLeft(id, 5000)
  })

  t.test('a host cut off from its shard host: its servers stop, this side hears of it', async (t) => {
    const id = uniqueId('nc')
    t.teardown(() => noneLeft(id))
    const provider = netnsProvider([one.name, two.name])
    t.teardown(() => provider.shutdown())
    const group = await startShards({ id, name: 'cut', provider, blocks: 2, advertiseAddress: hosts.rootAddress, totalMem: 32 * 1024 * 1024 })
    t.teardown(() => group.stop())
    const lost: string[] = []
    group.onLost((message) => lost.push(message))
    // Every process in host two's namespace dies at once (as a node crash): its host's connection drops.
    const pids = execFileSync('ip', ['netns', 'pids', two.name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
    for (const pid of pids) process.kill(pid, 'SIGKILL')
    await waitFor(() => lost.length === 1, 'the shard on the second host to be reported lost')
    t.match(lost[0], new RegExp(`shard 1 \\(${two.address.replace(/\./g, '\\.')}:\\d+\\).*node ${two.name}`))
  })
}
