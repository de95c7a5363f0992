import t, { type Test } from 'tap'
import { ErrorCode, ObjectNotFound, ProxyFutureTimeout, ProxyResolveError } from 'tsflow'
import { extract, factoryOf, isResolved, LocalConnector, resolve, Store, type Connector } from 'tsflow/proxy'

let n = 0
const open = (t: Test, connector: Connector = new LocalConnector()) => {
  const store = new Store(`future-test-${process.pid}-${n++}`, connector)
  t.teardown(() => store.close())
  return store
}

t.test('a consumer holding the proxy starts before the producer sets the value', async (t) => {
  const store = open(t)
  const future = store.future<{ rows: number[] }>({ timeoutMs: 20_000 })
  const proxy = future.proxy()
  t.notOk(await future.done(), 'nothing set yet')
  // The consumer starts first and waits in resolve.
  let consumed: number[] | undefined
  const consumer = resolve(proxy).then(() => (consumed = proxy.rows))
  await new Promise((done) => setImmediate(done))
  t.equal(consumed, undefined, 'still waiting')
  await future.setResult({ rows: [1, 2] })
  await consumer
  t.same(consumed, [1, 2], 'the consumer got the value')
  t.ok(await future.done())
  t.same(await future.result(), { rows: [1, 2] })
  t.ok(isResolved(proxy))
})

t.test('a future whose value never comes times out with an error naming store and key', async (t) => {
  const store = open(t)
  const future = store.future<number>({ timeoutMs: 50 })
  const key = future.key.id
  await t.rejects(future.result(), { code: ErrorCode.PROXY_FUTURE_TIMEOUT, message: new RegExp(`${key}.*'${store.name}'.*50 ms`) })
  const proxy = future.proxy()
  const error = await extract(proxy).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(error instanceof ProxyResolveError, 'a waiting proxy fails with E_PROXY_RESOLVE')
  t.ok((error as Error).cause instanceof ProxyFutureTimeout, 'whose cause is the timeout')
  t.equal(factoryOf(proxy).waitMs, 50, 'the wait travels in the factory')
  const sync = future.proxy() as unknown as { value: number }
  t.throws(() => sync.value, ProxyResolveError, 'a sync use before the value is set fails at once')
  try {
    void sync.value
  } catch (e) {
    t.ok((e as Error).cause instanceof ObjectNotFound, 'with ObjectNotFound as cause')
  }
  t.throws(() => store.future({ timeoutMs: -1 }), { code: ErrorCode.CONFIG, message: /future\.timeoutMs/ })
  await t.rejects(future.setResult(null as never), { code: ErrorCode.USAGE })
})

t.test('future with evict: the value goes once the proxy resolved it', async (t) => {
  const connector = new LocalConnector()
  const store = open(t, connector)
  const future = store.future<string>({ evict: true, timeoutMs: 20_000 })
  const proxy = future.proxy()
  const waiting = extract(proxy)
  await future.setResult('once')
  t.equal(await waiting, 'once')
  t.equal(connector.size, 0, 'evicted after the resolve')
})
