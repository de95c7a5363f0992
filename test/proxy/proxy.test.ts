import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { waitFor } from '../helpers/wait.js'
import { ErrorCode, ObjectNotFound, ProxyResolveError } from 'tsflow'
import {
  extract,
  factoryOf,
  FileConnector,
  isProxy,
  isResolved,
  LocalConnector,
  resolve,
  Store,
  type Connector,
  type ConnectorConfig,
  type ObjectKey,
} from 'tsflow/proxy'

let n = 0
const open = (t: Test, connector: Connector = new LocalConnector(), options = {}) => {
  const store = new Store(`proxy-test-${process.pid}-${n++}`, connector, options)
  t.teardown(() => store.close())
  return store
}

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
}

t.test('a proxy behaves like its target and resolves on first use', async (t) => {
  const store = open(t)
  const p = await store.proxy({ name: 'run', values: [1, 2, 3], nested: { deep: true } })
  t.ok(isProxy(p))
  t.notOk(isResolved(p), 'not resolved when made')
  t.equal(p.name, 'run', 'property access resolves it')
  t.ok(isResolved(p))
  t.same(p.values, [1, 2, 3])
  t.same(Object.keys(p), ['name', 'values', 'nested'], 'own keys')
  t.ok('nested' in p, 'in')
  t.same({ ...p }, { name: 'run', values: [1, 2, 3], nested: { deep: true } }, 'spread')
  t.equal(JSON.stringify(p), '{"name":"run","values":[1,2,3],"nested":{"deep":true}}', 'JSON')
  p.name = 'changed'
  t.equal(p.name, 'changed', 'writes go to the target')
  t.notOk(isProxy({}), 'a plain object is not a proxy')
})

t.test('methods of built-ins work through the proxy: Map, Set, typed arrays, iteration', async (t) => {
  const store = open(t)
  const map = await store.proxy(new Map([['a', 1]]))
  t.equal(map.get('a'), 1)
  t.equal(map.size, 1)
  t.same([...map], [['a', 1]], 'iteration')
  t.ok(map instanceof Map, 'instanceof')
  const set = await store.proxy(new Set([1, 2]))
  t.ok(set.has(2))
  const array = await store.proxy(new Float64Array([1, 2, 3]))
  t.equal(array.length, 3)
  t.equal(array.reduce((a, b) => a + b, 0), 6)
  const list = await store.proxy([3, 1, 2])
  t.same([...list].sort(), [1, 2, 3])
  t.equal(list.length, 3)
  const point = await store.proxy(new Point(1, 2))
  t.equal(point.x + point.y, 3)
  const count = await store.proxy(41)
  t.equal((count as unknown as number) + 1, 42, 'a primitive target converts through Symbol.toPrimitive')
})

t.test('await, resolve and extract', async (t) => {
  const store = open(t)
  const p = await store.proxy({ a: 1 })
  const awaited = await p
  t.equal(awaited, p, 'awaiting a proxy gives the proxy (it is not a thenable)')
  t.notOk(isResolved(p), 'and does not resolve it')
  t.equal(p.a, 1)
  const q = await store.proxy([1])
  await resolve(q)
  t.ok(isResolved(q), 'resolve fetches it')
  const target = await extract(q)
  t.notOk(isProxy(target))
  t.same(target, [1])
  await t.rejects(resolve({}), { code: ErrorCode.USAGE, message: /takes a proxy/ })
  t.same(factoryOf(p).key, factoryOf(p).key)
  t.equal(factoryOf(p).store.name, store.name, 'the factory names its store')
})

t.test('evict on resolve removes the object after the first resolve', async (t) => {
  const connector = new LocalConnector()
  const store = open(t, connector)
  const once = await store.proxy({ big: 'data' }, { evict: true })
  t.equal(connector.size, 1)
  t.equal(once.big, 'data')
  await waitFor(() => connector.size === 0, 'the evict after a sync resolve')
  const awaited = await store.proxy([1], { evict: true })
  await resolve(awaited)
  t.equal(connector.size, 0, 'an async resolve evicts before it returns')
  const kept = await store.proxy([2])
  await resolve(kept)
  t.equal(connector.size, 1, 'without evict the object stays')
})

