// ddict.js (examples/producer-consumer/) on the embedded local default: the data go through a
// DDict whose Redis servers the program starts and stops; a dictionary sized too small fails
// with the DDict's own error instead of evicting data.
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { redisMissing } from '../helpers/redis.js'
import { checkRun, runProgram } from '../helpers/producer-consumer.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pc-ddict-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

/** Whether something accepts connections at host:port now. */
function listening(address: string): Promise<boolean> {
  const [host, port] = [address.replace(/:\d+$/, ''), Number(/:(\d+)$/.exec(address)![1])]
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

const noRedis = redisMissing()

t.test('ddict.js on the embedded local default', { skip: noRedis }, async (t) => {
  const cwd = mkdtempSync(join(scratch, 'ddict-'))
  const run = await runProgram('ddict', ['--num-sims', '4', '--grid-size', '32', '--managers', '2'], { cwd })
  const models = checkRun(t, run, 'ddict', 4, 32, 2)
  t.match(run.stdout, /^DDict: 2 shards on 1 node \(127\.0\.0\.1:\d+ 127\.0\.0\.1:\d+\), totalMem 0\.13 GB$/m)
  const ddict = run.result.ddict
  t.match(ddict, { shards: 2, nodes: 1, managersPerNode: 2, totalMem: 2 * 4 * 32 * 32 * 10 * 8 + 2 * 64 * 1024 ** 2 })
  t.equal(ddict.keysPerShard.reduce((a: number, b: number) => a + b, 0), 4, 'one key per simulation')
  for (const model of models) t.equal(model.localKeys, 4, 'every shard is on this node: all keys read as local')
  for (const address of ddict.addresses) t.notOk(await listening(address), `the shard at ${address} was stopped with the program`)
})

t.test('a dictionary too small for the data: the DDict refuses the put (E_DDICT_FULL), the run fails and says so', { skip: noRedis }, async (t) => {
  const cwd = mkdtempSync(join(scratch, 'full-'))
  // 4 simulations of 80 KiB in 200 KB (a shard takes 90% of it)
  const run = await runProgram('ddict', ['--num-sims', '4', '--grid-size', '32', '--ddict-mem', '200KB'], { cwd })
  t.equal(run.code, 1)
  t.match(run.stderr, /E_DDICT_FULL/)
  t.match(run.stderr, /ddict: the dictionary \(totalMem 200000 bytes\) is too small for 327680 bytes of data; give it more with --ddict-mem/)
  t.notMatch(run.stdout, /^RESULT/m)
})
