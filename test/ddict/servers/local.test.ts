// The servers of a dictionary on this machine (the 'local' placement), all real: redis-server
// processes, their shard host, real signals. Every test checks, from /proc, that nothing of the
// dictionary is left behind.
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DDictStartError } from 'tsflow'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { noneLeft, placementModule, running, respModule, processesOf, redisClient, uniqueId } from '../../helpers/ddict-servers.js'

const placementUrl = new URL(placementModule, import.meta.url).href
const { startShards } = (await import(placementUrl)) as typeof import('../../../dist/ddict/servers/placement.js')
const { redisCommands } = (await import(new URL(respModule, import.meta.url).href)) as typeof import('../../../dist/ddict/servers/resp.js')
const skip = redisMissing() ?? false

t.test('local placement: N servers with their share of totalMem, noeviction, the password; stop leaves nothing', { skip }, async (t) => {
  const id = uniqueId('n')
  t.teardown(() => noneLeft(id))
  const totalMem = 90 * 1024 * 1024
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-ddict-dir-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const group = await startShards({ id, name: 'three', managersPerNode: 3, totalMem, dir })
  t.teardown(() => group.stop())
  t.equal(group.shards.length, 3, 'three shards')
  t.same(group.shards.map((s) => s.index), [0, 1, 2], 'indexed in order')
  const sorted = [...group.shards].sort((a, b) => a.port - b.port)
  t.same(group.shards.map((s) => s.port), sorted.map((s) => s.port), 'ordered by port on one node')
  t.match(group.password, /^[0-9a-f]{48}$/, 'a random password')
  const share = Math.floor((totalMem / 3) * 0.9)
  for (const shard of group.shards) {
    t.equal(shard.host, '127.0.0.1')
    t.equal(shard.maxmemory, share, 'maxmemory = share x 0.9')
    t.same(shard.replicas, [])
    const client = await redisClient(t, shard.host, shard.port, group.password)
    const config = (name: string) => client.configGet(name).then((r) => r[name])
    t.equal(await config('maxmemory'), String(share), `the server ${shard.port} has it`)
    t.equal(await config('maxmemory-policy'), 'noeviction')
    t.equal(await config('save'), '')
    t.equal(await config('appendonly'), 'no')
    t.match(await config('notify-keyspace-events'), /K/, 'keyspace events on')
    await client.set('k', 'v')
    t.equal(await client.get('k'), 'v')
  }
  const [anonymous] = await redisCommands(group.shards[0]!.host, group.shards[0]!.port, [['GET', 'k']], 5000)
  t.match(anonymous, { message: /NOAUTH/ }, 'without the password: refused')
  const described = group.describe() as { shards: { pid: number }[]; hostPid: number }
  const pids = [described.hostPid, ...described.shards.map((s) => s.pid)]
  t.ok(pids.every(running), 'host and servers run')
  t.ok(processesOf(id).length >= 4, 'the /proc scan sees them')
  await group.stop()
  await group.stop() // idempotent
  t.notOk(pids.some(running), 'stop() returned once the host and every server were gone')
  t.same(readdirSync(dir), [], 'their directories (logs) are removed')
  await noneLeft(id, 2000)
})

t.test('replicas: each server gets read replicas that follow it', { skip }, async (t) => {
  const id = uniqueId('r')
  t.teardown(() => noneLeft(id))
  const group = await startShards({ id, name: 'replicated', managersPerNode: 1, replicas: 1, totalMem: 32 * 1024 * 1024 })
  t.teardown(() => group.stop())
  const [shard] = group.shards
  t.equal(shard!.replicas.length, 1)
  const master = await redisClient(t, shard!.host, shard!.port, group.password)
  const replica = await redisClient(t, shard!.replicas[0]!.host, shard!.replicas[0]!.port, group.password)
  t.match(await replica.info('replication'), /role:slave/)
  await master.set('x', '42')
  await waitFor(async () => (await replica.get('x')) === '42', 'the replica to follow')
  await t.rejects(replica.set('y', '1'), /READONLY/, 'replicas are read-only')
})

t.test('a server killed (SIGKILL) is reported through onLost naming it; the host stops the rest', { skip }, async (t) => {
  const id = uniqueId('k')
  t.teardown(() => noneLeft(id))
  const group = await startShards({ id, name: 'victim', managersPerNode: 2, totalMem: 32 * 1024 * 1024 })
  t.teardown(() => group.stop())
  const lost: { message: string; index?: number }[] = []
  group.onLost((message, shard) => lost.push({ message, ...(shard ? { index: shard.index } : {}) }))
  const described = group.describe() as { shards: { index: number; pid: number }[] }
  const victim = group.shards[1]!
  process.kill(described.shards[1]!.pid, 'SIGKILL')
  await waitFor(() => lost.length >= 2, 'both shards to be reported lost')
  const first = lost.find((l) => l.index === 1)
  t.ok(first, 'the killed shard is named by index')
  t.match(first!.message, `${victim.host}:${victim.port}`, 'and by address')
  t.match(first!.message, /SIGKILL/, 'with how it ended')
  t.match(lost.find((l) => l.index === 0)?.message, /gone/, 'the other shard is lost with its host')
  await noneLeft(id)
})

