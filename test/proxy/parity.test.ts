// What a ProxyStore user (or a test ported from ProxyStore's suite) expects of tsflow/proxy:
// docs/proxy.md, "Coming from ProxyStore". Each block names the ProxyStore behaviour it mirrors.
import { inspect } from 'node:util'
import t, { type Test } from 'tap'
import { ErrorCode, NotProxiable, UsageError } from 'tsflow'
import {
  ContextLifetime,
  dispose,
  extract,
  factoryOf,
  getKey,
  getOrCreateStore,
  getStore,
  getStoreOf,
  isProxiable,
  isProxy,
  isResolved,
  LocalConnector,
  lockedProxy,
  ProxyLocker,
  registerSerializer,
  registerStore,
  resolve,
  resolveAsync,
  Store,
  StoreMetrics,
  storeRegistration,
  unregisterStore,
  update,
  type ObjectKey,
  type StoreOptions,
} from 'tsflow/proxy'
import { decode, encode } from '../../dist/serialize/codec.js'
import { decodeError, encodeError } from '../../dist/serialize/errors.js'
import { waitFor } from '../helpers/wait.js'

let n = 0
const unique = (what: string) => `parity-${what}-${process.pid}-${n++}`
const open = (t: Test, options: StoreOptions = {}, connector = new LocalConnector()) => {
  const store = new Store(unique('store'), connector, options)
  t.teardown(() => store.close())
  return store
}

t.test('non-proxiable values: null, undefined, booleans, proxies; skipNonProxiable passes them through', async (t) => {
  const store = open(t)
  const p = await store.proxy('value')
  for (const value of [null, undefined, true, false, p]) {
    t.notOk(isProxiable(value), `${String(value)} is not proxiable`)
    await t.rejects(store.proxy(value), NotProxiable)
    await t.rejects(store.proxy(value, { skipNonProxiable: false }), { code: ErrorCode.USAGE, notProxiable: true })
    t.equal(await store.proxy(value, { skipNonProxiable: true }), value, `${String(value)} comes back as it is`)
    t.equal(await store.owned(value, { skipNonProxiable: true }), value, 'owned too')
  }
  await t.rejects(store.proxy(false), { message: /always be truthy/ }, 'the message says why a boolean is refused')
  const refused = await store.proxy(null).catch((error: unknown) => error)
  t.ok(refused instanceof UsageError, 'NotProxiable is a kind of UsageError (E_USAGE, as this refusal always was)')
  t.notOk(new UsageError('other') instanceof NotProxiable, 'other usage errors are not NotProxiable')
  t.ok(decodeError(decode(encode(encodeError(refused)))) instanceof NotProxiable, 'and it stays one across the wire')
  t.ok(isProxiable(0) && isProxiable('') && isProxiable([]), 'falsy values that are not booleans are proxiable')

  const mixed = [null, 'string', false, true, [1, 2, 3], 'string'] as const
  const out = await store.proxyBatch<unknown>([...mixed], { skipNonProxiable: true })
  t.same(
    out.map((v) => isProxy(v)),
    [false, true, false, false, true, true],
    'proxyBatch proxies the proxiable ones in place',
  )
  t.equal(out[0], null)
  t.equal(out[2], false)
  t.same(await extract(out[4]), [1, 2, 3])
  t.equal(String(out[5]), 'string')
  t.equal(store.connector instanceof LocalConnector && store.connector.size, 4, 'only the proxiable ones (and the first proxy) were stored')
  await t.rejects(store.proxyBatch<unknown>(['string', null, 'string']), NotProxiable, 'one bad value fails the batch')
})

