import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConnectorError, ErrorCode } from 'tsflow'
import { listSharedMemory, unlinkSharedMemory } from 'tsflow/native'
import {
  connectorFromConfig,
  factoryOf,
  FileConnector,
  isResolved,
  LocalConnector,
  MultiConnector,
  RedisConnector,
  ShmConnector,
  Store,
  type ObjectKey,
  type PutHints,
} from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-apps.js'
import { startKernel } from '../helpers/executors.js'
import { redisMissing, startRedis } from '../helpers/redis.js'
import { connectorConformance } from './connector-conformance.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-multi-connector-'))
const shmBase = `multitest${process.pid}`
t.teardown(() => {
  rmSync(scratch, { recursive: true, force: true })
  for (const name of listSharedMemory(`tsflow-${shmBase}`)) unlinkSharedMemory(name)
})
let n = 0
const fresh = () => `${n++}`
const file = () => new FileConnector({ directory: join(scratch, `d${fresh()}`) })
const shm = () => new ShmConnector({ prefix: `${shmBase}_${fresh()}` })

connectorConformance(t, {
  name: 'multi(local, file)',
  create: () => new MultiConnector({ connectors: { small: { connector: new LocalConnector(), policy: { maxSize: 1 } }, rest: { connector: file() } } }),
  extra: async (t, c) => {
    const small = await c.put(Uint8Array.of(1))
    const big = await c.put(Uint8Array.of(1, 2, 3))
    t.same([small.via, big.via], ['small', 'rest'], 'the suite exercised both children')
    t.match(c.label, /^multi\(small, rest\)$/)
    await c.evict(small)
    await c.evict(big)
  },
})

connectorConformance(t, {
  name: 'multi(shm, local)',
  create: () => new MultiConnector({ connectors: { big: { connector: shm(), policy: { minSize: 2 } }, small: { connector: new LocalConnector() } } }),
})

// Small objects in a real redis-server, large ones in shm: the mix the connector is for.
const missing = redisMissing()
t.test('multi(redis, shm) on a real redis-server', { skip: missing }, async (t) => {
  const redis = await startRedis(t)
  const make = () =>
    new MultiConnector({
      connectors: {
        small: { connector: new RedisConnector({ host: redis.host, port: redis.port, keyPrefix: `multi${process.pid}-${fresh()}:` }), policy: { maxSize: 1024 } },
        big: { connector: shm() },
      },
    })
  connectorConformance(t, { name: 'multi(redis, shm)', create: make })
  t.test('routing and sync reads across both', async (t) => {
    const c = make()
    t.teardown(() => c.close())
    const small = await c.put(new Uint8Array(1024).fill(1))
    const big = await c.put(new Uint8Array(1025).fill(2))
    t.same([small.via, big.via], ['small', 'big'])
    t.equal(c.getSync(small)[1023], 1, 'getSync through the redis child (its sync bridge)')
    t.equal(c.getSync(big)[1024], 2, 'and the shm child')
    await c.evict(small)
    await c.evict(big)
  })
})

t.test('multi: routes by size, highest priority first, and the key says where', async (t) => {
  const local = new LocalConnector()
  const c = new MultiConnector({
    connectors: {
      huge: { connector: file(), policy: { minSize: 1000 } },
      tiny: { connector: local, policy: { maxSize: 10, priority: 5 } },
      mid: { connector: shm(), policy: { maxSize: 999, priority: 1 } },
    },
  })
  t.teardown(() => c.close())
  const at = async (size: number) => (await c.put(new Uint8Array(size))).via
  t.equal(await at(0), 'tiny')
  t.equal(await at(10), 'tiny', 'maxSize is inclusive')
  t.equal(await at(11), 'mid', 'tiny refuses it, mid (priority 1) comes before huge (priority 0)')
  t.equal(await at(999), 'mid')
  t.equal(await at(1000), 'huge', 'minSize is inclusive')
  const key = await c.put(Uint8Array.of(4, 2))
  const { via: _via, ...childKey } = key
  t.ok(await local.exists(childKey as ObjectKey), 'the child holds it under the key without via')
  t.same(c.connector('tiny'), local)
  await t.rejects(c.get({ id: key.id }), { code: ErrorCode.CONNECTOR, message: /names no child connector.*huge, tiny, mid/ }, 'a key without via is refused')
  await t.rejects(c.get({ id: key.id, via: 'nope' }), ConnectorError)
})

