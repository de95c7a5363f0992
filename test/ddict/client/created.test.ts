// A DDict whose servers tsflow starts (no addresses): a server that dies is reported and calls to
// it fail at once naming it; destroy stops the servers; handles here fail with DDictDestroyed,
// handles elsewhere with DDictUnreachable saying the dictionary may have been destroyed.
import { spawn } from 'node:child_process'
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { keyText, shardOf } from 'tsflow/protocol'
import { ping, redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { failureOf, raw } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

function keyOn(shard: number, count: number): string {
  for (let i = 0; ; i++) if (shardOf(keyText(`k${i}`), count) === shard) return `k${i}`
}

t.test('servers tsflow started: a lost server, destroy', { skip }, async (t) => {
  const dict = await DDict.create({ managersPerNode: 2, totalMem: '64MB', name: 'made' })
  t.teardown(() => dict.destroy().catch(() => {}))
  const descriptor = dict.descriptor()
  t.equal(descriptor.shards.length, 2)
  t.ok(descriptor.password.length > 0, 'a password of its own')
  t.ok(descriptor.shards.every((s) => s.maxmemory > 0 && s.maxmemory <= 0.9 * 32 * 1024 * 1024), 'each server has 90% of its share as maxmemory')
  await dict.setMany([[keyOn(0, 2), 'zero'], [keyOn(1, 2), 'one']])
  t.same(await dict.getMany([keyOn(0, 2), keyOn(1, 2)]), ['zero', 'one'])
  const elsewhere = DDict.attach(descriptor)
  t.equal(await elsewhere.get(keyOn(1, 2)), 'one')

  // kill shard 1's server: the shard host reports it, and calls name it as lost
  const victim = descriptor.shards[1]!
  const info = String(await (await raw(t, victim, descriptor.password)).send(['INFO', 'server']))
  const pid = Number(/process_id:(\d+)/.exec(info)![1])
  process.kill(pid, 'SIGKILL')
  let last = new Error('none') as Error & { code?: string; [k: string]: unknown }
  await waitFor(async () => {
    last = await failureOf(dict.get(keyOn(1, 2)), 'a get from the killed server', 10_000)
    return /was lost/.test(last.message)
  }, 'the loss to be reported', 20_000)
  t.equal(last.code, ErrorCode.DDICT_UNREACHABLE)
  t.equal(last.shard, 1)
  t.match(last.message, new RegExp(`ddict made: shard 1 \\(${victim.host}:${victim.port}\\) is unreachable: get: the server was lost`))
  const started = Date.now()
  t.equal((await failureOf(dict.set(keyOn(1, 2), 'x'), 'a set to the lost server')).code, ErrorCode.DDICT_UNREACHABLE)
  t.ok(Date.now() - started < 1000, 'at once, not after timeoutMs')
  // the shard host stops its other servers when one dies (servers/shard-host.ts): reported as well
  await waitFor(async () => /was lost/.test((await failureOf(dict.get(keyOn(0, 2)), 'a get from shard 0', 10_000)).message), 'shard 0 reported lost too', 20_000)

  await dict.destroy()
  for (const handle of [dict, elsewhere]) t.equal((await failureOf(handle.get(keyOn(0, 2)), 'get after destroy')).code, ErrorCode.DDICT_DESTROYED)
  t.equal(await ping(descriptor.shards[0]!.host, descriptor.shards[0]!.port, 500), false, 'its servers were stopped')

  // a handle in another process
  const script = `
    import { DDict } from 'tsflow/ddict'
    const dict = DDict.attach(${JSON.stringify(descriptor)})
    try { await dict.get(${JSON.stringify(keyOn(0, 2))}) } catch (error) { console.log(error.code, error.message) }`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk))
  child.stderr.on('data', (chunk: Buffer) => (out += chunk))
  await waitFor(() => child.exitCode !== null, 'the other process to end', 30_000)
  t.match(out, /E_DDICT_UNREACHABLE ddict made: shard 0 .* is unreachable: .*may have been destroyed/)
})
