// The manager in its default mode (worker threads) against a fake interchange.
import { createServer, type AddressInfo } from 'node:net'
import t from 'tap'
import { encode } from '../../dist/serialize/codec.js'

import { ShutdownError, TaskCancelled, WalltimeExceeded, WorkerLost } from 'tsflow'
import { nativeAvailable, onlineCpuCount } from 'tsflow/native'
import { PROTOCOL_VERSION } from 'tsflow/protocol'
import type { WorkerFacts } from './fixtures/apps.js'
import { FakeInterchange, spawnManager, task, waitFor } from './harness.js'

t.test('registers, runs tasks and returns their results', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 2, prefetchCapacity: 4 })
  await waitFor(() => ix.registers.length === 1, 'register')
  const register = ix.registers[0]!
  t.match(register, { managerId: manager.id, blockId: 'b0', workers: 2, prefetch: 4, pid: manager.child.pid, proto: PROTOCOL_VERSION })
  t.type(register.host, 'string')

  await ix.sendTasks([task(1, 'add', [2, 3]), task(2, 'fail', ['nope']), task(3, 'sleep', [10]), task(4, 'missing')])
  const [sum, failed, slept, missing] = await ix.outcomesOf([1, 2, 3, 4])
  t.same(sum, { ok: true, value: 5 })
  t.equal(failed!.ok, false)
  t.equal(failed!.error!.name, 'RangeError')
  t.equal(failed!.error!.message, 'nope')
  t.equal(slept!.value, manager.child.pid, 'threads run inside the manager process')
  t.equal(missing!.error!.code, 'E_APP_NOT_FOUND')
  t.equal(ix.capacities.at(-1), 6, 'idle again: capacity = workers + prefetch')

  await ix.send({ t: 'shutdown' })
  t.same(await manager.exit, { code: 0, signal: null })
})