t.test('populateTarget: a new proxy starts resolved with the value given; the store sets the default', async (t) => {
  const connector = new LocalConnector()
  const store = open(t, {}, connector)
  t.notOk(isResolved(await store.proxy('value')), 'off by default')
  const value = [1, 2, 3]
  const p = await store.proxy(value, { populateTarget: true })
  t.ok(isResolved(p), 'resolved when made')
  t.equal(await extract(p), value, 'the target is the value given, not a copy')
  const copy = decode(encode(p)) as number[]
  t.ok(Array.isArray(copy), 'a copy is an array-like proxy too')
  t.notOk(isResolved(copy), 'a copy that travels is unresolved: only the factory went')
  t.same([...copy], [1, 2, 3])

  const populating = open(t, { populateTarget: true }, connector)
  t.ok(isResolved(await populating.proxy('value')))
  t.notOk(isResolved(await populating.proxy('value', { populateTarget: false })), 'per proxy overrides the store')
  const batch = await populating.proxyBatch(['a', 'b'])
  t.ok(batch.every((b) => isResolved(b)), 'proxyBatch too')
  t.equal(populating.toConfig().populateTarget, true, 'the default travels in the config')
  const owned = await store.owned('mine', { populateTarget: true })
  t.ok(isResolved(owned), 'owned proxies too')
  t.equal(`${owned}`, 'mine')
  const lazy = await store.owned('mine')
  t.notOk(isResolved(lazy))
  const byDefault = await populating.owned('mine')
  t.ok(isResolved(byDefault), "with the store's default")
  await Promise.all([owned, lazy, byDefault].map((o) => dispose(o)))
  t.equal(store.toConfig().populateTarget, undefined, 'and is absent when off')
  t.throws(() => new Store(unique('bad'), new LocalConnector(), { populateTarget: 'yes' as never }), { code: ErrorCode.CONFIG, message: /store\.populateTarget/ })
})

t.test('getKey, getStore(proxy), getStoreOf: a proxy names its key and its store', async (t) => {
  const store = open(t)
  const key = await store.put('value')
  const p = store.proxyFromKey<string>(key)
  t.same(getKey(p), key)
  t.equal(getStore(p), store, 'getStore accepts a proxy')
  t.equal(getStoreOf(p), store)
  t.throws(() => getKey({}), { code: ErrorCode.USAGE })
  t.throws(() => getStore({}), { code: ErrorCode.USAGE, message: /getStore\(\) takes a store name or a proxy/ })

  // A proxy whose store is not registered here rebuilds it from its config (as in a worker).
  const local = new LocalConnector()
  const other = new Store(unique('other'), local, { register: false, cacheSize: 0 })
  t.teardown(() => other.close())
  const q = await other.proxy([1, 2, 3])
  t.equal(getStore(other.name), undefined)
  const rebuilt = getStoreOf(q)
  t.teardown(() => rebuilt.close())
  t.not(rebuilt, other)
  t.equal(getStore(other.name), rebuilt, 'registered once rebuilt')
  t.equal(rebuilt.cacheSize, 0, 'with the options of the store that made the proxy')
  t.same(await extract(q), [1, 2, 3])
  t.notOk(rebuilt.isCached(getKey(q)))
})

t.test('registry: unregisterStore by store or name, getOrCreateStore, storeRegistration scopes', async (t) => {
  const a = new Store(unique('a'), new LocalConnector(), { register: false })
  const b = new Store(unique('b'), new LocalConnector(), { register: false })
  t.teardown(() => Promise.all([a.close(), b.close()]))
  registerStore(a)
  t.equal(getStore(a.name), a)
  unregisterStore(a)
  t.equal(getStore(a.name), undefined, 'by the store itself')
  unregisterStore('not a store name')

  const created = getOrCreateStore(a.toConfig())
  t.teardown(() => created.close())
  t.not(created, a)
  t.equal(getStore(a.name), created, 'registered')
  t.equal(getOrCreateStore(a.toConfig()), created, 'found the second time')
  unregisterStore(created)
  const loose = getOrCreateStore(b.toConfig(), { register: false })
  t.teardown(() => loose.close())
  t.equal(getStore(b.name), undefined, 'register: false')

  {
    using _ = storeRegistration(a, b)
    t.equal(getStore(a.name), a)
    t.equal(getStore(b.name), b)
    const impostor = new Store(a.name, new LocalConnector(), { register: false })
    t.teardown(() => impostor.close())
    t.throws(() => storeRegistration(impostor), { code: ErrorCode.USAGE, message: /already registered/ })
    t.equal(getStore(a.name), a, 'a refused registration changes nothing')
  }
  t.equal(getStore(a.name), undefined, 'the scope unregistered them')
  t.equal(getStore(b.name), undefined)
})

