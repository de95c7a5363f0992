// What a DragonHPC DDict user relies on for the dict protocol (the behaviours of Dragon's own
// tests: put/get, missing keys, pop, contains, len, clear, keys/values/items, custom managers),
// on servers tsflow starts. Dragon's `d[k]` is `get(k)`; its `d.get(k)` is `get(k, { default })`.
import t from 'tap'
import { DDict } from 'tsflow/ddict'
import { redisMissing } from '../../helpers/redis.js'
import { collect, created } from '../../helpers/ddict-parity.js'

const skip = redisMissing() ?? false

t.test('dict protocol', { skip }, async (t) => {
  const d = await created(t, { name: 'parity-dict' })

  t.test('put/get of strings, numbers and structured values; 7 and "7" are two keys', async (t) => {
    await d.set('abc', 'def')
    await d.set(123, 456)
    await d.set('123', 'text')
    await d.set('list', [1, 2, 3, { x: 'y' }])
    t.equal(await d.get('abc'), 'def')
    t.equal(await d.get(123), 456)
    t.equal(await d.get('123'), 'text')
    t.same(await d.get('list'), [1, 2, 3, { x: 'y' }])
    await d.set('abc', 'overwritten')
    t.equal(await d.get('abc'), 'overwritten', 'a put overwrites')
    await d.clear()
  })

  t.test('a missing key: get throws DDictKeyNotFound naming it (Dragon KeyError); a default is returned (Dragon d.get)', async (t) => {
    await t.rejects(d.get('np array'), { code: 'E_DDICT_KEY_NOT_FOUND', name: 'DDictKeyNotFound', message: /np array/ })
    await t.rejects(d.get(42), { code: 'E_DDICT_KEY_NOT_FOUND', message: /42/ })
    t.equal(await d.get('np array', { default: undefined }), undefined, 'default undefined = Dragon d.get(k) -> None')
    t.equal(await d.get('np array', { default: null }), null)
    t.equal(await d.get('np array', { default: 0 }), 0)
  })

  t.test('pop: the value once, then DDictKeyNotFound; a default when missing', async (t) => {
    await d.set('abc', 'def')
    t.equal(await d.pop('abc'), 'def')
    await t.rejects(d.pop('abc'), { code: 'E_DDICT_KEY_NOT_FOUND', message: /abc/ })
    await d.set(123, 456)
    t.equal(await d.delete(123), true)
    await t.rejects(d.pop(123), { code: 'E_DDICT_KEY_NOT_FOUND' })
    t.equal(await d.pop(123, { default: 'gone' }), 'gone')
    t.equal(await d.pop(123, { default: undefined }), undefined)
    t.equal(await d.delete(123), false, 'deleting a missing key is no error: it says false (Dragon del d[k] raises)')
  })

  t.test('has (Dragon `in`) after put, pop and delete', async (t) => {
    await d.set('abc', 'def')
    t.equal(await d.has('abc'), true)
    t.equal(await d.has(123), false)
    await d.set(123, 456)
    t.equal(await d.has(123), true)
    t.equal(await d.has('123'), false, 'the string key is another key')
    await d.pop(123)
    t.equal(await d.has(123), false)
    await d.delete('abc')
    t.equal(await d.has('abc'), false)
  })

  t.test('length counts puts, overwrites once, pops', async (t) => {
    await d.clear()
    t.equal(await d.length(), 0)
    await d.set('abc', 'def')
    t.equal(await d.length(), 1)
    await d.set(123, 456)
    await d.set(123, 457)
    t.equal(await d.length(), 2, 'an overwrite is one key')
    await d.set('tuple', [1, 2, 3])
    t.equal(await d.length(), 3)
    await d.pop('abc')
    t.equal(await d.length(), 2)
    await d.pop(123)
    await d.pop('tuple')
    t.equal(await d.length(), 0)
  })

  t.test('clear: empties, again when empty, and after a new put', async (t) => {
    await d.setMany([['abc', 'def'], [123, 456], ['t', [1, 2]]])
    t.equal(await d.length(), 3)
    await d.clear()
    t.equal(await d.length(), 0)
    await d.clear()
    t.equal(await d.length(), 0)
    await d.set('hello', 'world')
    await d.clear()
    t.equal(await d.length(), 0)
    t.same(await collect(d.keys()), [])
  })

  t.test('keys/values/entries: every key once, with its type, after deletes', async (t) => {
    await d.clear()
    const put = new Map<string | number, unknown>()
    for (let i = 0; i < 40; i++) put.set(i % 2 ? `k${i}` : i, { i })
    await d.update(put)
    await d.delete(0)
    await d.delete('k1')
    put.delete(0)
    put.delete('k1')
    const keys = await collect(d.keys())
    t.equal(keys.length, 38)
    t.same(new Set(keys), new Set(put.keys()), 'the same keys, numbers as numbers')
    const values = await collect(d.values())
    t.same(values.map((v) => (v as { i: number }).i).sort((a, b) => a - b), [...put.values()].map((v) => (v as { i: number }).i).sort((a, b) => a - b))
    const entries = await collect(d.entries())
    t.same(new Map(entries), put)
    // breaking out of an iteration early is fine (Dragon test_iter_break)
    let n = 0
    for await (const _ of d.keys()) if (++n === 3) break
    t.equal(n, 3)
    t.equal(await d.length(), 38)
    await d.clear()
  })

  t.test('update from an object, a Map and an iterable of pairs', async (t) => {
    await d.update({ a: 1, b: 'two' })
    await d.update(new Map<string | number, unknown>([[3, 'three'], ['c', [3]]]))
    await d.update((function* () {
      yield ['g1', 'gen'] as const
      yield [9, 'nine'] as const
    })())
    t.same(await d.getMany(['a', 'b', 3, 'c', 'g1', 9]), [1, 'two', 'three', [3], 'gen', 'nine'])
    t.equal(await d.length(), 6)
    await t.rejects(d.update([['only-key']] as never), { code: 'E_USAGE', message: /\[key, value\] pair/ })
    await d.clear()
  })

  t.test('custom managers (Dragon test_custom_manager): pinned handles, counts, a pinned clear', async (t) => {
    await d.clear()
    const d0 = d.manager(0)
    const d1 = d.manager(1)
    await d0.set('hello', 'goodbye')
    await d1.set('berry', 'good')
    await d1.set('hello', 'two')
    await d1.set('today', 'friday')
    t.equal((await collect(d.keys())).length, 4, 'the unpinned handle lists every shard: "hello" twice, one per shard')
    t.equal((await collect(d1.keys())).length, 3)
    t.equal((await collect(d0.keys())).length, 1)
    t.equal(await d.length(), 4)
    t.equal(await d1.length(), 3)
    t.equal(await d0.length(), 1)
    t.equal((await d1.stats()).length, 1, 'a pinned handle has the stats of its shard')
    t.equal(await d0.get('hello'), 'goodbye')
    t.equal(await d1.get('hello'), 'two')
    await d1.clear()
    t.equal((await collect(d.keys())).length, 1, 'a pinned clear empties its shard only')
    t.equal((await collect(d1.keys())).length, 0)
    t.equal((await collect(d0.keys())).length, 1)
    t.throws(() => d.manager(2), { code: 'E_USAGE', message: /manager\(2\).*0\.\.1/ })
    t.throws(() => d.manager(-1), { code: 'E_USAGE' })
    await d.clear()
  })

  t.test('whichManager: the shard a key goes to, as the pinned handles see it', async (t) => {
    for (const key of ['a', 'b', 'c', 1, 2, 3, 'a long key'] as const) {
      const m = d.whichManager(key)
      t.ok(m === 0 || m === 1)
      await d.set(key, 'v')
      t.equal(await d.manager(m).get(key), 'v', `${String(key)} is on shard ${m}`)
    }
    t.equal(d.manager(1).whichManager('a'), 1, 'a pinned handle sends every key to its shard')
    await d.clear()
  })

  t.test('fetchAdd: 0 first, then the value before each add; negative adds; a counter put with set', async (t) => {
    t.equal(await d.fetchAdd('hello'), 0)
    t.equal(await d.fetchAdd('hello'), 1)
    t.equal(await d.fetchAdd('hello', 5), 2)
    t.equal(await d.fetchAdd('hello', -3), 7)
    t.equal(await d.fetchAdd('hello', 0), 4)
    t.equal(await d.get('hello'), 4, 'a counter reads back as a number')
    await d.set('init', 40)
    t.equal(await d.fetchAdd('init', 2), 40, 'a safe integer put with set is a counter (Dragon needs XPickler for that)')
    t.equal(await d.fetchAdd('init', 3), 42)
    await d.set('text', 'forty')
    await t.rejects(d.fetchAdd('text', 1), { code: 'E_USAGE', message: /text/ })
    await d.set('float', 1.5)
    await t.rejects(d.fetchAdd('float', 1), { code: 'E_USAGE', message: /float/ })
    await d.clear()
  })

  t.test('waitFor a key already there returns at once; one written later wakes it', async (t) => {
    await d.set('hello', 'there')
    t.equal(await d.waitFor('hello'), 'there')
    const later = d.waitFor('later', { timeoutMs: 20_000 })
    await d.set('later', 'now')
    t.equal(await later, 'now')
    await t.rejects(d.waitFor('never', { timeoutMs: 200 }), { code: 'E_DDICT_TIMEOUT', message: /never/ })
    await d.clear()
  })

  t.test('a DDict attached from its descriptor sees the same data (Dragon serialize/attach)', async (t) => {
    await d.set('shared', 'yes')
    const other = DDict.attach(JSON.parse(JSON.stringify(d.descriptor())))
    t.teardown(() => other.detach())
    t.equal(await other.get('shared'), 'yes')
    await other.set('back', 1)
    t.equal(await d.get('back'), 1)
    await other.detach()
    t.equal(await d.get('shared'), 'yes', 'detaching one handle leaves the others working')
    await t.rejects(other.get('shared'), { code: 'E_USAGE', message: /detached/ })
    await d.clear()
  })
})
