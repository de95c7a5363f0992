// DragonHPC's freeze (test_freeze, test_freeze_invalid_ops, test_get_from_frozen_dict), local
// managers and keys (test_local_managers, test_local_keys), a full dictionary (test_fill), and
// the codes and messages of the errors a Dragon user catches, on servers DDict.create starts.
import t from 'tap'
import { DDict, DDictFull, DDictFrozen, DDictKeyNotFound, DDictTimeout } from 'tsflow'
import { DDict as FromEntry } from 'tsflow/ddict'
import { redisMissing } from '../../helpers/redis.js'
import { collect, created, sibling } from '../../helpers/ddict-parity.js'

const skip = redisMissing() ?? false

t.test('the entries agree', async (t) => {
  t.equal(DDict, FromEntry, "'tsflow' and 'tsflow/ddict' export the same class")
})

t.test('freeze', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-freeze', workingSetSize: 2, waitForKeys: true })
  await d.set('hello', 'world')
  await d.set('Miska', 'dog')
  await d.set('n', 1)
  const other = DDict.attach(d.descriptor())
  t.equal(await d.isFrozen(), false)
  await d.freeze()
  t.equal(await d.isFrozen(), true)
  t.equal(await other.isFrozen(), true, 'every handle sees it')
  // reads go on, and read the same value again (Dragon: a frozen read must not consume the key)
  t.equal(await d.get('hello'), 'world')
  t.equal(await d.get('hello'), 'world')
  t.equal(await other.get('Miska'), 'dog')
  t.same(new Set(await collect(d.keys())), new Set(['hello', 'Miska', 'n']))
  t.equal(await d.length(), 3)
  // every write is refused, from every handle, naming the key and the call
  for (const [what, call] of [
    ['set', () => other.set('hello', 'again')],
    ['setMany', () => d.setMany([['a', 1]])],
    ['update', () => d.update({ b: 2 })],
    ['pop', () => d.pop('hello')],
    ['delete', () => other.delete('hello')],
    ['fetchAdd', () => d.fetchAdd('n', 1)],
    ['clear', () => d.clear()],
  ] as const) {
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof DDictFrozen, `${what} refused with DDictFrozen`)
    t.match(error, { code: 'E_DDICT_FROZEN', message: /parity-freeze is frozen.*unfreeze\(\)/ }, what)
  }
  t.equal(await d.get('hello'), 'world', 'nothing changed')
  t.equal(await d.length(), 3)
  await other.unfreeze()
  t.equal(await d.isFrozen(), false)
  await d.set('hello', 'thawed')
  t.equal(await other.get('hello'), 'thawed')
  t.equal(await d.fetchAdd('n', 1), 1)
})

t.test('local managers and local keys on this machine', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-local' })
  t.same(d.localManagers(), [0, 1], 'both servers run here')
  await d.set('hello', 'world')
  await d.set(1, 2)
  const local = await d.localKeys()
  t.ok(local.includes('hello'))
  t.ok(local.includes(1), 'the number key comes back as a number')
  t.notOk(local.includes('1'))
  // a pinned handle per local manager lists its own keys: together, every key once
  const perManager = await Promise.all(d.localManagers().map(async (m) => collect(d.manager(m).keys())))
  t.same(perManager.flat().length, 2)
  for (const [m, keys] of perManager.entries()) for (const key of keys) t.equal(d.whichManager(key), m)
  const stats = await d.stats()
  t.equal(stats.length, 2)
  t.same(stats.map((s) => s.keys).reduce((a, b) => a + b, 0), 2)
  t.match(stats[0], { index: 0, address: /:\d+$/, usedBytes: Number, limitBytes: Number })
})

t.test('a full dictionary refuses puts with DDictFull and keeps what it had (Dragon test_fill)', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-full', managersPerNode: 1, totalMem: 16 * 1024 * 1024 })
  const chunk = new Float64Array(128 * 1024) // 1 MB
  let refused: unknown
  let i = 0
  for (; i < 64 && !refused; i++) await d.set(`chunk-${i}`, chunk).catch((e: unknown) => (refused = e))
  t.ok(refused instanceof DDictFull, 'DDictFull before 64 MB went into 16 MB')
  t.match(refused, { code: 'E_DDICT_FULL', message: new RegExp(`chunk-${i - 1}`) })
  t.equal(await d.has(`chunk-${i - 1}`), false, 'the refused put wrote nothing')
  t.equal(((await d.get('chunk-0')) as Float64Array).length, chunk.length, 'nothing was evicted')
  t.equal(await d.length(), i - 1)
  await d.delete('chunk-0')
  await d.delete('chunk-1')
  await d.set('after-delete', chunk)
  t.pass('deleting makes room again')
})

t.test('error codes and messages name the dictionary and the key', { skip }, async (t) => {
  const base = await created(t, { name: 'parity-errors' })
  const d = await sibling(t, base, { name: 'errs', timeoutMs: 5000 })
  const missing = await d.get('absent').catch((e: unknown) => e)
  t.ok(missing instanceof DDictKeyNotFound)
  t.match(missing, { code: 'E_DDICT_KEY_NOT_FOUND', message: /errs.*"absent"/ })
  const timeout = await d.waitFor(7, { timeoutMs: 150 }).catch((e: unknown) => e)
  t.ok(timeout instanceof DDictTimeout)
  t.match(timeout, { code: 'E_DDICT_TIMEOUT', message: /key 7 .*150 ms/ })
  await t.rejects(d.fetchAdd('k', 1.5), { code: 'E_USAGE', message: /safe integer/ })
  t.throws(() => d.manager(5), { code: 'E_USAGE', message: /manager\(5\)/ })
  await t.rejects(DDict.create({ workingSetSize: 0 }), { code: 'E_CONFIG', message: /ddict\.workingSetSize/ })
  await t.rejects(d.set({ not: 'a key' } as never, 1), { code: 'E_USAGE' })
  await t.rejects(d.set(Number.NaN, 1), { code: 'E_USAGE' })
})
