// Where keys live: manager-pinned handles, localManagers/localKeys (on this machine, and with
// shards on two network-namespace hosts), stats().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { DDict } from 'tsflow/ddict'
import { keyText, redisKey, shardOf } from 'tsflow/protocol'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../../helpers/netns.js'
import { ping, redisMissing, redisServerPath } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { addresses, raw, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false
// the public entry's file, for scripts run in other processes and threads
const client = fileURLToPath(import.meta.resolve('tsflow/ddict'))

t.test('a pinned handle puts every key on its shard', { skip }, async (t) => {
  const servers = await startShards(t, 3)
  const dict = await DDict.create({ addresses: addresses(servers) })
  t.teardown(() => dict.destroy().catch(() => {}))
  const clients = await Promise.all(servers.map((s) => raw(t, s)))
  const pinned = dict.manager(2)
  t.equal(pinned.pinnedShard, 2)
  const keys = Array.from({ length: 12 }, (_, i) => `p${i}`)
  t.ok(keys.some((key) => shardOf(keyText(key), 3) !== 2), 'some of the keys hash elsewhere')
  await pinned.setMany(keys.map((key, i) => [key, i]))
  for (const key of keys) t.equal(Number(await clients[2]!.send(['EXISTS', redisKey(dict.id, 0, keyText(key))])), 1, `${key} is on shard 2`)
  const elsewhere = keys.find((key) => shardOf(keyText(key), 3) !== 2)!
  t.equal(await dict.has(elsewhere), false, 'an unpinned handle looks for it on its hashed shard')
  t.equal(await dict.manager(2).get(elsewhere), keys.indexOf(elsewhere), 'a handle pinned to the same shard finds it')
  t.same([await dict.manager(0).has(elsewhere), await dict.manager(1).has(elsewhere)], [false, false], 'handles pinned to other shards do not')
  const listed: unknown[] = []
  await dict.set('unpinned-on-0', 1)
  for await (const key of pinned.keys()) listed.push(key)
  t.same(new Set(listed), new Set([...keys, ...(shardOf(keyText('unpinned-on-0'), 3) === 2 ? ['unpinned-on-0'] : [])]), "a pinned handle's keys() lists its shard")
  // the pin travels in the descriptor
  const again = DDict.attach(pinned.descriptor())
  t.equal(again.pinnedShard, 2)
  t.equal(await again.get(elsewhere), keys.indexOf(elsewhere))
  t.throws(() => dict.manager(3), /manager\(3\): there are shards 0\.\.2/)

  const stats = await dict.stats()
  t.equal(stats.length, 3)
  t.equal(stats[2]!.address, `${servers[2]!.host}:${servers[2]!.port}`)
  t.ok(stats[2]!.keys >= 12, `shard 2 holds the pinned keys (${stats[2]!.keys})`)
  t.equal(stats.reduce((n, s) => n + s.keys, 0), await dict.length())
  t.ok(stats.every((s) => s.usedBytes > 0))
})

t.test('on one machine every shard is local', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers) })
  t.teardown(() => dict.destroy().catch(() => {}))
  await dict.update({ a: 1, b: 2, c: 3 })
  t.same(dict.localManagers(), [0, 1])
  t.same(new Set(await dict.localKeys()), new Set(['a', 'b', 'c']))
})

const netns = netnsUnavailable()
t.test('shards on two hosts (network namespaces): localKeys is what is on the asking host', { skip: skip || (netns ? `needs fake hosts: it ${netns}` : false) }, async (t) => {
  const prefix = `tsdd${process.pid % 10000}`
  const subnet = `10.236.${process.pid % 200}`
  t.teardown(() => fakeHostsDown(prefix, 2))
  const hosts = fakeHostsUp(prefix, 2, subnet)
  for (const host of hosts.hosts) startServerIn(t, host.name, host.address)
  for (const host of hosts.hosts) await waitFor(() => ping(host.address, 6379, 500), `redis-server on ${host.name} to answer`)
  const dict = await DDict.create({ addresses: hosts.hosts.map((h) => `${h.address}:6379`), timeoutMs: 5000 })
  t.teardown(() => dict.destroy().catch(() => {}))
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
  await dict.setMany(keys.map((key) => [key, key.toUpperCase()]))
  t.same(dict.localManagers(), [], 'from the bridge, neither host is this one')
  t.same(await dict.localKeys(), [])
  const onFirst = keys.filter((key) => shardOf(keyText(key), 2) === 0)
  t.ok(onFirst.length > 0 && onFirst.length < keys.length, 'keys on both hosts')
  const script = `
    import { DDict } from ${JSON.stringify(client)}
    const dict = DDict.attach(${JSON.stringify(dict.descriptor())})
    const local = await dict.localKeys()
    console.log(JSON.stringify({ managers: dict.localManagers(), local: local.sort(), value: await dict.get('k1') }))`
  const out = execFileSync('ip', ['netns', 'exec', hosts.hosts[0]!.name, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
  t.same(JSON.parse(out), { managers: [0], local: [...onFirst].sort(), value: 'K1' }, `on ${hosts.hosts[0]!.name}: shard 0 and its keys`)
})

function startServerIn(t: Test, namespace: string, address: string): ChildProcess {
  const child = spawn(
    'ip',
    ['netns', 'exec', namespace, redisServerPath()!, '--bind', address, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--notify-keyspace-events', 'K$g', '--dir', '/tmp'],
    { stdio: 'ignore' },
  )
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  return child
}
