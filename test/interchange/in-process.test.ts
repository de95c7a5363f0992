// The interchange's pieces in-process: the core with 2,000 simulated managers (what a benchmark
// drives), the Interchange class with real sockets, and the transport helpers.

import { chmodSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

import t from 'tap'
import { Router } from 'zeromq'

import { ErrorCode } from 'tsflow'
import { InterchangeCore, Interchange, TaskQueue, LogLimiter } from 'tsflow/interchange'
import { stamp } from 'tsflow/protocol'
import type { InterchangeToClient, InterchangeToManager, TaskEnvelope } from 'tsflow/protocol'
import { generateCurveKeys, loadCurveKeys } from '../../dist/transport/curve.js'
import { Heartbeat } from '../../dist/transport/heartbeat.js'
import { bindTcp, isLoopback, portOf, tcpEndpoint } from '../../dist/transport/sockets.js'
import { z85Decode } from '../../dist/transport/zap.js'
import { Logger } from '../../dist/util/logger.js'
import { FNS, FakeClient, FakeManager, makeTasks, tempDir, waitFor } from './harness.js'

/** An InterchangeCore whose output is captured, with a clock the test moves. */
function harnessCore(thresholdMs = 1000) {
  let now = 1_000_000
  const toClient: InterchangeToClient[] = []
  const toManagers: { key: string; message: InterchangeToManager }[] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: thresholdMs / 5, heartbeatThresholdMs: thresholdMs, clock: () => now },
    { toClient: (m) => toClient.push(m), toManager: (key, message) => toManagers.push({ key, message }) },
  )
  const register = (id: string, workers: number, prefetch = 0, blockId = 'b0') =>
    core.onManagerMessage(id, { t: 'register', managerId: id, host: `host-${id}`, blockId, workers, prefetch, pid: 1, ...stamp() })
  return { core, toClient, toManagers, register, advance: (ms: number) => (now += ms) }
}

const tasksFor = (out: { key: string; message: InterchangeToManager }[]) => {
  const byManager = new Map<string, TaskEnvelope[]>()
  for (const { key, message } of out) {
    if (message.t !== 'tasks') continue
    if (byManager.has(key)) throw new Error(`manager ${key} got two tasks messages in one flush`)
    byManager.set(key, message.tasks)
  }
  return byManager
}

t.test('dispatch with 2,000 registered managers: one message each, capacities respected, results batched', async (t) => {
  const { core, toClient, toManagers, register } = harnessCore()
  const managers = 2000
  for (let i = 0; i < managers; i++) register(`m${i}`, 1 + (i % 4), i % 2) // capacity 1..5
  const capacityOf = (i: number) => 1 + (i % 4) + (i % 2)
  const totalCapacity = Array.from({ length: managers }, (_, i) => capacityOf(i)).reduce((a, b) => a + b, 0)
  t.equal(core.managers.size, managers)
  t.equal(toClient.filter((m) => m.t === 'manager' && m.event === 'registered').length, managers)

  toManagers.length = 0
  const tasks = makeTasks(0, totalCapacity + 500)
  core.onClientMessage({ t: 'submit', tasks: tasks.slice(0, 3000), fns: FNS })
  core.onClientMessage({ t: 'submit', tasks: tasks.slice(3000), fns: FNS })
  core.flush()
  const sent = tasksFor(toManagers)
  t.equal(sent.size, managers, 'every manager got exactly one tasks message')
  let dispatched = 0
  for (let i = 0; i < managers; i++) {
    const got = sent.get(`m${i}`)!.length
    if (got !== capacityOf(i)) t.fail(`m${i} got ${got}, capacity ${capacityOf(i)}`)
    dispatched += got
  }
  t.equal(dispatched, totalCapacity, 'all capacity used')
  t.equal(core.queue.size, 500, 'the rest waits')
  t.equal(core.stats.taskMessages, managers)

  // Every manager answers; the next flush sends ONE results message and refills every manager.
  toManagers.length = 0
  toClient.length = 0
  for (const [key, list] of sent) {
    core.onManagerMessage(key, { t: 'results', results: list.map((task) => ({ id: task.id, try: 0, payload: task.payload })), capacity: list.length })
  }
  core.flush()
  const results = toClient.filter((m) => m.t === 'results')
  t.equal(results.length, 1, 'one results message for the whole turn')
  t.equal(results[0]?.t === 'results' && results[0].results.length, totalCapacity)
  const refill = tasksFor(toManagers)
  t.equal([...refill.values()].reduce((n, list) => n + list.length, 0), 500, 'the remaining 500 dispatched')
  t.equal(core.queue.size, 0)

  // Full managers leave the ring; a single announcement brings exactly that one back.
  const full = harnessCore()
  for (let i = 0; i < managers; i++) full.register(`m${i}`, 1)
  full.core.onClientMessage({ t: 'submit', tasks: makeTasks(0, managers + 1), fns: FNS })
  full.core.flush()
  full.toManagers.length = 0
  full.core.flush()
  t.equal(full.toManagers.length, 0, 'nothing to send while every manager is full')
  full.core.onManagerMessage('m1234', { t: 'results', results: [{ id: 1234, try: 0, payload: Buffer.from('x') }], capacity: 1 })
  full.core.flush()
  t.same([...tasksFor(full.toManagers).keys()], ['m1234'], 'the freed manager gets the queued task')
})