t.test('multi: routes by tags (requireTags, allowTags), and Store passes tags through', async (t) => {
  const c = new MultiConnector({
    connectors: {
      shared: { connector: file(), policy: { requireTags: ['shared'], priority: 10 } },
      scratch: { connector: new LocalConnector(), policy: { allowTags: ['tmp', 'small'] } },
      node: { connector: shm(), policy: { allowTags: ['tmp', 'big'] } },
    },
  })
  const store = new Store(`multi-tags-${process.pid}`, c)
  t.teardown(() => store.close())
  const via = (key: ObjectKey) => key.via
  t.equal(via(await c.put(Uint8Array.of(1), undefined, { tags: ['shared', 'big'] })), 'shared', 'requireTags: the object carries them')
  t.equal(via(await c.put(Uint8Array.of(1))), 'scratch', 'an untagged object passes allowTags')
  t.equal(via(await c.put(Uint8Array.of(1), undefined, { tags: ['tmp'] })), 'scratch')
  t.equal(via(await c.put(Uint8Array.of(1), undefined, { tags: ['big'] })), 'node', 'scratch does not allow big')
  await t.rejects(c.put(Uint8Array.of(1, 2, 3), undefined, { tags: ['other'] }), {
    code: ErrorCode.CONNECTOR,
    message: /no child's policy accepts an object of 3 bytes with tags \[other\].*shared: requireTags \[shared\].*scratch: allowTags \[tmp, small\].*node: allowTags \[tmp, big\]/,
  })

  t.equal(factoryOf(await store.proxy({ a: 1 }, { tags: ['shared'] })).key.via, 'shared', 'store.proxy passes tags')
  t.equal(factoryOf(await store.proxy({ a: 1 })).key.via, 'scratch')
  const batch = await store.proxyBatch([{ a: 1 }, { b: 2 }], { tags: ['big'] })
  t.same(batch.map((p) => factoryOf(p).key.via), ['node', 'node'], 'store.proxyBatch passes tags')
  t.same(batch[1], { b: 2 })
  t.equal(via(await store.put('x', { tags: ['shared'] })), 'shared', 'store.put passes tags')
  const future = store.future<string>({ tags: ['shared'] })
  t.equal(future.key.via, 'shared', 'store.future picks the child by tags')
  await future.setResult('later')
  t.equal(await future.result(), 'later')
  await t.rejects(store.put(1, { tags: 'shared' as never }), { code: ErrorCode.CONFIG, message: /tags/ })
  await t.rejects(store.put(1, { tags: [''] }), { code: ErrorCode.CONFIG })
})

t.test('multi: newKey prefers a child without size bounds; a put under it stays there', async (t) => {
  const c = new MultiConnector({
    connectors: { small: { connector: new LocalConnector(), policy: { maxSize: 4, priority: 9 } }, any: { connector: new LocalConnector() } },
  })
  t.teardown(() => c.close())
  const key = c.newKey()
  t.equal(key.via, 'any')
  await c.put(Uint8Array.of(1), key)
  t.same([...(await c.get(key))], [1], 'a small object under that key stays in any')
  const bounded = new MultiConnector({ connectors: { small: { connector: new LocalConnector(), policy: { maxSize: 4, allowTags: ['a'] } } } })
  t.equal(bounded.newKey().via, 'small', 'with only bounded children, the first that takes the tags')
  t.throws(() => bounded.newKey({ tags: ['x'] } as PutHints), ConnectorError, 'unless none does')
})

t.test('multi: putBatch and getBatch make one call per child, in order', async (t) => {
  // Real connectors, counting their batch calls.
  const calls: string[] = []
  class Counting extends LocalConnector {
    override async putBatch(values: readonly Uint8Array[]) {
      calls.push(`put ${this.name}:${values.length}`)
      return super.putBatch(values)
    }
    override async getBatch(keys: readonly ObjectKey[]) {
      calls.push(`get ${this.name}:${keys.length}`)
      return super.getBatch(keys)
    }
  }
  const c = new MultiConnector({
    connectors: { a: { connector: new Counting({ name: `a${process.pid}` }), policy: { maxSize: 1 } }, b: { connector: new Counting({ name: `b${process.pid}` }) } },
  })
  t.teardown(() => c.close())
  const values = [Uint8Array.of(1), Uint8Array.of(2, 2), Uint8Array.of(3), Uint8Array.of(4, 4, 4)]
  const keys = await c.putBatch(values)
  t.same(keys.map((k) => k.via), ['a', 'b', 'a', 'b'])
  t.same((await c.getBatch([...keys].reverse())).map((b) => [...b]), values.map((v) => [...v]).reverse(), 'values in the order of the keys')
  t.same(calls.sort(), [`get a${process.pid}:2`, `get b${process.pid}:2`, `put a${process.pid}:2`, `put b${process.pid}:2`].sort())
})