t.test('store.close({ clear }) evicts what the store put; close() alone keeps it; `await using` closes', async (t) => {
  const connector = new LocalConnector()
  const keeper = new Store(unique('keep'), new LocalConnector({ name: connector.name }))
  const key = await keeper.put('kept')
  await keeper.close()
  t.equal(connector.size, 1, 'close() leaves objects')

  const store = new Store(unique('clear'), connector)
  await store.put('a')
  await store.putBatch(['b', 'c'])
  const p = await store.proxy('d')
  const gone = await store.put('e')
  await store.evict(gone)
  const future = store.future<string>()
  await future.setResult('f')
  t.equal(connector.size, 6)
  await store.close({ clear: true })
  t.equal(connector.size, 1, 'everything this store put went; the other store object stayed')
  t.ok(await connector.exists(key))
  t.equal(getStore(store.name), undefined)
  t.ok(isProxy(p))

  const rebuilt = Store.fromConfig({ ...keeper.toConfig(), name: unique('rebuilt') })
  await t.rejects(rebuilt.close({ clear: true }), { code: ErrorCode.USAGE, message: /rebuilt from its config/ }, 'a rebuilt store does not track what it put')
  await rebuilt.close()

  let name = ''
  {
    await using scoped = new Store(unique('scoped'), new LocalConnector())
    name = scoped.name
    t.equal(getStore(name), scoped)
  }
  t.equal(getStore(name), undefined, 'closed at the end of the scope')
  await connector.evict(key)
})

t.test('resolveAsync starts the fetch; the proxy is then resolved without a sync read', async (t) => {
  const store = open(t)
  const p = await store.proxy({ value: 1 })
  t.notOk(isResolved(p))
  resolveAsync(p)
  await waitFor(() => isResolved(p), 'the background resolve')
  t.equal(p.value, 1)
  resolveAsync(p)
  t.ok(isResolved(p), 'a no-op once resolved')
  t.throws(() => resolveAsync('nope'), { code: ErrorCode.USAGE })

  // A sync use while the background fetch runs resolves it first; that target stays.
  const uncached = open(t, { cacheSize: 0 })
  const q = await uncached.proxy({ count: 0 })
  resolveAsync(q)
  q.count = 1
  // The local connector's read needs no I/O: one turn of the event loop lets the fetch land.
  await new Promise((done) => setImmediate(done))
  t.equal(q.count, 1, 'the write made through the first target is not lost when the fetch lands')

  const missing = await store.proxy('gone')
  await store.evict(getKey(missing))
  resolveAsync(missing)
  await t.rejects(resolve(missing), { code: ErrorCode.PROXY_RESOLVE }, 'a failure surfaces at the next use, not as an unhandled rejection')
})

t.test('ProxyLocker / lockedProxy: nothing resolves it until unlock; it travels locked', async (t) => {
  const connector = new LocalConnector()
  const store = open(t, {}, connector)
  const locker = (await store.lockedProxy([1, 2, 3])) as ProxyLocker<number[]>
  t.ok(locker instanceof ProxyLocker)
  t.same(Object.keys(locker), [], 'a walk over the locker finds nothing to touch')
  t.notOk(isResolved(locker.unlock()))
  const moved = decode(encode({ arg: locker })) as { arg: ProxyLocker<number[]> }
  t.notOk(isResolved(locker.unlock()), 'encoding did not resolve the proxy here')
  const plain = await store.proxy({ a: 1 })
  encode([plain])
  t.notOk(isResolved(plain), 'nor does encoding a plain proxy (the locker class is asked of it too)')
  t.ok(moved.arg instanceof ProxyLocker, 'decoded as a locker')
  t.notOk(isResolved(moved.arg.unlock()), 'of an unresolved proxy')
  t.same([...moved.arg.unlock()], [1, 2, 3])
  t.equal(await lockedProxy(store, null, { skipNonProxiable: true }), null)
  await t.rejects(lockedProxy(store, null), NotProxiable)
  t.throws(() => new ProxyLocker([1]), { code: ErrorCode.USAGE })
  await using lifetime = new ContextLifetime(store)
  const inLifetime = (await store.lockedProxy('v', { lifetime })) as ProxyLocker<string>
  await lifetime.close()
  t.notOk(await store.exists(getKey(inLifetime.unlock())), 'lifetime applies to locked proxies too')
})