t.test('garbage frames are dropped and the manager keeps working', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 1 })
  await waitFor(() => ix.registered > 0, 'registration')
  await ix.sendRaw(Buffer.from('definitely not msgpack \xff\xfe'))
  await ix.sendRaw(Buffer.from([0xc1]))
  await ix.send({ t: 'submit', tasks: [] } as never)
  await ix.sendRaw(encode({ t: 'tasks', tasks: [{ id: 'x' }] }))
  await ix.sendTasks([{ ...task(7, 'add', [1, 1]), payload: Buffer.from([0x93, 1, 2]) }, task(8, 'add', [1, 1])])
  const [bad, good] = await ix.outcomesOf([7, 8])
  t.equal(bad!.error!.code, 'E_SERIALIZATION', 'an unreadable payload fails only its task')
  t.same(good, { ok: true, value: 2 })
  // A function id the manager was never sent (no function table entry) fails only that task.
  await ix.send({ t: 'tasks', tasks: [{ ...task(9, 'add', [1, 1]), f: 99 }] })
  const [unknown] = await ix.outcomesOf([9])
  t.equal(unknown!.error!.code, 'E_PROTOCOL', 'a task naming an unknown function fails with ProtocolError')
  t.match(unknown!.error!.message, /task #9 names function 99/)
  t.notOk(manager.exited())
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('a refused registration exits non-zero with the reason on stderr', async (t) => {
  const ix = await FakeInterchange.start(t, { refuse: 'version mismatch: protocol 99' })
  const manager = spawnManager(t, ix, { workers: 1 })
  const { code } = await manager.exit
  t.not(code, 0)
  t.equal(code, 3)
  t.match(manager.stderr(), /refused.*version mismatch: protocol 99/)
})

t.test('the manager exits on its own when the interchange falls silent', async (t) => {
  const ix = await FakeInterchange.start(t, { heartbeatPeriodMs: 50, heartbeatThreshold: 400 })
  const manager = spawnManager(t, ix, { workers: 1 })
  await waitFor(() => ix.registered > 0, 'registration')
  await waitFor(() => ix.count('heartbeat') > 0, 'a heartbeat from the manager')
  const { code } = await manager.exit
  t.equal(code, 4)
  t.match(manager.stderr(), /presuming it lost/)
})

t.test('an interchange whose connection closes for good: the manager exits at once, not after the threshold', async (t) => {
  const ix = await FakeInterchange.start(t)
  // A threshold far beyond the wait below: only the closed connection can explain the exit.
  const manager = spawnManager(t, ix, { workers: 1, heartbeatPeriodMs: 1000, heartbeatThresholdMs: 60_000 })
  await waitFor(() => ix.registered > 0, 'registration')
  ix.close()
  let code: number | null | undefined
  void manager.exit.then((exit) => (code = exit.code))
  await waitFor(() => code !== undefined, 'the manager to exit', 10_000)
  t.equal(code, 4)
  t.match(manager.stderr(), /connection to the interchange .* is closed .* presuming it gone/)
})

t.test('an interchange that is not there at all: the manager gives up within seconds, not after the threshold', async (t) => {
  // A port nothing listens on: every connection attempt is refused.
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  const manager = spawnManager(t, { endpoint: `tcp://127.0.0.1:${port}` }, { workers: 1, heartbeatThresholdMs: 60_000 })
  let code: number | null | undefined
  void manager.exit.then((exit) => (code = exit.code))
  await waitFor(() => code !== undefined, 'the manager to exit', 10_000)
  t.equal(code, 4)
  t.match(manager.stderr(), /could not connect to the interchange at tcp:\/\/127\.0\.0\.1:\d+ from \S+ for \d+ ms; check that this node can reach that address \(the executor's address option/)
})

t.test('heartbeats from the interchange keep a manager with a small threshold alive', async (t) => {
  const ix = await FakeInterchange.start(t, { heartbeatPeriodMs: 50, heartbeatThreshold: 400, echoHeartbeats: true })
  const manager = spawnManager(t, ix, { workers: 1 })
  await waitFor(() => ix.count('heartbeat') >= 20, '20 heartbeats (about 1 s)')
  t.notOk(manager.exited(), 'still running after more than twice the threshold')
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('walltime stops a thread running a long task; the pool carries on', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 2 })
  await waitFor(() => ix.registered > 0, 'registration')
  await ix.sendTasks([task(1, 'sleep', [30_000], { wt: 0.3 }), task(2, 'add', [1, 2])])
  const [slow, quick] = await ix.outcomesOf([1, 2])
  t.ok(slow!.error instanceof WalltimeExceeded, `walltime: ${slow!.error?.message}`)
  t.same(quick, { ok: true, value: 3 })
  await ix.sendTasks([task(3, 'add', [2, 2]), task(4, 'add', [3, 3])])
  t.same((await ix.outcomesOf([3, 4])).map((o) => o.value), [4, 6])
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('cancel drops queued tasks with TaskCancelled; drain finishes the rest and exits 0', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 1, prefetchCapacity: 10 })
  await waitFor(() => ix.registered > 0, 'registration')
  // One worker, busy for a while: the two behind it stay queued in the manager.
  await ix.sendTasks([task(1, 'sleep', [300]), task(2, 'add', [1, 1]), task(3, 'add', [2, 2])])
  await ix.send({ t: 'cancel', ids: [3] })
  await ix.send({ t: 'drain' })
  const [first, second, third] = await ix.outcomesOf([1, 2, 3])
  t.equal(first!.ok, true)
  t.same(second, { ok: true, value: 2 })
  t.ok(third!.error instanceof TaskCancelled, 'the cancelled task is answered, not lost')
  await waitFor(() => ix.count('drained') === 1, 'drained')
  t.equal(ix.capacities.at(-1), 0, 'a draining manager announces no capacity')
  t.same(await manager.exit, { code: 0, signal: null })
})

const pinnable = nativeAvailable() && onlineCpuCount() >= 2

t.test('threads: each thread pins itself (block affinity) and sees its own accelerator', { skip: pinnable ? false : 'needs the native addon and 2 CPUs' }, async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 2, cpuAffinity: 'block', accelerators: ['a', 'b'] })
  await waitFor(() => ix.registered > 0, 'registration')
  await ix.sendTasks([task(1, 'whoamiAfter', [300]), task(2, 'whoamiAfter', [300])])
  const facts = (await ix.outcomesOf([1, 2])).map((o) => o.value as WorkerFacts)
  t.not(facts[0]!.threadId, facts[1]!.threadId, 'two different threads')
  t.same(facts.map((f) => `${f.rank}:${f.accelerator}:${f.cpus.join(',')}`).sort(), ['0:a:0', '1:b:1'])
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('threads: process.exit in a task ends only its thread: WorkerLost with the exit code', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 2 })
  await waitFor(() => ix.registered > 0, 'registration')
  await ix.sendTasks([task(1, 'exitWith', [3])])
  const [lost] = await ix.outcomesOf([1])
  t.ok(lost!.error instanceof WorkerLost, String(lost!.error?.message))
  t.equal(lost!.error!.exitCode, 3)
  await ix.sendTasks([task(2, 'add', [1, 2]), task(3, 'add', [2, 3])])
  t.same((await ix.outcomesOf([2, 3])).map((o) => o.value), [3, 5])
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('SIGTERM answers the tasks it abandons with ShutdownError, then exits 0', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 1, prefetchCapacity: 5, heartbeatPeriodMs: 50 })
  await waitFor(() => ix.registered > 0, 'registration')
  // The second task has a walltime, so it waits in the manager for an idle worker.
  await ix.sendTasks([task(1, 'sleep', [60_000]), task(2, 'add', [1, 1], { wt: 100 })])
  await waitFor(() => ix.messages.some((m) => m.t === 'heartbeat' && m.outstanding === 2), 'a heartbeat counting both tasks')
  manager.child.kill('SIGTERM')
  const [running, queued] = await ix.outcomesOf([1, 2])
  t.ok(running!.error instanceof ShutdownError, String(running!.error?.message))
  t.match(running!.error!.message, /received SIGTERM .*task #1 \(sleep\) was handed to a worker/)
  t.match(queued!.error!.message, /task #2 \(add\) was waiting in its queue/)
  t.same(await manager.exit, { code: 0, signal: null })
})
