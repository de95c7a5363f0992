// Checkpoints (DragonHPC's semantics, docs/ddict.md): writes go to the handle's checkpoint,
// reads see the newest version within the working set, old versions are retired, rollback and
// advance, readers that wait for a key at their checkpoint.
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { DDict } from 'tsflow/ddict'
import { keyText, redisKey, shardOf } from 'tsflow/protocol'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { addresses, failureOf, raw, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

t.test('versions per checkpoint, the working set, retirement, rollback and advance', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const a = await DDict.create({ addresses: addresses(servers), name: 'cp' }) // workingSetSize 2
  t.teardown(() => a.destroy().catch(() => {}))
  const clients = await Promise.all(servers.map((s) => raw(t, s)))
  const exists = async (checkpoint: number, key: string) =>
    Number(await clients[shardOf(keyText(key), 2)]!.send(['EXISTS', redisKey(a.id, checkpoint, keyText(key))])) === 1
  const b = DDict.attach(a.descriptor())

  await a.update({ x: 'x0', n: 5 })
  let meta = 0
  for (const client of clients) meta += ((await client.send<Buffer[]>(['KEYS', `${a.id}:#*`])) as unknown[]).length
  t.equal(meta, 0, 'writes at checkpoint 0 keep no checkpoint bookkeeping')

  t.equal(a.checkpoint(), 1)
  t.equal(a.checkpointId, 1)
  t.equal(await a.get('x'), 'x0', 'checkpoint 1 sees checkpoint 0 (working set 2)')
  await a.set('x', 'x1')
  t.equal(await a.get('x'), 'x1')
  t.equal(await b.get('x'), 'x0', 'a handle at checkpoint 0 still reads checkpoint 0')
  t.equal(await a.fetchAdd('n', 1), 5, 'a counter at a new checkpoint starts from the visible value')
  t.equal(await a.get('n'), 6)
  t.equal(await b.get('n'), 5)
  t.same(new Set(await keysOf(a)), new Set(['x', 'n']), 'keys() lists each key once across the working set')
  t.equal(await a.length(), 2)

  t.equal(a.checkpoint(), 2)
  await a.set('x', 'x2')
  t.equal(await exists(0, 'x'), false, 'the version at checkpoint 0 was retired by the write at 2')
  t.equal(await exists(1, 'x'), true)
  t.equal((await failureOf(b.get('x'), 'a read of a retired version')).code, ErrorCode.DDICT_KEY_NOT_FOUND)
  t.equal(await b.get('n'), 5, 'n was not written at 2: its versions stay')
  t.same(await a.getMany(['x', 'n']), ['x2', 6])

  // rollback within the working set, not past it
  t.equal(await a.rollback(), 1)
  t.equal(await a.get('x'), 'x1')
  // past the working set: the rollback happens (as in DragonHPC), the next call is refused
  t.equal(await a.rollback(), 0)
  const refused = await failureOf(a.get('x'), 'a read at a retired checkpoint')
  t.equal(refused.code, ErrorCode.USAGE)
  t.match(refused.message, /rolled back to checkpoint 0, which was retired \(the newest checkpoint written is 2, workingSetSize 2 keeps 1\.\.2\).*\(get refused\)/)
  t.equal(a.checkpoint(), 1, 'checkpoint() moves it back into the working set')
  t.equal(await a.get('x'), 'x1')

  // advance: to the newest checkpoint any client wrote
  const c = DDict.attach({ ...a.descriptor(), checkpoint: 0 })
  t.equal(await c.advance(), 2)
  t.equal(await c.get('x'), 'x2')

  // a write into a checkpoint retired for that key is refused
  c.checkpoint()
  await c.set('x', 'x3')
  t.equal(a.checkpointId, 1)
  const retired = await failureOf(a.set('x', 'late'), 'a write at a retired checkpoint')
  t.equal(retired.code, ErrorCode.USAGE)
  t.match(retired.message, /write of key "x" at checkpoint 1 refused: the key was written at checkpoint 3.*advance\(\) first/)
  await a.advance()
  t.equal(a.checkpointId, 3)
  t.equal(await a.get('x'), 'x3')
  const big = new Float64Array(50_000).fill(7)
  a.checkpoint()
  await a.set('x', big)
  t.equal(((await a.get('x')) as Float64Array)[49_999], 7, 'a staged write at a checkpoint')
  t.equal(await exists(2, 'x'), false, 'and it retires too')

  t.equal(await a.has('n'), false, 'n, last written at 1, is outside the working set of checkpoint 4')
  t.equal(await b.get('n'), 5, 'a handle at 0 still sees it')
  // deletes and pops at a checkpoint remove what the handle sees
  await a.set('d', 'd4')
  t.equal(await a.delete('d'), true)
  t.equal(await a.has('d'), false)
  await a.set('p', 'p4')
  t.equal(await a.pop('p'), 'p4')
  t.equal(await a.has('p'), false)
  await a.clear()
  t.equal(await b.has('n'), false, 'clear removes every checkpoint')
})

t.test('a reader waits for a key to be written at its own checkpoint', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), waitForKeys: true })
  t.teardown(() => dict.destroy().catch(() => {}))
  const writer = DDict.attach(dict.descriptor())
  const reader = DDict.attach({ ...dict.descriptor(), checkpoint: 3 })
  let settled = false
  const reading = reader.get('model').finally(() => (settled = true))
  writer.checkpoint()
  writer.checkpoint() // 2
  await writer.set('model', 'at 2')
  await writer.set('marker', 'written after model at 2')
  // once the writes at 2 are visible to a handle at 2, the reader at 3 must still be waiting
  const probe = DDict.attach({ ...dict.descriptor(), checkpoint: 2 })
  t.equal(await probe.get('marker'), 'written after model at 2')
  t.equal(settled, false, 'a version at checkpoint 2 does not wake a reader waiting at 3')
  writer.checkpoint() // 3
  await writer.set('model', 'at 3')
  t.equal(await reading, 'at 3')
  await waitFor(() => settled, 'the read to settle')
})

async function keysOf(dict: DDict): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const key of dict.keys()) out.push(key)
  return out
}
