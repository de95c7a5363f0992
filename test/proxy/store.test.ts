import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ErrorCode, ObjectNotFound } from 'tsflow'
import { FileConnector, getStore, LocalConnector, registerSerializer, Store, type Connector, type StoreConfig, type StoreOptions } from 'tsflow/proxy'

let n = 0
const open = (t: Test, connector: Connector = new LocalConnector(), options: StoreOptions = {}) => {
  const store = new Store(`store-test-${process.pid}-${n++}`, connector, options)
  t.teardown(() => store.close())
  return store
}

t.test('put, get, exists, evict with the default msgpack serializer', async (t) => {
  const store = open(t)
  const value = { name: 'x', data: new Float64Array([1.5, 2.5]), tags: new Set(['a']), at: new Date(0) }
  const key = await store.put(value)
  t.ok(await store.exists(key))
  const back = await store.get<typeof value>(key)
  t.same(back, value, 'structured values round-trip')
  t.ok(back.data instanceof Float64Array && back.tags instanceof Set && back.at instanceof Date, 'with their types')
  await store.evict(key)
  t.notOk(await store.exists(key))
  await t.rejects(store.get(key), { code: ErrorCode.OBJECT_NOT_FOUND }, 'an evicted key is not found')
  t.equal((store.connector as LocalConnector).size, 0, 'nothing left behind')
})

t.test('the LRU cache answers repeated gets and drops the least recently used', async (t) => {
  const store = open(t, new LocalConnector(), { cacheSize: 2 })
  const [a, b, c] = await store.putBatch(['a', 'b', 'c'])
  t.same(await store.getBatch([a!, b!]), ['a', 'b'])
  t.ok(store.isCached(a!) && store.isCached(b!))
  await store.get(a!) // a is now the most recent
  await store.get(c!)
  t.ok(store.isCached(a!), 'a was used last, it stays')
  t.notOk(store.isCached(b!), 'b was least recently used, it went')
  t.ok(store.isCached(c!))
  // The cache really answers: remove the bytes behind the store's back.
  await store.connector.evict(a!)
  t.equal(await store.get(a!), 'a', 'cached value returned without the connector')
  await store.evict(a!)
  t.notOk(store.isCached(a!), 'evict clears the cache too')
  await t.rejects(store.get(a!), ObjectNotFound)

  const uncached = open(t, new LocalConnector(), { cacheSize: 0 })
  const key = await uncached.put(1)
  await uncached.get(key)
  t.notOk(uncached.isCached(key), 'cacheSize 0 caches nothing')
})

t.test('serializers: bytes, custom, per-put, and errors', async (t) => {
  const raw = open(t, new LocalConnector(), { serializer: 'bytes' })
  const key = await raw.put(Buffer.from('hello'))
  t.equal(Buffer.from(await raw.get<Uint8Array>(key)).toString(), 'hello')
  await t.rejects(raw.put('text'), { code: ErrorCode.SERIALIZATION })

  registerSerializer('test-json', {
    encode: (value) => Buffer.from(JSON.stringify(value)),
    decode: (bytes) => JSON.parse(Buffer.from(bytes).toString()),
  })
  const store = open(t)
  const jsonKey = await store.put({ a: 1 }, { serializer: 'test-json' })
  t.equal(Buffer.from(await store.connector.get(jsonKey)).toString(), '{"a":1}', 'the named serializer wrote the bytes')
  t.same(await store.get(jsonKey, { serializer: 'test-json' }), { a: 1 })
  await t.rejects(store.put(1, { serializer: 'nope' }), { code: ErrorCode.USAGE, message: /no serializer named 'nope'/ })
  t.throws(() => new Store('bad-serializer', new LocalConnector(), { serializer: 'nope' }), {
    code: ErrorCode.CONFIG,
    message: /store\.serializer.*'msgpack'/,
  })
  t.throws(() => new Store('bad-option', new LocalConnector(), { cacheSzie: 3 } as never), { message: /did you mean 'cacheSize'/ })
  await t.rejects(store.put(() => 1), { code: ErrorCode.SERIALIZATION }, 'values the codec refuses are refused at put')
})

t.test('registry and toConfig / fromConfig', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = open(t, new FileConnector({ directory: dir }), { cacheSize: 3 })
  t.equal(getStore(store.name), store, 'a new store is registered')
  t.throws(() => new Store(store.name, new LocalConnector()), { code: ErrorCode.USAGE, message: new RegExp(`'${store.name}' is already registered`) })
  const config = JSON.parse(JSON.stringify(store.toConfig())) as StoreConfig
  t.same(config, { name: store.name, connector: { type: 'file', directory: dir }, cacheSize: 3, serializer: 'msgpack' })
  t.equal(Store.fromConfig(config), store, 'fromConfig finds the registered store')

  const key = await store.put([1, 2, 3])
  await store.close()
  t.equal(getStore(config.name), undefined, 'close leaves the registry')
  await t.rejects(store.get(key), { code: ErrorCode.USAGE, message: /closed/ })
  // As in a worker: no store of that name yet, so one is built from the config.
  const rebuilt = Store.fromConfig(config)
  t.teardown(() => rebuilt.close())
  t.not(rebuilt, store)
  t.equal(getStore(config.name), rebuilt)
  t.same(await rebuilt.get(key), [1, 2, 3], 'the rebuilt store reads the object')
  await rebuilt.evict(key)

  const unregistered = new Store(`unregistered-${process.pid}`, { type: 'local' }, { register: false })
  t.teardown(() => unregistered.close())
  t.equal(getStore(unregistered.name), undefined, 'register: false stays out of the registry')
  t.throws(() => new Store('', new LocalConnector()), { code: ErrorCode.CONFIG, message: /store\.name/ })
})
