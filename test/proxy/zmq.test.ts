import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Dealer } from 'zeromq'
import t, { type Test } from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { connectorFromConfig, factoryOf, Store, ZmqConnector, type ObjectKey, type ZmqKey } from 'tsflow/proxy'
import * as apps from '../fixtures/zmq-apps.js'
import { EXECUTOR_KINDS, startKernel } from '../helpers/executors.js'
import { startPeer } from '../helpers/zmq-peer.js'
import { connectorConformance } from './connector-conformance.js'

/** A connector closed when `t` ends. */
const open = (test: Test, options: ConstructorParameters<typeof ZmqConnector>[0] = {}) => {
  const connector = new ZmqConnector(options)
  test.teardown(() => connector.close())
  return connector
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  )

/** A TCP port with nothing listening on it (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  const { port } = server.address() as { port: number }
  await new Promise((done) => server.close(done))
  return port
}

connectorConformance(t, {
  name: 'zmq',
  create: () => new ZmqConnector({ timeoutMs: 5000 }),
  extra: async (t, connector) => {
    const c = connector as ZmqConnector
    const key = await c.put(Uint8Array.of(1))
    t.equal(key.owner, c.endpoint, 'the key names this process as the owner')
    t.match(c.endpoint, /^tcp:\/\/127\.0\.0\.1:\d+$/, 'listening on 127.0.0.1, a port the OS chose')
    t.equal(c.label, `zmq(${c.endpoint})`)
    t.equal(c.size, 1, 'size counts what this process owns')
    await c.evict(key)
    t.equal(c.size, 0)
  },
})

t.test('zmq: options are checked and name the option', async (t) => {
  t.throws(() => new ZmqConnector({ address: '0.0.0.0' }), { code: ErrorCode.CONFIG, message: /connector\.address.*interface option/ })
  t.throws(() => new ZmqConnector({ address: 'somehost' }), { code: ErrorCode.CONFIG, message: /connector\.address/ })
  t.throws(() => new ZmqConnector({ address: '127.0.0.1', interface: 'lo' }), { code: ErrorCode.CONFIG, message: /connector\.interface/ })
  t.throws(() => new ZmqConnector({ port: 70000 }), { code: ErrorCode.CONFIG, message: /connector\.port/ })
  t.throws(() => new ZmqConnector({ timeoutMs: 0 }), { code: ErrorCode.CONFIG, message: /connector\.timeoutMs/ })
  t.throws(() => connectorFromConfig({ type: 'zmq', timeout: 5 }), { message: /did you mean 'timeoutMs'/ })

  const lo = open(t, { interface: 'lo' })
  t.match(lo.newKey().owner, /^tcp:\/\/127\.0\.0\.1:\d+$/, 'an interface resolves to its address in this process')
  t.same(lo.toConfig(), { type: 'zmq', interface: 'lo', timeoutMs: 10_000 }, 'the config keeps the interface, not its address')
  const missing = open(t, { interface: 'nosuchif0' })
  t.throws(() => missing.newKey(), { code: ErrorCode.CONNECTOR, message: /no network interface 'nosuchif0'.*lo/ })

  const six = open(t, { address: '::1' })
  const sixKey = await six.put(Uint8Array.of(6))
  t.match(sixKey.owner, /^tcp:\/\/\[::1\]:\d+$/, 'an IPv6 address is bracketed in the endpoint')
  const sixReader = await startPeer(t)
  t.same(await sixReader.call({ op: 'get', key: sixKey }), { length: 1, first: 6, uniform: true }, 'and read over IPv6 from another process')

  const first = open(t)
  const port = Number(/:(\d+)$/.exec(first.endpoint)![1])
  const clash = open(t, { port })
  await t.rejects(clash.put(Uint8Array.of(1)), { code: ErrorCode.CONNECTOR, message: new RegExp(`cannot listen on tcp://127\\.0\\.0\\.1:${port}`) })
})

t.test('zmq: two processes fetch each other objects from the owner', async (t) => {
  const here = open(t)
  const peer = await startPeer(t, { timeoutMs: 10_000 })
  t.not(peer.endpoint, here.endpoint)

  const mine = await here.put(new Uint8Array(1000).fill(3))
  t.same(await peer.call({ op: 'get', key: mine }), { length: 1000, first: 3, uniform: true }, 'the peer reads this process object')
  const theirs = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 2000, fill: 4 })).key
  t.equal(theirs.owner, peer.endpoint, 'the peer owns what it put')
  const bytes = await here.get(theirs)
  t.ok(bytes.length === 2000 && bytes.every((b) => b === 4), 'this process reads the peer object')
  t.ok(await here.exists(theirs), 'exists asks the owner')

  // Many requests at once on the one link to the peer: each answer reaches its own request.
  const sizes = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 300_000 : 50) + i)
  const keys: ZmqKey[] = []
  for (const [i, size] of sizes.entries()) keys.push((await peer.call<{ key: ZmqKey }>({ op: 'put', size, fill: i })).key)
  const batch = await here.getBatch(keys)
  t.same(
    batch.map((b) => [b.length, b[0], b.every((x) => x === b[0])]),
    sizes.map((size, i) => [size, i, true]),
    'concurrent reads of large and small objects each got their own bytes',
  )
  await Promise.all(keys.map((key) => here.evict(key)))

  // Evict from a process that does not own the object: the owner drops it.
  await here.evict(theirs)
  t.same(await peer.call({ op: 'size' }), { size: 0 }, 'the owner no longer holds it')
  t.notOk(await here.exists(theirs))
  const gone = await failure(here.get(theirs))
  t.ok(gone instanceof ObjectNotFound, 'a missing remote object is ObjectNotFound')
  t.match(gone?.message, peer.endpoint, 'naming the owner')
  await peer.call({ op: 'evict', key: mine })
  t.equal(here.size, 0, 'and the other way round')

  // A put under a key another process owns sends the bytes there.
  const future = here.newKey()
  await peer.call({ op: 'set', key: future, size: 10, fill: 9 })
  t.equal(here.size, 1, 'the bytes landed at the owner')
  t.same([...(await here.get(future))], new Array(10).fill(9))

  // Proxies: a store over the connector, its proxy resolved in the peer.
  const store = new Store(`zmq-two-${process.pid}`, here)
  const proxy = await store.proxy({ rows: [1, 2, 3] })
  t.same(await peer.call({ op: 'resolve', factory: factoryOf(proxy) }), { value: { rows: [1, 2, 3] } })
  await peer.call({ op: 'close' })
})

t.test('zmq: encrypt: true serves over CURVE; keys carry the owner public key', async (t) => {
  const here = open(t, { encrypt: true, timeoutMs: 500 })
  t.same(here.toConfig(), { type: 'zmq', timeoutMs: 500, encrypt: true })
  const peer = await startPeer(t, { encrypt: true, timeoutMs: 5000 })
  const mine = await here.put(new Uint8Array(5000).fill(2))
  t.match(mine.pk, /^.{40}$/, 'the key carries a 40-character public key')
  t.ok(JSON.stringify(mine).length < 200, 'and stays small')
  t.same(await peer.call({ op: 'get', key: mine }), { length: 5000, first: 2, uniform: true }, 'the peer reads over CURVE')
  const theirs = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 3000, fill: 5 })).key
  t.not(theirs.pk, mine.pk, 'each owner has its own key pair')
  t.equal((await here.get(theirs)).length, 3000, 'this process reads the peer object over CURVE')
  await here.evict(theirs)
  t.same(await peer.call({ op: 'size' }), { size: 0 }, 'and evicts it')

  // Without the owner public key, or with another one, there is no way in: bounded failures.
  const { pk: _, ...plain } = theirs
  const refused = await failure(here.get(plain as ZmqKey))
  t.ok(refused instanceof ConnectorError, 'a plaintext request to an encrypting owner fails')
  t.match(refused?.message, `zmq(${peer.endpoint})`)
  t.match(refused?.message, /handshake.*the key has no owner public key/, 'saying why')
  const forged = await failure(here.get({ ...theirs, pk: mine.pk! }))
  t.ok(forged instanceof ConnectorError, 'a request encrypted for another key fails')
  t.match(forged?.message, `zmq(${peer.endpoint})`)
  t.match(forged?.message, /handshake.*is not this owner's/, 'saying why')
  await t.rejects(here.get({ ...theirs, pk: 'short' }), { code: ErrorCode.CONNECTOR, message: /malformed owner public key/ })
})

t.test('zmq: getSync reads another owner through the sync bridge; a proxy resolves on a property read', async (t) => {
  const here = open(t, { timeoutMs: 1000 })
  const peer = await startPeer(t)
  const key = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 4000, fill: 3 })).key
  const bytes = here.getSync(key)
  t.ok(bytes.length === 4000 && bytes.every((b) => b === 3), 'the bytes, read blocking from the other process')
  await here.evict(key)
  t.throws(() => here.getSync(key), ObjectNotFound, 'a missing remote object is ObjectNotFound through the bridge too')
  const nowhere = { id: 'k', owner: `tcp://127.0.0.1:${await deadPort()}` }
  t.throws(() => here.getSync(nowhere), { code: ErrorCode.CONNECTOR, message: `zmq(${nowhere.owner})` }, 'an unreachable owner is a ConnectorError naming it')

  const { factory } = await peer.call<{ factory: ReturnType<typeof factoryOf> }>({ op: 'proxy', value: { rows: [7, 8] } })
  const store = Store.fromConfig(factory.store)
  t.teardown(() => store.close())
  const proxy = store.proxyFromKey<{ rows: number[] }>(factory.key)
  t.same(proxy.rows, [7, 8], 'a plain property read resolved the proxy of an object another process owns')
})

t.test('zmq: a proxy future made here gets its value from a producer in another process', async (t) => {
  const store = new Store(`zmq-future-${process.pid}`, new ZmqConnector())
  t.teardown(() => store.close())
  const peer = await startPeer(t)
  const future = store.future<{ rows: number[] }>({ timeoutMs: 20_000 })
  const waiting = future.result()
  await peer.call({ op: 'setResult', factory: factoryOf(future.proxy()), value: { rows: [4, 5] } })
  t.same(await waiting, { rows: [4, 5] }, 'the consumer here got the value the peer set')
  t.equal((store.connector as ZmqConnector).size, 1, 'and this process, the key owner, holds it')
})

t.test('zmq: 100 MB travels as one frame', async (t) => {
  const here = open(t)
  const peer = await startPeer(t)
  const size = 100 * 1024 * 1024
  const key = (await peer.call<{ key: ZmqKey }>({ op: 'put', size, fill: 7 })).key
  const bytes = await here.get(key)
  t.equal(bytes.length, size)
  t.ok(bytes[0] === 7 && bytes[size - 1] === 7 && bytes[size >> 1] === 7)
  await here.evict(key)
  t.same(await peer.call({ op: 'size' }), { size: 0 })
})

t.test('zmq: an unreachable owner fails within timeoutMs, naming its address', async (t) => {
  const c = open(t, { timeoutMs: 300 })
  const owner = `tcp://127.0.0.1:${await deadPort()}`
  const key = { id: 'k', owner }
  for (const [what, call] of [
    ['get', () => c.get(key)],
    ['exists', () => c.exists(key)],
    ['evict', () => c.evict(key)],
    ['put', () => c.put(Uint8Array.of(1), key)],
  ] as const) {
    const error = await failure(call())
    t.ok(error instanceof ConnectorError, `${what}: ConnectorError`)
    t.equal(error?.code, ErrorCode.CONNECTOR)
    t.match(error?.message, `zmq(${owner})`, `${what}: names the owner`)
    t.match(error?.message, /within 300 ms/)
  }
  await t.rejects(c.get({ id: 'x' } as unknown as ZmqKey), { code: ErrorCode.CONNECTOR, message: /no owner endpoint/ }, 'a key without owner')
})

t.test('zmq: an owner killed with SIGKILL mid-use fails the readers with a ConnectorError', async (t) => {
  const c = open(t, { timeoutMs: 2000 })
  const peer = await startPeer(t)
  const key = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 20 * 1024 * 1024, fill: 1 })).key
  t.equal((await c.get(key)).length, 20 * 1024 * 1024, 'read while the owner lives')
  // Readers in flight when the owner dies: each one either got its bytes or a ConnectorError.
  const inFlight = Array.from({ length: 4 }, () => c.get(key).then((b) => b.length, (e: unknown) => e))
  peer.child.kill('SIGKILL')
  for (const outcome of await Promise.all(inFlight)) {
    if (typeof outcome === 'number') t.equal(outcome, 20 * 1024 * 1024, 'answered before the kill')
    else {
      t.ok(outcome instanceof ConnectorError && (outcome as Error).message.includes(`zmq(${peer.endpoint})`), 'failed naming the owner')
      t.match((outcome as Error).message, /the owner closed the connection|no answer from the owner|dropped during its handshake/, 'saying the owner went away')
    }
  }
  const after = await failure(c.get(key))
  t.ok(after instanceof ConnectorError, 'a read after the kill is a ConnectorError')
  t.match(after?.message, `zmq(${peer.endpoint})`)
})

t.test('zmq: an owner that stops answering; close() fails waiting requests', async (t) => {
  const c = open(t, { timeoutMs: 500 })
  const peer = await startPeer(t)
  const key = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 10, fill: 1 })).key
  t.equal((await c.get(key)).length, 10)
  // Stopped, not dead: the connection stays up, no answer comes.
  peer.child.kill('SIGSTOP')
  t.teardown(() => peer.child.kill('SIGCONT'))
  const silent = await failure(c.get(key))
  t.match(silent, { code: ErrorCode.CONNECTOR, message: new RegExp(`zmq\\(${peer.endpoint.replace(/\./g, '\\.')}\\).*no answer.*500 ms`) })

  const patient = new ZmqConnector({ timeoutMs: 60_000 })
  const waiting = failure(patient.get(key))
  await patient.close()
  const closed = await waiting
  t.ok(closed instanceof ConnectorError, 'a request waiting when close() runs is rejected')
  t.match(closed?.message, /was closed while waiting/)
  await t.rejects(patient.get(key), { code: ErrorCode.CONNECTOR, message: /is closed/ }, 'a closed connector refuses new calls')
})

t.test('zmq: close() stops serving; the objects it owned are gone', async (t) => {
  const owner = new ZmqConnector()
  const reader = open(t, { timeoutMs: 300 })
  const key = await owner.put(Uint8Array.of(1, 2))
  t.same([...(await reader.get(key))], [1, 2])
  await owner.close()
  const error = await failure(reader.get(key))
  t.ok(error instanceof ConnectorError, 'reading an object of a closed owner is a ConnectorError')
  t.match(error?.message, new RegExp(`zmq\\(${key.owner.replace(/\./g, '\\.')}\\).*was closed and its objects are gone`), 'at once, in the owner process')
  await t.rejects(owner.put(Uint8Array.of(1)), { code: ErrorCode.CONNECTOR, message: /is closed/ })

  // Another process finds nobody listening: a ConnectorError within its bound.
  const peer = await startPeer(t, { timeoutMs: 300 })
  const remote = new ZmqConnector()
  const remoteKey = await remote.put(Uint8Array.of(3))
  t.same(await peer.call({ op: 'get', key: remoteKey }), { length: 1, first: 3, uniform: true })
  await remote.close()
  const reply = await peer.raw({ op: 'get', key: remoteKey })
  t.match(reply.error, { code: ErrorCode.CONNECTOR, message: `zmq(${remoteKey.owner})` }, 'the reader elsewhere fails naming the owner')
})

t.test('zmq: a request in another wire version is answered with an error naming both', async (t) => {
  const here = open(t)
  const key = await here.put(Uint8Array.of(1))
  const socket = new Dealer({ linger: 0 })
  t.teardown(() => socket.close())
  socket.connect(here.endpoint)
  await socket.send([Buffer.from([0, 0, 0, 1]), Uint8Array.of(99, 0x67), key.id])
  const [requestId, status, detail] = await socket.receive()
  t.same([...requestId!], [0, 0, 0, 1], 'the answer carries the request id')
  t.equal(status![0], 2, 'a failure status')
  t.match(detail!.toString(), /wire version 1, the request another \(99\)/)
})

t.test('zmq: a reader that never closes its connector does not keep its process alive', async (t) => {
  const owner = open(t)
  const key = await owner.put(Uint8Array.of(1, 2, 3))
  const script = `
    import { ZmqConnector } from 'tsflow/proxy'
    const reader = new ZmqConnector()
    const bytes = await reader.get(${JSON.stringify(key)})
    console.log(bytes.length)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  // Bounded, so a regression fails here instead of hanging the file.
  const guard = setTimeout(() => child.kill('SIGKILL'), 20_000)
  t.teardown(() => clearTimeout(guard))
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  t.equal(output.trim(), '3', 'it read the object')
  t.same({ code, signal }, { code: 0, signal: null }, 'and exited on its own')
})

for (const kind of EXECUTOR_KINDS) t.test(`zmq: tasks (${kind}) read, own and produce objects`, async (t) => {
  const kernel = await startKernel(t, kind)
  const store = new Store(`zmq-tasks-${kind}-${process.pid}`, new ZmqConnector())
  t.teardown(() => store.close())

  // Owned here, read by the worker.
  const data = await store.proxy({ rows: [1, 2, 3, 4] })
  t.equal(await apps.total.with({ dfk: kernel })(data), 10, 'the worker fetched the proxy target from this process')

  // Owned by the worker, read here. A worker thread cannot own objects: a pool thread is blocked
  // between tasks, so it could not answer.
  const stashed = apps.stash.with({ dfk: kernel })(`zmq-stash-${process.pid}`, store.connector.toConfig(), [5, 6])
  if (kind === 'htex-processes') {
    const { key, pid } = await stashed
    t.not(pid, process.pid)
    t.not((key as ZmqKey).owner, (store.connector as ZmqConnector).endpoint, 'the worker process serves its own object')
    t.same(await store.get(key as ObjectKey), { rows: [5, 6] }, 'this process fetched it from the worker')
  } else {
    await t.rejects(stashed, { code: ErrorCode.CONNECTOR, message: /cannot own objects in a worker thread/ }, 'a put in a worker thread is refused')
  }

  // A consumer task started before its producer task; the producer's set goes to this process.
  const future = store.future<{ rows: number[] }>({ timeoutMs: 30_000 })
  const consumer = apps.total.with({ dfk: kernel })(future.proxy())
  const producer = apps.produce.with({ dfk: kernel })(factoryOf(future.proxy()), { rows: [10, 20] })
  if (kind === 'htex-processes') t.not(await producer, process.pid, 'the producer ran in a worker process')
  else await producer
  t.equal(await consumer, 30, 'the consumer waited for the value and read it')
})