t.test('a proxy made in one place resolves from its factory alone (as in a worker)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-proxy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = open(t, new FileConnector({ directory: dir }))
  const p = await store.proxy({ from: 'file' })
  const factory = JSON.parse(JSON.stringify(factoryOf(p)))
  await store.close() // the worker has no such store registered yet
  const other = new Store('elsewhere', { type: 'local' }, { register: false })
  t.teardown(() => other.close())
  const copy = other.proxyFromKey<{ from: string }>(factory.key as ObjectKey)
  await t.rejects(extract(copy), ProxyResolveError, 'the wrong store does not have it')
  const again = (await import('../../dist/proxy/proxy.js')).proxyOf<{ from: string }>(factory)
  t.equal(again.from, 'file', 'the factory rebuilt the file store and read the object')
})

t.test('resolve errors name store and key, wrap the connector error as cause', async (t) => {
  const store = open(t)
  const p = await store.proxy({ a: 1 })
  await store.evict(factoryOf(p).key)
  const error = await extract(p).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(error instanceof ProxyResolveError)
  t.equal((error as ProxyResolveError).code, ErrorCode.PROXY_RESOLVE)
  t.match((error as Error).message, store.name)
  t.match((error as Error).message, factoryOf(p).key.id)
  t.ok((error as Error).cause instanceof ObjectNotFound, 'cause is the connector error')
  t.notOk(isResolved(p))
  t.throws(() => p.a, ProxyResolveError, 'a sync use fails the same way')
})

t.test('connectors without a sync read: sync use says to await, await works', async (t) => {
  const local = new LocalConnector()
  // A connector like a network one: only async reads.
  const asyncOnly: Connector = {
    type: 'local',
    label: 'async-only',
    put: (b, k) => local.put(b, k),
    get: (k) => local.get(k),
    exists: (k) => local.exists(k),
    evict: (k) => local.evict(k),
    putBatch: (v) => local.putBatch(v),
    getBatch: (k) => local.getBatch(k),
    newKey: () => local.newKey(),
    close: async () => {},
    toConfig: (): ConnectorConfig => local.toConfig(),
  }
  const store = open(t, asyncOnly, { cacheSize: 0 })
  // The registered store (not a rebuilt one) answers, so its connector is the async-only one.
  const p = await store.proxy({ a: 1 })
  t.throws(() => p.a, { code: ErrorCode.PROXY_RESOLVE, message: /cannot be read synchronously; await/ })
  await resolve(p)
  t.equal(p.a, 1, 'resolved: sync use works')
})

t.test('values that cannot be proxied are refused when the proxy is made', async (t) => {
  const store = open(t)
  await t.rejects(store.proxy(null), { code: ErrorCode.USAGE, message: /cannot proxy null/ })
  await t.rejects(store.proxy(undefined), { code: ErrorCode.USAGE })
  await t.rejects(store.proxy(() => 1), { code: ErrorCode.SERIALIZATION })
  await t.rejects(store.proxy(Promise.resolve(1)), { code: ErrorCode.SERIALIZATION })
  const p = await store.proxy(1)
  await t.rejects(store.proxy(p), { code: ErrorCode.USAGE, message: /proxy of a proxy|cannot proxy a proxy/ })
  const batch = await store.proxyBatch([{ i: 0 }, { i: 1 }])
  t.same(batch.map((b) => b.i), [0, 1], 'proxyBatch')
  await t.rejects(store.proxyBatch([1, null]), { code: ErrorCode.USAGE })
})

t.test('encoded with the codec, a proxy is its factory: the target stays in the store', async (t) => {
  const { encode, decode, refusedReason } = await import('../../dist/serialize/codec.js')
  const connector = new LocalConnector()
  const store = open(t, connector)
  const big = new Float64Array(1_000_000) // 8 MB
  big[7] = 7
  const p = await store.proxy(big)
  t.equal(refusedReason(p), undefined, 'the submit-time check does not resolve it')
  const bytes = encode({ args: [p, 1] })
  t.notOk(isResolved(p), 'encoding does not resolve it')
  t.ok(bytes.length < 1000, `a few hundred bytes travel (${bytes.length}), not 8 MB`)
  const decoded = decode<{ args: [Float64Array, number] }>(bytes)
  const copy = decoded.args[0]
  t.ok(isProxy(copy), 'decoded as a proxy')
  t.notOk(isResolved(copy))
  t.same(factoryOf(copy), factoryOf(p), 'with the same factory')
  t.equal(copy[7], 7, 'which resolves to the target')
  t.ok(copy instanceof Float64Array)
  await resolve(p)
  t.ok(encode(p).length < 1000, 'a resolved proxy travels as its factory too')
  t.equal(p.constructor, Float64Array, 'outside encode, constructor is the target class')
})
