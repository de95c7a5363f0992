// Faults and lifetimes: a shard killed mid-run or silent (the error names it, nothing hangs),
// detach, destroy, and idle connections that keep no process or thread alive.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { keyText, shardOf } from 'tsflow/protocol'
import { redisMissing } from '../../helpers/redis.js'
import { isAlive, waitFor } from '../../helpers/wait.js'
import { addresses, failureOf, raw, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

/** A key that hashes to `shard` of `count`. */
function keyOn(shard: number, count: number, prefix = 'k'): string {
  for (let i = 0; ; i++) if (shardOf(keyText(`${prefix}${i}`), count) === shard) return `${prefix}${i}`
}

t.test('a shard killed mid-run: calls fail with DDictUnreachable naming it, within the timeout; the others go on', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), timeoutMs: 3000 })
  t.teardown(() => dict.detach())
  const victim = servers[1]!
  const onVictim = keyOn(1, 2)
  const onSurvivor = keyOn(0, 2)
  await dict.set(onVictim, 'x')
  // a stream of large writes to the victim, so the kill lands while some are in flight
  const big = new Float64Array(200_000).fill(1)
  let writes = 0
  const stream = (async () => {
    for (;;) {
      await dict.set(onVictim, big)
      writes++
    }
  })()
  await waitFor(() => writes >= 3, 'a few writes to go through')
  const killedAt = Date.now()
  process.kill(victim.pid, 'SIGKILL')
  const error = await failureOf(stream, 'the write stream to a killed shard', 10_000)
  t.ok(Date.now() - killedAt < 3000, `the pending write failed within timeoutMs (${Date.now() - killedAt} ms)`)
  t.equal(error.code, ErrorCode.DDICT_UNREACHABLE)
  t.equal(error.shard, 1)
  t.equal(error.address, `${victim.host}:${victim.port}`)
  t.match(error.message, new RegExp(`shard 1 \\(127\\.0\\.0\\.1:${victim.port}\\) is unreachable`))
  // later calls to that shard fail at once (connection refused), naming it
  const later = await failureOf(dict.get(onVictim), 'a get from the killed shard', 10_000)
  t.equal(later.code, ErrorCode.DDICT_UNREACHABLE)
  t.match(later.message, /shard 1 .*cannot connect.*may have been destroyed/)
  // keys() over all shards fails naming it too; the surviving shard still works
  t.equal((await failureOf((async () => { for await (const _ of dict.keys()); })(), 'keys() with a dead shard', 10_000)).code, ErrorCode.DDICT_UNREACHABLE)
  await dict.set(onSurvivor, 'alive')
  t.equal(await dict.get(onSurvivor), 'alive')
})

t.test('a silent shard (SIGSTOP): the call fails with DDictUnreachable after timeoutMs, not a hang', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), timeoutMs: 1000 })
  t.teardown(() => dict.detach())
  const key = keyOn(0, 2)
  await dict.set(key, 1)
  process.kill(servers[0]!.pid, 'SIGSTOP')
  t.teardown(() => {
    if (isAlive(servers[0]!.pid)) process.kill(servers[0]!.pid, 'SIGCONT')
  })
  const started = Date.now()
  const error = await failureOf(dict.get(key), 'a get from a stopped shard', 10_000)
  const took = Date.now() - started
  t.equal(error.code, ErrorCode.DDICT_UNREACHABLE)
  t.match(error.message, /shard 0 .*no answer within 1000 ms \(timeoutMs\)/)
  t.ok(took >= 900 && took < 3000, `failed after about timeoutMs (${took} ms)`)
  // waitFor on the silent shard is bounded as well
  const wait = await failureOf(dict.waitFor(key, { timeoutMs: 500 }), 'waitFor on a stopped shard', 10_000)
  t.ok([ErrorCode.DDICT_UNREACHABLE, ErrorCode.DDICT_TIMEOUT].includes(wait.code as never), wait.message)
  process.kill(servers[0]!.pid, 'SIGCONT')
  t.equal(await dict.get(key), 1, 'the shard answers again once resumed (a fresh connection)')
})

