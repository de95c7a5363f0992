import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import t from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { connectorFromConfig, factoryOf, isResolved, RedisConnector, Store, type ObjectKey } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-apps.js'
import * as redisApps from '../fixtures/redis-apps.js'
import { startKernel } from '../helpers/executors.js'
import { freePort, redisMissing, startRedis } from '../helpers/redis.js'
import { isAlive, waitFor } from '../helpers/wait.js'
import { connectorConformance } from './connector-conformance.js'

// A hang is a failure, not a slow pass: every "bounded" failure below must come well before this.
const HANG_MS = 60_000

/** The rejection of `promise` (or a failure if it resolves or hangs). */
async function failureOf(promise: Promise<unknown>, what: string): Promise<Error & { code?: string }> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} hung for ${HANG_MS} ms`)), HANG_MS)))
  try {
    await Promise.race([promise, hang])
  } catch (error) {
    return error as Error & { code?: string }
  } finally {
    clearTimeout(timer)
  }
  throw new Error(`${what} succeeded; it should have failed`)
}

const missing = redisMissing()
if (missing) t.test('redis connector on a real redis-server', { skip: missing }, () => {})
else {
  const redis = await startRedis(t)
  let n = 0
  const prefix = () => `test${process.pid}-${n++}:`
  const open = (options = {}) => new RedisConnector({ host: redis.host, port: redis.port, keyPrefix: prefix(), ...options })

  connectorConformance(t, {
    name: 'redis',
    create: () => open(),
    extra: async (t, connector) => {
      const c = connector as RedisConnector
      const key = await c.put(Uint8Array.of(1, 2, 3))
      t.same(Object.keys(key), ['id'], 'the key carries only the id')
      // A connector without a prefix reads the same object under prefix + id: that is the Redis key.
      const raw = new RedisConnector({ host: redis.host, port: redis.port, keyPrefix: '' })
      t.teardown(() => raw.close())
      t.same([...(await raw.get({ id: c.keyPrefix + key.id }))], [1, 2, 3], 'the Redis key is keyPrefix + id')
      await c.close()
      t.same([...(await raw.get({ id: c.keyPrefix + key.id }))], [1, 2, 3], 'close() leaves the data on the server')
      await t.rejects(c.get(key), { code: ErrorCode.CONNECTOR, message: /closed/ }, 'a closed connector refuses')
      await raw.evict({ id: c.keyPrefix + key.id })
    },
  })

  t.test('redis: options are checked and the config names the server', async (t) => {
    const c = new RedisConnector({ url: `redis://127.0.0.1:${redis.port}/2` })
    t.equal(c.label, `redis(127.0.0.1:${redis.port}/2)`)
    t.same(c.toConfig(), { type: 'redis', url: `redis://127.0.0.1:${redis.port}/2`, keyPrefix: 'tsflow:', connectTimeoutMs: 5000, commandTimeoutMs: 60000 })
    const key = await c.put(Uint8Array.of(9))
    const db0 = open({ keyPrefix: 'tsflow:' })
    t.teardown(() => Promise.all([c.close(), db0.close()]))
    t.notOk(await db0.exists(key), 'db 2 is not db 0')
    t.same([...(await (connectorFromConfig(c.toConfig()) as RedisConnector).get(key))], [9], 'the url travels in the config')
    await c.evict(key)
    t.throws(() => new RedisConnector({ url: 'http://x' }), { code: ErrorCode.CONFIG, message: /connector\.url/ })
    t.throws(() => new RedisConnector({ url: 'redis://x', port: 1 }), { code: ErrorCode.CONFIG, message: /connector\.port/ })
    t.throws(() => new RedisConnector({ port: 70000 }), { code: ErrorCode.CONFIG, message: /connector\.port/ })
    t.throws(() => new RedisConnector({ connectTimeoutMs: 0 }), { code: ErrorCode.CONFIG, message: /connector\.connectTimeoutMs/ })
    t.throws(() => new RedisConnector({ hots: 'x' } as never), { code: ErrorCode.CONFIG, message: /did you mean 'host'/ })
  })

  t.test('redis: an unreachable server fails with ConnectorError naming it, within connectTimeoutMs, every time', async (t) => {
    // Nothing listening: refused at once.
    const port = await freePort()
    const refused = new RedisConnector({ host: '127.0.0.1', port, connectTimeoutMs: 2000 })
    t.teardown(() => refused.close())
    for (const attempt of [1, 2]) {
      const error = await failureOf(refused.get({ id: 'x' }), 'a read from a closed port')
      t.ok(error instanceof ConnectorError, `attempt ${attempt}: ConnectorError`)
      t.match(error.message, `redis(127.0.0.1:${port})`, 'names the address')
      t.match(error.message, /ECONNREFUSED/, 'says why')
    }

    // A server that accepts connections and never answers (a blackhole above TCP): the
    // handshake is bounded too.
    const sockets = new Set<Socket>()
    let dropped = 0
    // It reads (and ignores) what it is sent, so it sees the client hang up.
    const silent = createServer((socket) => sockets.add(socket.on('error', () => {}).on('close', () => dropped++).resume()))
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    t.teardown(() => {
      for (const socket of sockets) socket.destroy()
      silent.close()
    })
    const silentPort = (silent.address() as { port: number }).port
    const stalled = new RedisConnector({ host: '127.0.0.1', port: silentPort, connectTimeoutMs: 500 })
    t.teardown(() => stalled.close())
    for (const attempt of [1, 2]) {
      const error = await failureOf(stalled.put(Uint8Array.of(1)), 'a write to a silent server')
      t.ok(error instanceof ConnectorError, `attempt ${attempt}: ConnectorError`)
      t.match(error.message, `redis(127.0.0.1:${silentPort})`)
      t.match(error.message, /no answer within 500 ms \(connectTimeoutMs\)/)
    }
    await waitFor(() => dropped === sockets.size, 'the connector to drop its stalled connections')
    t.equal(sockets.size, 2, 'one connection per attempt, no retry loop')

    // An address nothing answers at (TEST-NET-1, never routed): unreachable or timed out, bounded.
    const nowhere = new RedisConnector({ host: '192.0.2.1', port: 6379, connectTimeoutMs: 500 })
    t.teardown(() => nowhere.close())
    const error = await failureOf(nowhere.exists({ id: 'x' }), 'a read from an unrouted address')
    t.ok(error instanceof ConnectorError)
    t.match(error.message, 'redis(192.0.2.1:6379)')
  })

  t.test('redis: a 100 MB value round-trips (async and through getSync)', async (t) => {
    const c = open()
    t.teardown(() => c.close())
    const size = 100 * 1024 * 1024
    const value = new Uint8Array(size)
    for (let i = 0; i < size; i += 4096) value[i] = (i / 4096) % 251
    value[size - 1] = 7
    const key = await c.put(value)
    const back = await c.get(key)
    t.equal(back.length, size)
    t.ok(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(value), 'same bytes')
    const sync = c.getSync(key)
    t.equal(sync.length, size)
    t.ok(Buffer.from(sync.buffer, sync.byteOffset, sync.byteLength).equals(value), 'same bytes through the sync bridge')
    await c.evict(key)
  })

  t.test("redis: a value over the server's proto-max-bulk-len fails with ConnectorError; the next call works", async (t) => {
    // 1 MB limit here (512 MB by default) so the test stays small.
    const small = await startRedis(t, { args: ['--proto-max-bulk-len', '1mb'] })
    const c = new RedisConnector({ host: small.host, port: small.port })
    t.teardown(() => c.close())
    const error = await failureOf(c.put(new Uint8Array(2 << 20)), 'a put over the limit')
    t.ok(error instanceof ConnectorError, error.message)
    t.match(error.message, `redis(${small.host}:${small.port})`)
    const key = await c.put(new Uint8Array(1000).fill(1))
    t.equal((await c.get(key)).length, 1000)
  })

  t.test('redis: a proxy resolves on a plain property access (sync bridge)', async (t) => {
    const store = new Store(`redis-sync-${process.pid}`, open())
    t.teardown(() => store.close())
    const proxy = await store.proxy({ value: 'from redis', list: [1, 2, 3] })
    t.notOk(isResolved(proxy))
    t.equal(proxy.value, 'from redis', 'a plain read resolved it')
    t.ok(isResolved(proxy))
    t.same([...proxy.list], [1, 2, 3])
    const gone = store.proxyFromKey<{ value: string }>({ id: 'never-stored' })
    const error = (() => {
      try {
        return void gone.value
      } catch (error) {
        return error as Error & { code?: string; cause?: unknown }
      }
    })()
    t.equal(error?.code, ErrorCode.PROXY_RESOLVE)
    t.ok(error?.cause instanceof ObjectNotFound, 'ObjectNotFound came back through the bridge as the cause')
  })

  for (const kind of ['threads', 'htex-processes'] as const) t.test(`redis: a task (${kind}) rebuilds the connector from its config and resolves the proxy`, async (t) => {
    const kernel = await startKernel(t, kind)
    const store = new Store(`redis-tasks-${kind}-${process.pid}`, open())
    t.teardown(() => store.close())
    const data = new Float64Array(100_000).fill(2)
    const proxy = await store.proxy(data)
    t.same(await apps.inspect.with({ dfk: kernel })(proxy, 1), { isProxy: true, resolved: true, sum: 200_001 }, 'resolved in the worker')
    t.notOk(isResolved(proxy), 'the caller never fetched it')
    // A proxy nested in arrays or plain objects is resolved before the call; one inside a Map is
    // not looked for, so a plain property read in the worker goes through its own sync bridge.
    const inner = await store.proxy({ value: 'nested' })
    t.same(await redisApps.readNested.with({ dfk: kernel })({ inner }), { isProxy: true, before: true, value: 'nested', after: true })
    t.same(await redisApps.readInMap.with({ dfk: kernel })(new Map([['inner', inner]])), { isProxy: true, before: false, value: 'nested', after: true })
    const once = await store.proxy({ value: 'once' }, { evict: true })
    t.equal(await apps.readKey.with({ dfk: kernel })(once), 'once')
    t.notOk(await store.exists(factoryOf(once).key), 'evicted after the task resolved it')
  })

  t.test('redis: a hung server (SIGSTOP) fails commands after commandTimeoutMs and connects after connectTimeoutMs', async (t) => {
    const hung = await startRedis(t)
    const c = new RedisConnector({ host: hung.host, port: hung.port, connectTimeoutMs: 500, commandTimeoutMs: 500 })
    t.teardown(() => c.close())
    const key = await c.put(Uint8Array.of(3))
    process.kill(hung.pid, 'SIGSTOP')
    t.teardown(() => process.kill(hung.pid, 'SIGCONT'))
    const error = await failureOf(c.get(key), 'a read from a stopped server')
    t.ok(error instanceof ConnectorError)
    t.match(error.message, `redis(${hung.host}:${hung.port})`)
    t.match(error.message, /no answer within 500 ms \(commandTimeoutMs\)/)
    // The timed-out connection was dropped; the kernel still accepts the TCP connection of the
    // next call, but the stopped server never answers its handshake.
    const again = await failureOf(c.exists(key), 'a second read from a stopped server')
    t.match(again.message, /no answer within 500 ms \(connectTimeoutMs\)/)
    process.kill(hung.pid, 'SIGCONT')
    t.same([...(await c.get(key))], [3], 'once the server runs again, the next call works')
  })

  t.test('redis: a server killed mid-use makes the next reads fail with ConnectorError, no hang', async (t) => {
    const doomed = await startRedis(t)
    const c = new RedisConnector({ host: doomed.host, port: doomed.port, connectTimeoutMs: 2000, commandTimeoutMs: 5000 })
    t.teardown(() => c.close())
    const key: ObjectKey = await c.put(Uint8Array.of(4, 4))
    t.same([...(await c.get(key))], [4, 4])
    t.same([...c.getSync(key)], [4, 4], 'the sync bridge has its own connection too')
    process.kill(doomed.pid, 'SIGKILL')
    await waitFor(() => !isAlive(doomed.pid), 'redis-server to die')
    for (const attempt of [1, 2]) {
      const error = await failureOf(c.get(key), 'a read after the server died')
      t.ok(error instanceof ConnectorError, `attempt ${attempt}: ConnectorError (${error.message})`)
      t.match(error.message, `redis(${doomed.host}:${doomed.port})`)
    }
    let syncError: (Error & { code?: string }) | undefined
    try {
      c.getSync(key)
    } catch (error) {
      syncError = error as Error & { code?: string }
    }
    t.equal(syncError?.code, ErrorCode.CONNECTOR, 'getSync fails the same way')
    t.match(syncError?.message, `redis(${doomed.host}:${doomed.port})`)

    // A server back on the same address is used by the next call (nothing was persisted).
    await startRedis(t, { port: doomed.port })
    await t.rejects(c.get(key), ObjectNotFound, 'the next call reconnects: the object is gone with the old server')
    await c.put(Uint8Array.of(5), key)
    t.same([...(await c.get(key))], [5])
    t.same([...c.getSync(key)], [5], 'and so does the sync bridge')
  })
}