t.test('core: heartbeat loss fails held tasks with ManagerLost; cancel; stale capacity is bounded', async (t) => {
  const { core, toClient, toManagers, register, advance } = harnessCore(1000)
  register('a', 2, 1)
  register('b', 1)
  core.onClientMessage({ t: 'submit', tasks: makeTasks(0, 10), fns: FNS })
  core.flush()
  t.equal(core.managers.placed, 4)
  // An announcement larger than the slots (stale, tasks still on the wire) does not overfill.
  core.onManagerMessage('a', { t: 'ready', capacity: 50 })
  core.flush()
  t.equal(core.managers.get('a')!.held.size, 3, 'a holds at most workers + prefetch')

  advance(600)
  core.onManagerMessage('b', { t: 'heartbeat', outstanding: 1 })
  advance(600)
  t.equal(core.checkHeartbeats(), 1, 'only the silent manager expires')
  core.flush()
  const failed = toClient.find((m) => m.t === 'failed')
  t.ok(failed && failed.t === 'failed' && failed.failures.length === 3)
  if (failed?.t === 'failed') {
    t.equal(failed.failures[0]!.error.code, ErrorCode.MANAGER_LOST)
    t.match(failed.failures[0]!.error.message, /manager a on host-a: no heartbeat for 1200 ms \(threshold 1000 ms\)/)
  }
  t.ok(toClient.some((m) => m.t === 'manager' && m.event === 'lost' && m.info.managerId === 'a'))

  // Cancel: queued -> TaskCancelled; held by b -> forwarded to b.
  const heldByB = [...core.managers.get('b')!.held.keys()]
  toManagers.length = 0
  toClient.length = 0
  core.onClientMessage({ t: 'cancel', ids: [...heldByB, 9, 'junk' as unknown as number] })
  core.flush()
  t.same(toManagers.map((m) => m.message), [{ t: 'cancel', ids: heldByB }])
  const cancelled = toClient.find((m) => m.t === 'failed')
  t.ok(cancelled?.t === 'failed' && cancelled.failures.length === 1 && cancelled.failures[0]!.id === 9)
  t.equal(cancelled?.t === 'failed' && cancelled.failures[0]!.error.code, ErrorCode.CANCELLED)
})

t.test('TaskQueue: priority order, FIFO within a priority, O(1) removal', async (t) => {
  const queue = new TaskQueue()
  const task = (id: number, pri?: number): TaskEnvelope => ({ id, try: 0, f: 0, k: 0, payload: new Uint8Array(), ...(pri === undefined ? {} : { pri }) })
  queue.push(task(1))
  queue.push(task(2))
  queue.push(task(3, 5))
  queue.push(task(4, Number.NaN)) // not a usable priority: counts as 0
  queue.push(task(5, 5))
  queue.push(task(6, -1))
  t.ok(queue.remove(2))
  t.equal(queue.remove(2), undefined)
  t.equal(queue.size, 5)
  const order: number[] = []
  for (let next = queue.shift(); next; next = queue.shift()) order.push(next.id)
  t.same(order, [3, 5, 1, 4, 6])
})

t.test('Heartbeat: expiry with an injected clock, only the oldest peers are read', async (t) => {
  let now = 0
  const hb = new Heartbeat<string>({ periodMs: 100, thresholdMs: 500, clock: () => now })
  t.equal(hb.checkIntervalMs, 25)
  hb.beat('a')
  now = 200
  hb.beat('b')
  now = 400
  hb.beat('a') // a moves behind b
  t.same(hb.expired(), [])
  now = 701
  t.same(hb.expired(), [{ peer: 'b', lastSeen: 200, silentMs: 501 }])
  now = 901
  t.same(hb.expired().map((e) => e.peer), ['b', 'a'])
  hb.forget('b')
  t.same(hb.expired().map((e) => e.peer), ['a'])
  t.ok(hb.sendDue())
  t.notOk(hb.sendDue())
  now += 100
  t.ok(hb.sendDue())
  t.throws(() => new Heartbeat({ periodMs: 0, thresholdMs: 1 }), RangeError)
})

t.test('transport helpers: loopback detection, port 0 binding, endpoints', async (t) => {
  for (const address of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) t.ok(isLoopback(address), address)
  for (const address of ['0.0.0.0', '10.0.0.1', '::', 'example.org', '128.0.0.1']) t.notOk(isLoopback(address), address)
  const socket = new Router({ linger: 0 })
  t.teardown(() => socket.close())
  const port = await bindTcp(socket, '127.0.0.1')
  t.ok(port > 0 && port < 65536)
  t.equal(portOf(socket.lastEndpoint!), port)
  t.equal(tcpEndpoint('::1', 5), 'tcp://[::1]:5')
})

