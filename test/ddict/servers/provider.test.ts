// The 'provider' placement with the real LocalProvider: one shard host per block (each a process
// group of its own, as on a cluster node), a block that fails before its hosts report, a block
// cancelled under a running dictionary. Nothing of the dictionary may be left (checked in /proc).
import t from 'tap'
import { DDict } from 'tsflow/ddict'
import { spawn } from 'node:child_process'
import { hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { DDictStartError, LocalProvider } from 'tsflow'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { noneLeft, placementModule, redisClient, uniqueId } from '../../helpers/ddict-servers.js'

const { startShards } = (await import(new URL(placementModule, import.meta.url).href)) as typeof import('../../../dist/ddict/servers/placement.js')
const skip = redisMissing() ?? false

t.test('LocalProvider: blocks x managersPerNode servers, reachable, sized; stop cancels everything', { skip }, async (t) => {
  const id = uniqueId('p')
  t.teardown(() => noneLeft(id))
  const provider = new LocalProvider({ maxBlocks: 2 })
  t.teardown(() => provider.shutdown())
  const totalMem = 64 * 1024 * 1024
  const group = await startShards({ id, name: 'blocks', provider, blocks: 2, managersPerNode: 2, totalMem })
  t.teardown(() => group.stop())
  t.equal(group.shards.length, 4, '2 blocks x 1 node x 2 servers')
  t.same(group.shards.map((s) => s.index), [0, 1, 2, 3])
  const described = group.describe() as { placement: string; jobs: string[]; shards: { hostPid: number }[] }
  t.equal(described.placement, 'provider')
  t.equal(described.jobs.length, 2, 'two blocks')
  t.equal(new Set(described.shards.map((s) => s.hostPid)).size, 2, 'one shard host per block')
  for (const shard of group.shards) {
    t.equal(shard.node, hostname())
    t.equal(shard.host, '127.0.0.1', 'bound to 0.0.0.0, advertised at the address the host reached this process on')
    t.equal(shard.maxmemory, Math.floor((totalMem / 4) * 0.9))
    const client = await redisClient(t, shard.host, shard.port, group.password)
    t.equal((await client.configGet('bind')).bind, '0.0.0.0')
    t.equal(await client.ping(), 'PONG')
  }
  await group.stop()
  await noneLeft(id, 5000)
  t.pass('blocks, hosts and servers gone')
})

t.test('a block that fails before its hosts report: DDictStartError with the provider’s reason', { skip }, async (t) => {
  const id = uniqueId('f')
  t.teardown(() => noneLeft(id))
  const provider = new LocalProvider({ workerInit: 'echo "no redis on this node today" >&2; exit 7' })
  t.teardown(() => provider.shutdown())
  const error = await startShards({ id, name: 'failing', provider, startTimeoutMs: 20_000 }).catch((e: unknown) => e)
  t.type(error, DDictStartError)
  t.match((error as Error).message, /ddict failing: could not start its servers: local block 0 \(job \d+\) failed before its shard hosts reported/)
  t.match((error as Error).message, /no redis on this node today/, 'with the block’s stderr')
})

t.test('a block cancelled under a running dictionary: onLost names its shards', { skip }, async (t) => {
  const id = uniqueId('l')
  t.teardown(() => noneLeft(id))
  const provider = new LocalProvider({ maxBlocks: 2 })
  t.teardown(() => provider.shutdown())
  const group = await startShards({ id, name: 'cancelled', provider, blocks: 2, totalMem: 32 * 1024 * 1024 })
  t.teardown(() => group.stop())
  const lost: { message: string; index?: number }[] = []
  group.onLost((message, shard) => lost.push({ message, ...(shard ? { index: shard.index } : {}) }))
  const described = group.describe() as { jobs: string[] }
  // As a scheduler ends a job: the block's whole process group goes, shard host and servers.
  await provider.cancel([described.jobs[0]!])
  await waitFor(() => lost.length >= 1, 'a shard to be reported lost')
  t.match(lost[0]!.message, /^shard \d \(127\.0\.0\.1:\d+\)/, 'named by index and address')
  t.equal(group.shards.length - lost.length, 1, 'the other block’s shard lives on')
})

t.test('through the public API: DDict.create({ provider, blocks }) and destroy()', { skip }, async (t) => {
  const provider = new LocalProvider({ maxBlocks: 2 })
  t.teardown(() => provider.shutdown())
  const dict = await DDict.create({ name: 'public', provider, blocks: 2, totalMem: 64 * 1024 * 1024 })
  t.teardown(() => noneLeft(dict.id))
  let destroyed = false
  t.teardown(() => (destroyed ? undefined : dict.destroy()))
  t.equal(dict.shardCount, 2)
  const { shards, password } = dict.descriptor()
  t.match(password, /^[0-9a-f]{48}$/)
  t.same(new Set(shards.map((s) => s.maxmemory)), new Set([Math.floor((64 * 1024 * 1024) / 2 * 0.9)]))
  for (let i = 0; i < 20; i++) await dict.set(`k${i}`, { i })
  t.same(await dict.get('k7'), { i: 7 })
  await dict.destroy()
  destroyed = true
  await noneLeft(dict.id, 5000)
  t.pass('servers, hosts and blocks gone')
})

t.test('the creator killed by SIGKILL: the servers on its blocks do not outlive it', { skip }, async (t) => {
  const id = uniqueId('pc')
  t.teardown(() => noneLeft(id))
  const placementUrl = new URL(placementModule, import.meta.url).href
  const creator = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/creator.mjs', import.meta.url)), placementUrl, id, '1', '2'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (creator.exitCode === null && creator.signalCode === null) creator.kill('SIGKILL')
  })
  let out = ''
  creator.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  await waitFor(() => out.includes('\n') || creator.exitCode !== null, 'the creator to start its servers')
  const described = JSON.parse(out) as { jobs: string[]; shards: { pid: number }[] }
  t.equal(described.shards.length, 2, 'two blocks, a server each')
  creator.kill('SIGKILL')
  await noneLeft(id)
  t.pass('hosts and servers stopped once their creator was gone')
})