t.test('a proxy looks like its target: Array.isArray, JSON, ==, template strings, numbers, inspect', async (t) => {
  const store = open(t)
  const list = await store.proxy([1, 2, 3])
  t.ok(Array.isArray(list), 'Array.isArray is true for a proxy of an array')
  t.notOk(isResolved(list), '... without resolving it')
  t.equal(list.length, 3)
  t.same(Object.getOwnPropertyNames(list).sort(), ['0', '1', '2', 'length'])
  t.same(list.concat([4]), [1, 2, 3, 4])
  t.same([0].concat(list), [0, 1, 2, 3], 'concat spreads it as an array')
  t.equal(JSON.stringify(list), '[1,2,3]')
  t.same(list.map((x) => x * 2), [2, 4, 6])
  t.same([...list].reverse(), [3, 2, 1])
  t.ok(list.includes(2) && !list.includes(-2), 'contains')
  list[1] = -1
  t.equal(list[1], -1, 'setitem')
  list.splice(1, 1)
  t.same([...list], [1, 3], 'delitem')
  t.notOk(Array.isArray(await store.proxy({ a: 1 })), 'not for other objects')
  const owned = await store.owned<unknown>([4, 5])
  t.ok(Array.isArray(owned), 'owned proxies too')
  await update(owned, { a: 1 })
  t.same(Object.keys(owned), ['a'], 'updated to an object, it still answers (the stand-in keeps its length)')
  t.same({ ...(owned as object) }, { a: 1 })
  t.ok('a' in (owned as object) && delete (owned as { a?: number }).a)
  t.same(Object.getOwnPropertyNames(owned), ['length'])
  await dispose(owned)

  const text = await store.proxy('value')
  t.ok(text == 'value', 'loose equality with a primitive target') // eslint-disable-line eqeqeq
  t.equal(`${text}!`, 'value!')
  t.equal(text.toUpperCase(), 'VALUE')
  t.equal(text.length, 5)
  t.equal(JSON.stringify(text), '"value"', 'JSON of a primitive target is the primitive')
  const num = await store.proxy(41)
  t.equal(JSON.stringify({ num }), '{"num":41}')
  t.equal((num as unknown as number) + 1, 42)
  t.equal((num as unknown as number) * 2, 82)
  t.ok((num as unknown as number) > 40)
  t.equal(num.toFixed(1), '41.0')
  t.equal(Number(num), 41)
  const date = await store.proxy(new Date(0))
  t.equal(date.getTime(), 0)
  t.ok(date instanceof Date, 'instanceof')
  t.equal(JSON.stringify(date), '"1970-01-01T00:00:00.000Z"')

  const unresolved = await store.proxy({ a: 1 })
  t.match(inspect(unresolved), /Proxy unresolved: store 'parity-store-\d+-\d+', key/, 'printing an unresolved proxy does not fetch it')
  t.notOk(isResolved(unresolved))
  await resolve(unresolved)
  t.equal(inspect(unresolved), inspect({ a: 1 }), 'a resolved one prints as its target')
})

