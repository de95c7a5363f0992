// waitFor (keyspace notifications, no lost wake-up, a timeout naming the key) and freeze (writes
// refused for every client, reads from a replica).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { redisMissing, startRedis } from '../../helpers/redis.js'
import { isAlive, waitFor } from '../../helpers/wait.js'
import { addresses, failureOf, PASSWORD, raw, SHARD_ARGS, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false
// the public entry's file, for scripts run in other processes and threads
const client = fileURLToPath(import.meta.resolve('tsflow/ddict'))

t.test('waitFor: wakes up on a write by another handle, times out naming the key', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), name: 'waits' })
  t.teardown(() => dict.destroy().catch(() => {}))
  const writer = DDict.attach(dict.descriptor())

  await dict.set('there', 'already')
  t.equal(await dict.waitFor('there', { timeoutMs: 1000 }), 'already', 'an existing key returns at once')

  const started = Date.now()
  const waiters = Promise.all([dict.waitFor('later', { timeoutMs: 20_000 }), dict.waitFor('later', { timeoutMs: 20_000 }), writer.waitFor('later', { timeoutMs: 20_000 })])
  setTimeout(() => void writer.set('later', { v: 1 }), 200)
  t.same(await waiters, [{ v: 1 }, { v: 1 }, { v: 1 }])
  t.ok(Date.now() - started < 5000, `woken by the write, not by a poll or the timeout (${Date.now() - started} ms)`)

  // get with wait, and a handle made with waitForKeys
  const getting = dict.get(12, { wait: true, timeoutMs: 20_000 })
  setTimeout(() => void writer.set(12, 'twelve'), 50)
  t.equal(await getting, 'twelve')
  const patient = DDict.attach({ ...dict.descriptor(), waitForKeys: true })
  const patientGet = patient.get('p')
  setTimeout(() => void writer.set('p', 'arrived'), 50)
  t.equal(await patientGet, 'arrived')
  t.equal(await patient.get('absent', { default: 'd' }), 'd', 'a default still answers at once')

  const before = Date.now()
  const timeout = await failureOf(dict.waitFor('never', { timeoutMs: 300 }), 'waitFor of a key nobody writes')
  t.equal(timeout.code, ErrorCode.DDICT_TIMEOUT)
  t.match(timeout.message, /ddict waits: waitFor of key "never" did not finish within 300 ms/)
  t.ok(Date.now() - before >= 290, 'not before its bound')
  t.equal((await failureOf(patient.get('never', { timeoutMs: 200 }), 'a waiting get')).code, ErrorCode.DDICT_TIMEOUT)

  // no lost wake-up: many waits, each woken by a write racing its subscription
  const many = await Promise.all(
    Array.from({ length: 40 }, (_, i) => {
      const wait = dict.waitFor(`race${i}`, { timeoutMs: 20_000 })
      void writer.set(`race${i}`, i)
      return wait
    }),
  )
  t.same(many, Array.from({ length: 40 }, (_, i) => i))
})

t.test('freeze: writes by every client are refused, reads go on; unfreeze', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), name: 'ice' })
  t.teardown(() => dict.destroy().catch(() => {}))
  await dict.update({ a: 1, b: 2 })
  await dict.freeze()
  t.equal(await dict.isFrozen(), true)
  for (const [what, write] of [
    ['set', () => dict.set('a', 3)],
    ['delete', () => dict.delete('a')],
    ['pop', () => dict.pop('a')],
    ['fetchAdd', () => dict.fetchAdd('a', 1)],
    ['setMany', () => dict.setMany([['x', 1], ['y', new Float64Array(20_000)]])],
    ['a large set', () => dict.set('big', new Float64Array(100_000))],
    ['clear', () => dict.clear()],
  ] as const) {
    const error = await failureOf(write(), `${what} while frozen`)
    t.equal(error.code, ErrorCode.DDICT_FROZEN, `${what} refused`)
  }
  t.match((await failureOf(dict.set('a', 3), 'set')).message, /ddict ice is frozen \(read-only\): set of key "a" refused; call unfreeze\(\) first/)
  t.same(await dict.getMany(['a', 'b']), [1, 2], 'reads go on and nothing changed')

  // another process, which never heard of the freeze, is refused by the servers
  const script = `
    import { DDict } from ${JSON.stringify(client)}
    const dict = DDict.attach(${JSON.stringify(dict.descriptor())})
    try { await dict.set('a', 99); console.log('written') } catch (error) { console.log(error.code) }
    console.log('read', await dict.get('a'))`
  const out = await runNode(t, script)
  t.match(out, /E_DDICT_FROZEN\nread 1/)
  let staging = 0
  for (const server of servers) staging += ((await (await raw(t, server)).send<Buffer[]>(['KEYS', `${dict.id}:#t:*`])) as unknown[]).length
  t.equal(staging, 0, 'a refused large write leaves no staging key')

  await dict.unfreeze()
  t.equal(await dict.isFrozen(), false)
  await dict.set('a', 3)
  t.equal(await dict.get('a'), 3)
})

t.test('a frozen dictionary reads from a replica (the primary stopped)', { skip }, async (t) => {
  const [primary] = await startShards(t, 1)
  const replica = await startRedis(t, { args: [...SHARD_ARGS, '--replicaof', primary!.host, String(primary!.port), '--masterauth', PASSWORD] })
  const replicaClient = await raw(t, replica, '')
  await waitFor(async () => /master_link_status:up/.test(String(await replicaClient.send(['INFO', 'replication']))), 'the replica to sync')
  await replicaClient.send(['CONFIG', 'SET', 'requirepass', PASSWORD])

  const created = await DDict.create({ addresses: addresses([primary!]) })
  const descriptor = created.descriptor()
  await created.update({ a: 'alpha', f: new Float64Array([1, 2]) })
  await created.detach()
  // the same dictionary, told about its replica (as servers tsflow starts describe them)
  const dict = DDict.attach({ ...descriptor, shards: [{ ...descriptor.shards[0]!, replicas: [{ host: replica.host, port: replica.port }] }] })
  t.teardown(() => dict.destroy().catch(() => {}))
  await dict.set('late', 'written just before the freeze')
  await dict.freeze()
  process.kill(primary!.pid, 'SIGSTOP')
  t.teardown(() => {
    if (isAlive(primary!.pid)) process.kill(primary!.pid, 'SIGCONT')
  })
  t.equal(await dict.get('a'), 'alpha', 'read from the replica while the primary is silent')
  t.equal(await dict.get('late'), 'written just before the freeze', 'freeze waited for the replica to catch up')
  t.same(Array.from((await dict.get('f')) as Float64Array), [1, 2])
  t.equal(await dict.has('a'), true)
  t.same(await dict.getMany(['a', 'late']), ['alpha', 'written just before the freeze'])
  process.kill(primary!.pid, 'SIGCONT')
  await dict.unfreeze()
})

async function runNode(t: Test, script: string): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk))
  await waitFor(() => child.exitCode !== null, 'the child process to exit', 30_000)
  return out
}