t.test('the creator killed by SIGKILL: its servers do not outlive it', { skip }, async (t) => {
  const id = uniqueId('c')
  t.teardown(() => noneLeft(id))
  const creator = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/creator.mjs', import.meta.url)), placementUrl, id, '2'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (creator.exitCode === null && creator.signalCode === null) creator.kill('SIGKILL')
  })
  let out = ''
  creator.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  await waitFor(() => out.includes('\n') || creator.exitCode !== null, 'the creator to start its servers')
  const described = JSON.parse(out) as { hostPid: number; shards: { pid: number }[] }
  const pids = [described.hostPid, ...described.shards.map((s) => s.pid)]
  t.ok(pids.every(running), 'servers up')
  creator.kill('SIGKILL')
  await waitFor(() => !pids.some(running), 'the host and its servers to stop after the creator died')
  await noneLeft(id)
  t.pass('nothing left')
})

t.test("the shard host's process group killed (as a provider cancels a block): servers gone, onLost fires", { skip }, async (t) => {
  const id = uniqueId('g')
  t.teardown(() => noneLeft(id))
  const group = await startShards({ id, name: 'group', managersPerNode: 2, totalMem: 32 * 1024 * 1024 })
  t.teardown(() => group.stop())
  const lost: string[] = []
  group.onLost((message) => lost.push(message))
  const described = group.describe() as { hostPid: number; shards: { pid: number }[] }
  process.kill(-described.hostPid, 'SIGKILL')
  await waitFor(() => lost.length === 2, 'both shards lost')
  t.match(lost[0], /is gone/)
  await noneLeft(id)
})

t.test('the shard host alone killed by SIGKILL: its servers die with it (pdeathsig)', { skip }, async (t) => {
  const id = uniqueId('h')
  t.teardown(() => noneLeft(id))
  const group = await startShards({ id, name: 'host', managersPerNode: 2, totalMem: 32 * 1024 * 1024 })
  t.teardown(() => group.stop())
  const described = group.describe() as { hostPid: number; shards: { pid: number }[] }
  process.kill(described.hostPid, 'SIGKILL')
  await waitFor(() => !described.shards.some((s) => running(s.pid)), 'the servers to die with their host')
  await noneLeft(id)
  t.pass('nothing left')
})

t.test('start failures: DDictStartError naming the node and the reason, nothing left', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-ddict-fail-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  await t.test('a redis-server path that does not exist', async (t) => {
    const id = uniqueId('m')
    t.teardown(() => noneLeft(id))
    const error = await startShards({ id, name: 'missing', redisServer: join(dir, 'no-such-redis-server') }).catch((e: unknown) => e)
    t.type(error, DDictStartError)
    t.equal((error as DDictStartError).code, 'E_DDICT_START')
    t.match((error as Error).message, /ddict missing: could not start its servers/)
    t.match((error as Error).message, /no-such-redis-server/, 'names the binary')
    t.match((error as Error).message, /on node \S+/, 'and the node')
    await noneLeft(id, 5000)
  })

  await t.test('a redis-server that exits at once', async (t) => {
    const id = uniqueId('x')
    t.teardown(() => noneLeft(id))
    const fake = join(dir, 'exits')
    writeFileSync(fake, '#!/bin/sh\necho "fake redis: config refused" >&2\nexit 3\n')
    chmodSync(fake, 0o755)
    const error = await startShards({ id, name: 'exits', redisServer: fake, managersPerNode: 2 }).catch((e: unknown) => e)
    t.type(error, DDictStartError)
    t.match((error as Error).message, /exited with code 3/)
    t.match((error as Error).message, /config refused/, 'with what the server printed')
    await noneLeft(id, 5000)
  })

  await t.test('servers advertised at an address this process cannot reach them at', async (t) => {
    const id = uniqueId('a')
    t.teardown(() => noneLeft(id))
    // bound to 127.0.0.1 only: 127.0.0.2 (loopback too) refuses
    const error = await startShards({ id, name: 'elsewhere', advertiseAddress: '127.0.0.2' }).catch((e: unknown) => e)
    t.type(error, DDictStartError)
    t.match((error as Error).message, /127\.0\.0\.2:\d+ \(node \S+\) reported ready but do not answer AUTH \+ PING from this process/)
    await noneLeft(id, 5000)
  })

  await t.test('servers that never answer: startTimeoutMs, and the hung processes are stopped', async (t) => {
    const id = uniqueId('t')
    t.teardown(() => noneLeft(id))
    const fake = join(dir, 'hangs')
    writeFileSync(fake, '#!/bin/sh\nexec sleep 600\n')
    chmodSync(fake, 0o755)
    const started = Date.now()
    const error = await startShards({ id, name: 'hangs', redisServer: fake, startTimeoutMs: 1500 }).catch((e: unknown) => e)
    t.type(error, DDictStartError)
    t.match((error as Error).message, /only 0 of 1 shard host\(s\) reported within startTimeoutMs \(1500 ms\)/)
    t.ok(Date.now() - started < 15_000, 'bounded')
    await noneLeft(id, 10_000)
  })
})