t.test('metrics: per-key operation times, cache hits and misses, sizes; by key, proxy or batch', async (t) => {
  t.equal(open(t).metrics, undefined, 'off by default')
  const store = open(t, { metrics: true })
  const metrics = store.metrics!
  t.ok(metrics instanceof StoreMetrics)
  t.equal(store.toConfig().metrics, true, 'travels in the config')
  const key = await store.put('value')
  t.ok(await store.exists(key))
  t.equal(await store.get(key), 'value')
  t.equal(await store.get(key), 'value')
  t.ok(await store.exists(key))
  await store.set(key, 'value')
  await store.evict(key)
  const m = metrics.getMetrics(key)!
  t.equal(m.counters['store.get.cacheHits'], 1)
  t.equal(m.counters['store.get.cacheMisses'], 1)
  t.equal(m.attributes['store.get.objectSize'], encode('value').byteLength)
  t.equal(m.times['store.get']!.count, 2)
  t.equal(m.times['store.get.connector']!.count, 1, 'only the miss read the connector')
  t.equal(m.times['store.get.deserialize']!.count, 1)
  t.equal(m.times['store.put']!.count, 1)
  t.equal(m.times['store.put.serialize']!.count, 1)
  t.equal(m.times['store.put.connector']!.count, 1)
  t.equal(m.attributes['store.put.objectSize'], encode('value').byteLength)
  t.equal(m.times['store.set']!.count, 1)
  t.equal(m.times['store.set.connector']!.count, 1)
  t.equal(m.attributes['store.set.objectSize'], encode('value').byteLength)
  t.equal(m.times['store.exists']!.count, 2)
  t.equal(m.times['store.evict']!.count, 1)
  const stats = m.times['store.get']!
  t.ok(stats.minMs <= stats.avgMs && stats.avgMs <= stats.maxMs && stats.totalMs >= 0)

  const p = await store.proxy('value')
  t.equal(`${p}`, 'value')
  const pm = metrics.getMetrics(p)!
  t.equal(pm.times['store.proxy']!.count, 1, 'by proxy')
  t.equal(pm.times['proxy.resolve']!.count, 1)
  t.equal(pm.times['store.get']!.count, 1)

  const values = ['value1', 'value2', 'value3']
  const keys = await store.putBatch(values)
  t.equal(metrics.getMetrics(keys)!.times['store.putBatch']!.count, 1, 'a batch by its keys')
  t.equal(metrics.getMetrics(keys)!.times['store.putBatch.serialize']!.count, 1)
  t.equal(metrics.getMetrics(keys)!.attributes['store.putBatch.objectSize'], values.reduce((sum, v) => sum + encode(v).byteLength, 0))
  const proxies = await store.proxyBatch(values)
  t.equal(metrics.getMetrics(proxies)!.times['store.proxyBatch']!.count, 1, 'or by its proxies')
  for (const proxy of proxies) await resolve(proxy)
  t.ok(proxies.every((proxy) => metrics.getMetrics(proxy)!.times['proxy.resolve']!.count === 1))
  t.equal(metrics.getMetrics({ id: 'never-used' }), undefined)
  t.equal(metrics.aggregateTimes()['store.put']!.count, 2, 'aggregated over keys')
  t.ok(metrics.aggregateTimes()['proxy.resolve']!.count >= 4)
  t.throws(() => new Store(unique('bad'), new LocalConnector(), { metrics: 1 as never }), { code: ErrorCode.CONFIG, message: /store\.metrics/ })
})

t.test('proxyFromKey: a lifetime given takes the object on; options are checked as for a new store', async (t) => {
  const store = open(t)
  const key = await store.put('value')
  const lifetime = new ContextLifetime(store)
  const p = store.proxyFromKey<string>(key, { lifetime })
  t.equal(`${p}`, 'value')
  await lifetime.close()
  t.notOk(await store.exists(key), 'evicted when the lifetime ended')
  t.throws(() => store.proxyFromKey(key, { lifetime }), { code: ErrorCode.LIFETIME_ENDED })
  t.throws(() => new Store(unique('neg'), new LocalConnector(), { cacheSize: -1 }), { code: ErrorCode.CONFIG, message: /store\.cacheSize/ })
  const none = open(t, { cacheSize: 0 })
  const k = await none.put('v')
  t.equal(await none.get(k), 'v')
  t.notOk(none.isCached(k), 'cacheSize 0 caches nothing')
})

t.test('get with a default for a missing key; a custom serializer that breaks is named', async (t) => {
  const store = open(t)
  const key = await store.put('value')
  await store.evict(key)
  await t.rejects(store.get(key), { code: ErrorCode.OBJECT_NOT_FOUND }, 'without a default: ObjectNotFound')
  t.equal(await store.get(key, { default: 'alt' }), 'alt')
  t.equal(await store.get(key, { default: undefined }), undefined, 'undefined is a default too')
  t.equal(await store.exists(key), false)

  registerSerializer('parity-identity', { encode: (value) => value as Uint8Array, decode: (bytes) => bytes })
  const raw = new Uint8Array([65, 66, 67])
  const rawKey = await store.put(raw, { serializer: 'parity-identity' })
  t.same(await store.get(rawKey, { serializer: 'parity-identity' }), raw)
  await t.rejects(store.put([1, 2, 3], { serializer: 'parity-identity' }), { code: ErrorCode.SERIALIZATION, message: /'parity-identity' must encode to a Uint8Array/ })
  await t.rejects(store.putBatch([[1, 2, 3]], { serializer: 'parity-identity' }), { code: ErrorCode.SERIALIZATION })
  registerSerializer('parity-broken', {
    encode: (value) => encode(value),
    decode: () => {
      throw new Error('bad bytes')
    },
  })
  const bad = await store.put('value', { serializer: 'parity-broken' })
  await t.rejects(store.get(bad, { serializer: 'parity-broken' }), { code: ErrorCode.SERIALIZATION, message: /'parity-broken' could not decode.*bad bytes/ })
})

