// DragonHPC's checkpoint behaviours (its test_wait_writers_rollback, test_get_newest_chkpt_id,
// test_retire_working_set_size_1, the wait_for_keys tests) through two or more handles of one
// dictionary, on servers tsflow starts.
import t from 'tap'
import { DDict } from 'tsflow/ddict'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { collect, created, sibling } from '../../helpers/ddict-parity.js'

const skip = redisMissing() ?? false

t.test('checkpoints', { skip }, async (t) => {
  const base = await created(t, { name: 'parity-checkpoints' })

  t.test('rollback and advance across a writer and a reader (workingSetSize 2)', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 2 })
    const writer = DDict.attach(d.descriptor())
    const reader = DDict.attach(d.descriptor())
    await writer.set('key0', 'val0')
    t.equal(writer.checkpoint(), 1)
    t.equal(writer.checkpointId, 1)
    await writer.set('key0', 'val1')
    t.equal(await writer.rollback(), 0)
    t.equal(await writer.get('key0'), 'val0', 'the version of checkpoint 0 is still there')
    writer.checkpoint()
    writer.checkpoint()
    await writer.set('key0', 'val2')

    reader.checkpoint()
    t.equal(await reader.get('key0'), 'val1')
    reader.checkpoint()
    t.equal(await reader.get('key0'), 'val2')
    t.equal(await reader.rollback(), 1)
    t.equal(await reader.get('key0'), 'val1')
    // As in Dragon, the rollback to a retired checkpoint happens and the read that follows fails,
    // naming what the working set keeps.
    t.equal(await reader.rollback(), 0)
    await t.rejects(reader.get('key0'), { code: 'E_USAGE', message: /rolled back to checkpoint 0, which was retired.*1\.\.2/ })
    t.equal(await reader.advance(), 2, 'advance() moves it to a live checkpoint again')
    t.equal(await reader.get('key0'), 'val2')
    const at0 = DDict.attach({ ...d.descriptor(), checkpoint: 0 })
    await t.rejects(at0.set('key0', 'late'), { code: 'E_USAGE', message: /key0.*checkpoint 0.*retired.*advance\(\) first/ })
    t.equal(await at0.syncToNewestCheckpoint(), 2, 'syncToNewestCheckpoint is advance (Dragon sync_to_newest_checkpoint)')
    t.equal(await at0.get('key0'), 'val2')
    t.equal(await DDict.attach({ ...d.descriptor(), checkpoint: 0 }).rollback(), 0, 'a rollback at 0 stays at 0 (Dragon)')
    // checkpointId can be set, as Dragon's checkpoint_id
    const setter = DDict.attach(d.descriptor())
    setter.checkpointId = 2
    t.equal(await setter.get('key0'), 'val2')
    setter.checkpointId = 0
    await t.rejects(setter.set('key0', 'stale'), { code: 'E_USAGE', message: /retired/ })
    t.throws(() => (setter.checkpointId = -1), { code: 'E_USAGE', message: /non-negative/ })
    t.throws(() => (setter.checkpointId = 1.5), { code: 'E_USAGE' })
    t.equal(setter.checkpointId, 0)
  })

  t.test('a handle syncs to the newest checkpoint another handle wrote (Dragon test_get_newest_chkpt_id)', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 3 })
    const writer = DDict.attach(d.descriptor())
    const keys = ['abc', 'hello', 'dragon', 'Miska', 123] as const
    for (let c = 0; c <= 4; c++) {
      await writer.setMany(keys.slice(0, c + 1).map((k) => [k, `${String(k)}-${c}`] as const))
      if (c < 4) writer.checkpoint()
    }
    t.equal(d.checkpointId, 0)
    t.equal(await d.advance(), 4)
    t.equal(d.checkpointId, 4)
    t.equal(await d.get('abc'), 'abc-4')
    t.equal(await d.length(), 5)
    t.equal(await d.advance(), 4, 'advance never goes backwards or further than written')
    // at checkpoint 4 the working set is 2..4: 'abc' at 0 and 1 were retired by the writes at 3 and 4
    t.equal(await d.rollback(), 3)
    t.equal(await d.get('Miska'), 'Miska-3')
    t.equal(await d.rollback(), 2)
    await t.rejects(d.get('Miska'), { code: 'E_DDICT_KEY_NOT_FOUND', message: /Miska.*checkpoint 2/ }, 'Miska was first written at 3')
    t.equal(await d.rollback(), 1, 'a rollback onto a retired checkpoint happens (Dragon)')
    await t.rejects(d.get('Miska'), { code: 'E_USAGE', message: /rolled back to checkpoint 1, which was retired/ })
  })

  t.test('keys, length and values at each checkpoint; deletes remove the key from the working set', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 2 })
    await d.setMany([['a', 1], ['b', 2], [3, 'three']])
    d.checkpoint() // 1
    t.equal(await d.length(), 3, 'the keys of checkpoint 0 are visible at 1 (within the working set)')
    t.equal(await d.get('a'), 1)
    await d.set('a', 10)
    await d.set('new', 'at 1')
    t.equal(await d.length(), 4)
    t.equal(await d.delete('b'), true)
    t.equal(await d.length(), 3)
    t.same(new Set(await collect(d.keys())), new Set(['a', 3, 'new']))
    t.same(new Map(await collect(d.entries())), new Map<unknown, unknown>([['a', 10], [3, 'three'], ['new', 'at 1']]))
    d.checkpoint() // 2: checkpoint 0 left the working set
    t.same(new Set(await collect(d.keys())), new Set(['a', 'new']), 'keys last written at 0 are not visible at 2')
    t.equal(await d.length(), 2)
    await t.rejects(d.get(3), { code: 'E_DDICT_KEY_NOT_FOUND' })
    await d.rollback()
    t.equal(await d.get(3), 'three', 'back at 1 it is visible again (nothing wrote at 2 yet)')
    await d.clear()
    t.equal(await d.length(), 0)
    d.checkpoint()
    t.equal(await d.length(), 0, 'clear() removes every checkpoint')
  })

  t.test('workingSetSize 1: a write at 1 retires checkpoint 0 (Dragon test_retire_working_set_size_1)', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 1 })
    await d.set('hello', 'there')
    await d.set('constant', 'value')
    d.checkpoint()
    await d.set('hello', 'my name is bob')
    t.equal(await d.length(), 1, 'only what was written at 1 (Dragon would also count pput keys: tsflow has none)')
    t.equal(await d.get('hello'), 'my name is bob')
    await t.rejects(d.get('constant'), { code: 'E_DDICT_KEY_NOT_FOUND' })
  })

  t.test('waitForKeys: a reader at checkpoint c waits for the writer to write at c, also when c - 1 has a value', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 2, waitForKeys: true })
    const writer = DDict.attach(d.descriptor())
    const reader = DDict.attach(d.descriptor())
    for (let c = 0; c < 3; c++) {
      let settled = false
      const reading = reader.get('model', { timeoutMs: 20_000 }).finally(() => (settled = true))
      // the value at c - 1 is there; the reader must still wait for the one at c
      if (c > 0) t.equal(await writer.get('model', { wait: false }), `model ${c - 1}`)
      await writer.set('marker', c)
      t.equal(await DDict.attach({ ...d.descriptor(), checkpoint: c }).get('marker'), c)
      t.equal(settled, false, `the reader at ${c} is still waiting`)
      await writer.set('model', `model ${c}`)
      t.equal(await reading, `model ${c}`)
      writer.checkpoint()
      reader.checkpoint()
    }
    // a read of what is there returns at once; get({ wait: false }) reads the working set
    await writer.set('now', 'here')
    t.equal(await reader.get('now'), 'here')
    await writer.rollback()
    t.equal(await writer.get('marker', { wait: false }), 2)
    await t.rejects(DDict.attach(d.descriptor()).get('never', { timeoutMs: 200 }), { code: 'E_DDICT_TIMEOUT', message: /never.*200 ms/ })
  })

  t.test('a reader started before the writer reaches its checkpoint (Dragon test_wait_keys_get_put)', async (t) => {
    const d = await sibling(t, base, { workingSetSize: 2, waitForKeys: true })
    const reader = DDict.attach({ ...d.descriptor(), checkpoint: 1 })
    let settled = false
    const reading = reader.get('k').finally(() => (settled = true))
    const writer = DDict.attach(d.descriptor())
    await writer.set('k', 'at 0')
    writer.checkpoint()
    await writer.set('k', 'at 1')
    t.equal(await reading, 'at 1')
    await waitFor(() => settled, 'the read to settle')
  })
})

t.test('clear at checkpoint c leaves what a handle ahead wrote at c + 1 (Dragon test_wait_keys_clear)', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-clear', workingSetSize: 3 })
  const ahead = DDict.attach(d.descriptor())
  await d.setMany([['hello0', 'world0'], ['n', 0]])
  d.checkpoint() // 1
  await d.set('hello0_1', 'world1')
  ahead.checkpoint()
  ahead.checkpoint() // 2
  await ahead.set('Miska', 'dog')
  t.equal(await d.length(), 3)
  await d.clear()
  t.equal(await d.length(), 0, 'nothing is left at 1')
  t.equal(await ahead.has('Miska'), true, 'the write at 2 stays')
  t.equal(await ahead.has('hello0'), false, 'what was visible at 1 is gone at 2 too')
  t.equal(await ahead.length(), 1)
  await d.advance()
  t.equal(await d.get('Miska'), 'dog')
  await d.clear()
  t.equal(await ahead.length(), 0, 'a clear at the newest checkpoint removes everything')
  const fresh = DDict.attach({ ...d.descriptor(), checkpoint: 0 })
  await fresh.set('again', 1)
  t.equal(await fresh.get('again'), 1, 'and the bookkeeping with it: checkpoint 0 can be written again')
})
