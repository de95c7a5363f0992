// A DDict travels as its descriptor (codec extension 0x2a) and attaches where it lands: in this
// process, and as a task argument on the thread executor and on HTEX (local provider).
import t from 'tap'
import { DDict } from 'tsflow/ddict'
import { decode, encode } from '../../../dist/serialize/codec.js'
import { startKernel } from '../../helpers/executors.js'
import { redisMissing } from '../../helpers/redis.js'
import { waitInTask, writeInTask } from '../../fixtures/ddict-apps.js'
import { addresses, startShards } from '../../helpers/ddict-shards.js'

const skip = redisMissing() ?? false

t.test('the codec sends a DDict as its descriptor, checkpoint and pin included', { skip }, async (t) => {
  const servers = await startShards(t, 2)
  const dict = await DDict.create({ addresses: addresses(servers), name: 'travel', workingSetSize: 3 })
  t.teardown(() => dict.destroy().catch(() => {}))
  await dict.set('a', 1)
  const pinned = dict.manager(1)
  pinned.checkpoint()
  const bytes = encode({ dict, pinned, list: [dict] })
  t.ok(bytes.length < 1024, `a few hundred bytes (${bytes.length})`)
  t.notMatch(bytes.toString('latin1'), /"a"/, 'no data travels')
  const back = decode<{ dict: DDict; pinned: DDict; list: DDict[] }>(bytes)
  t.ok(back.dict instanceof DDict)
  t.not(back.dict, dict)
  t.equal(back.dict.id, dict.id)
  t.equal(back.dict.name, 'travel')
  t.equal(back.dict.checkpointId, 0)
  t.equal(back.pinned.pinnedShard, 1)
  t.equal(back.pinned.checkpointId, 1)
  t.same(back.dict.descriptor(), dict.descriptor())
  t.equal(await back.list[0]!.get('a'), 1)
})

for (const kind of ['threads', 'htex-processes'] as const) {
  t.test(`a DDict argument on ${kind}: the task writes, the workflow reads`, { skip }, async (t) => {
    const servers = await startShards(t, 2)
    const dict = await DDict.create({ addresses: addresses(servers), name: `tasks-${kind}` })
    t.teardown(() => dict.destroy().catch(() => {}))
    await startKernel(t, kind)
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => writeInTask(dict, `from-task-${i}`, { i, data: new Float64Array([i, i + 0.5]) })))
    for (const [i, result] of results.entries()) {
      t.match(result, { isDDict: 'DDict', checkpoint: 0, pinned: null })
      t.same((result.read as { i: number }).i, i, 'the task read its own write')
    }
    t.same(results.map((r) => r.counter).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5], 'the counter was shared by every task')
    for (let i = 0; i < 6; i++) {
      const value = (await dict.get(`from-task-${i}`)) as { i: number; data: Float64Array }
      t.equal(value.i, i)
      t.same(Array.from(value.data), [i, i + 0.5])
    }
    // a pinned handle at a checkpoint keeps both on the worker
    const pinned = dict.manager(1)
    pinned.checkpoint()
    const result = await writeInTask(pinned, 'pinned-key', 'p')
    t.match(result, { checkpoint: 1, pinned: 1, read: 'p' })
    t.equal(await pinned.get('pinned-key'), 'p')
    // a task waiting on the workflow; the handle it returns comes back attached
    const waiting = waitInTask(dict, 'go')
    await dict.set('go', 'now')
    const back = await waiting
    t.equal(back.value, 'now')
    t.ok(back.dict instanceof DDict)
    t.equal(await back.dict.get('go'), 'now')
  })
}