t.test('future polling options: checked, carried by the proxies, and used', async (t) => {
  // Counts reads, so the poll schedule shows without timing anything.
  class CountingConnector extends LocalConnector {
    gets = 0
    override async get(key: ObjectKey): Promise<Uint8Array> {
      this.gets++
      return super.get(key)
    }
  }
  const connector = new CountingConnector()
  const store = open(t, {}, connector)
  t.equal(factoryOf(store.future().proxy()).poll, undefined, 'the default is not sent')
  const future = store.future<string>({ pollMs: 200, pollBackoff: 1, timeoutMs: 250 })
  t.same(factoryOf(future.proxy()).poll, { ms: 200, backoff: 1, maxMs: 200 })
  await t.rejects(future.result(), { code: ErrorCode.PROXY_FUTURE_TIMEOUT })
  // Reads at 0, >=200, at the deadline, and once more if a timer fired a hair early by
  // Date.now(): at most 4. The default schedule (5 ms doubling) reads 7 times in 250 ms.
  t.ok(connector.gets >= 2 && connector.gets <= 4, `4 reads at most with a 200 ms interval (got ${connector.gets})`)

  const waiting = store.future<string>({ pollMs: 1, pollBackoff: 1.5, pollMaxMs: 10 })
  const result = waiting.result()
  const proxy = waiting.proxy()
  await waiting.setResult('ready')
  t.equal(await result, 'ready')
  t.equal(await extract(proxy), 'ready')
  t.throws(() => store.future({ pollMs: 0 }), { code: ErrorCode.CONFIG, message: /future\.pollMs/ })
  t.throws(() => store.future({ pollBackoff: 0.5 }), { code: ErrorCode.CONFIG, message: /future\.pollBackoff/ })
  t.throws(() => store.future({ pollMs: 50, pollMaxMs: 10 }), { code: ErrorCode.CONFIG, message: /future\.pollMaxMs/ })
})

t.test('numeric and string targets take part in operators through Symbol.toPrimitive', async (t) => {
  const store = open(t)
  const n = (await store.proxy(6)) as unknown as number
  t.same([n - 1, n * 2, n / 4, n % 4, n ** 2, -n, +n, ~n, n | 1, n & 3, n << 1], [5, 12, 1.5, 2, 36, -6, 6, -7, 7, 2, 12])
  t.ok(n > 5 && n < 7 && n >= 6 && n <= 6, 'comparisons')
  t.equal(Math.max(n, 1), 6)
  t.same([10, 20, 30, 40, 50, 60, 70][n], 70, 'as an index')
  const big = (await store.proxy(2n ** 70n)) as unknown as bigint
  t.equal(big + 1n, 2n ** 70n + 1n, 'bigint targets too')
  const s = await store.proxy('a,b,c')
  t.same(s.split(','), ['a', 'b', 'c'])
  t.equal(s + '!', 'a,b,c!')
  t.ok(s > 'a' && s < 'b')
  t.same([...s].length, 5, 'iteration of a string target')
  t.equal(Object.prototype.toString.call(await store.proxy(new Map())), '[object Map]')
  t.equal(Object.prototype.toString.call(await store.proxy([1])), '[object Array]')
})

t.test('lifetime.addKey takes several keys, as add_key(*keys) does; the store may come last', async (t) => {
  const store = open(t)
  const other = open(t)
  const [k1, k2, k3] = await store.putBatch(['a', 'b', 'c'])
  const k4 = await other.put('d')
  const lifetime = new ContextLifetime(store)
  lifetime.addKey(k1!, k2!)
  lifetime.addKey(k3!, store)
  lifetime.addKey(k4, other)
  t.throws(() => lifetime.addKey('nope' as never), { code: ErrorCode.USAGE, message: /takes object keys/ })
  await lifetime.close()
  for (const key of [k1!, k2!, k3!]) t.notOk(await store.exists(key))
  t.notOk(await other.exists(k4), 'a key of another store, named last')
})