t.test('CURVE keys: 0700 directory, 0600 files, role-specific loading, secret permission check', async (t) => {
  const dir = join(tempDir(t, 'keys'), 'nested', 'keys')
  const { server, client } = generateCurveKeys(dir)
  t.equal(statSync(dir).mode & 0o777, 0o700)
  t.same(loadCurveKeys(dir, 'server'), server)
  t.same(loadCurveKeys(dir, 'client'), client)
  t.equal(readFileSync(join(dir, 'client.public'), 'utf8').trim(), client.publicKey)
  t.equal(z85Decode(server.publicKey).length, 32)
  t.same(z85Decode('HelloWorld'), Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]), 'the RFC 32 test vector')
  chmodSync(join(dir, 'client.secret'), 0o644)
  t.throws(() => loadCurveKeys(dir, 'client'), { code: ErrorCode.CONFIG, message: /other users can access \(mode 0644\)/ })
  t.ok(loadCurveKeys(dir, 'client', { checkPermissions: false }))
  t.ok(loadCurveKeys(dir, 'server'), 'the server does not need client.secret')
  generateCurveKeys(dir) // regenerating tightens modes again
  t.equal(statSync(join(dir, 'client.secret')).mode & 0o777, 0o600)
})

t.test('LogLimiter: a burst per window, then a count of what was left out', async (t) => {
  const dir = tempDir(t, 'limiter')
  const path = join(dir, 'x.log')
  const logger = new Logger('x', 'info', path)
  let now = 0
  const limiter = new LogLimiter(logger, { burst: 3, windowMs: 1000, clock: () => now })
  for (let i = 0; i < 10; i++) limiter.warn('garbage', `bad frame ${i}`)
  now = 1500
  limiter.warn('garbage', 'bad frame 10')
  logger.close()
  const lines = readFileSync(path, 'utf8').trim().split('\n')
  t.equal(lines.length, 5)
  t.match(lines[3], /7 more 'garbage' warnings were suppressed/)
  t.match(lines[4], /bad frame 10/)
})

t.test('the Interchange class runs in-process with real sockets and stops cleanly', async (t) => {
  const ix = new Interchange({ heartbeatPeriodMs: 200, heartbeatThresholdMs: 5000 })
  t.teardown(() => ix.stop('teardown'))
  const ports = await ix.start()
  t.same(ix.listening, ports)
  const client = new FakeClient(t, ports.clientPort, { heartbeatMs: 200 })
  await client.hello()
  await client.next('ix_hello')
  const manager = new FakeManager(t, ports.workerPort, { id: 'in-process', workers: 3, prefetch: 1, heartbeatMs: 200 })
  await manager.register()
  await client.submit(makeTasks(0, 1000))
  await waitFor(() => client.results.size === 1000, '1000 results')
  t.equal(ix.core.stats.tasksDispatched, 1000)
  t.ok(ix.core.stats.taskMessages < 1000)
  await client.send({ t: 'shutdown' })
  t.equal(await ix.done, 'the client asked for shutdown')
  await waitFor(() => manager.of('shutdown').length === 1, 'shutdown reaches the manager')
  await t.rejects(ix.start(), /started once/)
})

t.test('dispatch fills idle workers on every manager before any prefetch (a short task never waits behind a busy manager)', async (t) => {
  const { core, toManagers, register } = harnessCore()
  register('m0', 1, 4)
  register('m1', 1, 4)
  register('m2', 2, 4)
  toManagers.length = 0
  // A long task and three short ones in one submit: one per idle worker across the managers.
  core.onClientMessage({ t: 'submit', tasks: makeTasks(0, 4), fns: FNS })
  core.flush()
  const first = tasksFor(toManagers)
  t.same(
    [...first].map(([key, list]) => [key, list.length]).sort(),
    [['m0', 1], ['m1', 1], ['m2', 2]],
    'each manager got one task per worker, none went to prefetch while a worker was idle',
  )
  // m1 answers its task: its worker is idle again and gets the next task, not m0's prefetch.
  toManagers.length = 0
  const m1Task = first.get('m1')![0]!
  core.onManagerMessage('m1', { t: 'results', results: [{ id: m1Task.id, try: 0, payload: Buffer.from('x') }], capacity: 5 })
  core.onClientMessage({ t: 'submit', tasks: makeTasks(100, 1), fns: FNS })
  core.flush()
  t.same([...tasksFor(toManagers).keys()], ['m1'], 'the manager with an idle worker gets the new task, not another one\'s prefetch')
  // Busy everywhere: more work goes to prefetch, still one message per manager per flush.
  toManagers.length = 0
  core.onClientMessage({ t: 'submit', tasks: makeTasks(200, 6), fns: FNS })
  core.flush()
  t.equal([...tasksFor(toManagers).values()].reduce((n, list) => n + list.length, 0), 6, 'prefetch takes the rest')
})