t.test('multi: config round trip nests the children, and options are validated', async (t) => {
  const c = new MultiConnector({
    connectors: {
      tiny: { connector: { type: 'local', name: `cfg-${process.pid}` }, policy: { maxSize: 100, priority: 2 } },
      big: { connector: file(), policy: { minSize: 101, allowTags: ['x'] } },
    },
  })
  t.teardown(() => c.close())
  const config = c.toConfig()
  t.same(config, {
    type: 'multi',
    connectors: {
      tiny: { connector: { type: 'local', name: `cfg-${process.pid}` }, policy: { maxSize: 100, priority: 2 } },
      big: { connector: (c.connector('big') as FileConnector).toConfig(), policy: { minSize: 101, allowTags: ['x'] } },
    },
  })
  const rebuilt = connectorFromConfig(JSON.parse(JSON.stringify(config)))
  t.teardown(() => rebuilt.close())
  t.same(rebuilt.toConfig(), config)
  const key = await c.put(new Uint8Array(200))
  t.equal((await rebuilt.get(key)).length, 200, 'the rebuilt multi reads through its rebuilt children')

  const bad = (connectors: unknown) => () => new MultiConnector({ connectors } as never)
  t.throws(bad({}), { code: ErrorCode.CONFIG, message: /connector\.connectors.*at least one/ })
  t.throws(bad({ 'a.b': { connector: { type: 'local' } } }), { code: ErrorCode.CONFIG, message: /connector\.connectors\.a\.b/ })
  t.throws(bad({ a: { policy: {} } }), { code: ErrorCode.CONFIG, message: /connector\.connectors\.a\.connector.*required/ })
  t.throws(bad({ a: { connector: { type: 'local' }, policy: { maxSise: 1 } } }), { message: /connector\.connectors\.a\.policy\.maxSise.*did you mean 'maxSize'/ })
  t.throws(bad({ a: { connector: { type: 'local' }, policy: { minSize: 5, maxSize: 1 } } }), { message: /accepts no object/ })
  t.throws(bad({ a: { connector: { type: 'nope' } } }), { code: ErrorCode.CONFIG, message: /connector\.connectors\.a\.connector/ })
})

t.test('multi of local + file + shm: proxies resolve in tasks on the thread executor', async (t) => {
  const shmChild = shm()
  const store = new Store(
    `multi-tasks-${process.pid}`,
    new MultiConnector({
      connectors: {
        // local objects live in this thread only: small values the caller itself reads
        here: { connector: new LocalConnector(), policy: { maxSize: 1024, allowTags: [] } },
        shared: { connector: file(), policy: { requireTags: ['shared'], priority: 1 } },
        node: { connector: shmChild, policy: { minSize: 1025 } },
      },
    }),
  )
  t.teardown(() => store.close())
  const kernel = await startKernel(t, 'threads')
  const data = await store.proxy(new Float64Array(100_000).fill(1))
  t.equal(factoryOf(data).key.via, 'node', '800 kB goes to shm')
  const seen = await apps.inspect.with({ dfk: kernel })(data, 5)
  t.same(seen, { isProxy: true, resolved: true, sum: 100_005 }, 'a worker thread resolved the shm proxy')
  const tagged = await store.proxy({ value: 'via file' }, { tags: ['shared'] })
  t.equal(factoryOf(tagged).key.via, 'shared')
  t.equal(await apps.readKey.with({ dfk: kernel })(tagged), 'via file', 'and the file proxy')
  const small = await store.proxy({ value: 'here' })
  t.equal(factoryOf(small).key.via, 'here')
  t.equal(small.value, 'here', 'the local one resolves in the caller')
  t.notOk(isResolved(data), 'the caller never fetched the big one')
  t.equal(shmChild.segments().length, 1)
  await store.close()
  t.same(shmChild.segments(), [], 'closing the store closed the shm child, which unlinked its segment')
})

t.test('multi: no shm segment of this test is left', async (t) => {
  t.same(listSharedMemory(`tsflow-${shmBase}`), [])
})