t.test('detach: that handle fails clearly, others in the process go on', { skip }, async (t) => {
  const servers = await startShards(t, 1)
  const dict = await DDict.create({ addresses: addresses(servers) })
  const other = DDict.attach(dict.descriptor())
  t.teardown(() => other.destroy().catch(() => {}))
  await dict.set('a', 1)
  await dict.detach()
  const error = await failureOf(dict.get('a'), 'get on a detached handle')
  t.equal(error.code, ErrorCode.USAGE)
  t.match(error.message, /get on a detached handle; attach again/)
  t.equal(await other.get('a'), 1, 'the other handle shares the connections and still works')
  await other.detach()
  const again = DDict.attach(dict.descriptor())
  t.equal(await again.get('a'), 1, 'attaching after the last detach connects afresh')
  await again.detach()
})

t.test('destroy on an existing deployment deletes the keys; every handle here fails with DDictDestroyed', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), name: 'doomed' })
  const kept = await DDict.create({ addresses: addresses(servers), name: 'kept' })
  t.teardown(() => kept.destroy().catch(() => {}))
  const other = DDict.attach(dict.descriptor())
  await dict.update({ a: 1, b: 2, c: 3 })
  await kept.set('a', 'mine')
  dict.checkpoint()
  await dict.set('a', 10)
  await dict.destroy()
  for (const handle of [dict, other, DDict.attach(dict.descriptor())]) {
    const error = await failureOf(handle.get('a'), 'get after destroy')
    t.equal(error.code, ErrorCode.DDICT_DESTROYED)
    t.match(error.message, /ddict doomed was destroyed; get is not possible any more/)
  }
  for (const server of servers) {
    const left = (await (await raw(t, server)).send<Buffer[]>(['KEYS', `${dict.id}:*`])) as unknown[]
    t.equal(left.length, 0, 'no key of the destroyed dictionary is left')
  }
  t.equal(await kept.get('a'), 'mine', 'another dictionary on the same servers is untouched')
})

t.test('a handle whose servers are gone says the dictionary may have been destroyed', { skip }, async (t) => {
  const servers = await startShards(t, 1)
  const dict = await DDict.create({ addresses: addresses(servers), timeoutMs: 2000 })
  t.teardown(() => dict.detach())
  await dict.set('a', 1)
  await servers[0]!.stop()
  const error = await failureOf(dict.get('a'), 'get after the servers stopped', 10_000)
  t.equal(error.code, ErrorCode.DDICT_UNREACHABLE)
  t.match(error.message, /may have been destroyed/)
})

const here = fileURLToPath(new URL('.', import.meta.url))
// the public entry's file, for scripts run in other processes and threads
const client = fileURLToPath(import.meta.resolve('tsflow/ddict'))

t.test('idle connections keep no process or worker thread alive', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const script = `
    import { Worker } from 'node:worker_threads'
    import { DDict } from ${JSON.stringify(client)}
    const dict = await DDict.create({ addresses: ${JSON.stringify(addresses(servers))} })
    await dict.set('main', 1)
    await dict.waitFor('main', { timeoutMs: 5000 })
    const worker = new Worker(${JSON.stringify(`import { DDict } from ${JSON.stringify(client)}
      import { workerData } from 'node:worker_threads'
      const dict = DDict.attach(workerData)
      await dict.set('thread', 2)
      console.log('thread read', await dict.get('main'))`)}, { eval: true, workerData: dict.descriptor() })
    const [code] = await (await import('node:events')).once(worker, 'exit')
    console.log('thread exited', code, await dict.get('thread'))
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk))
  const exited = once(child, 'exit')
  await waitFor(() => child.exitCode !== null, 'the child process to exit by itself (no detach)', 30_000)
  await exited
  t.equal(child.exitCode, 0, out)
  t.match(out, /thread read 1\nthread exited 0 2/)
})
