// Priorities, cancel, drain and status against the real interchange process.

import t, { type Test } from 'tap'

import { ErrorCode } from 'tsflow'
import { FakeClient, FakeManager, makeTasks, spawnInterchange, waitFor } from './harness.js'

const FAST = { heartbeatPeriodMs: 300, heartbeatThresholdMs: 5000 }

async function connectedClient(t: Test, port: number): Promise<FakeClient> {
  const client = new FakeClient(t, port, { heartbeatMs: 300 })
  await client.hello()
  await client.next('ix_hello')
  return client
}

t.test('higher-priority queued tasks are dispatched first, FIFO within a priority', async (t) => {
  const ix = await spawnInterchange(t, FAST)
  const client = await connectedClient(t, ix.clientPort)
  // Low priority first, in one message; more tasks, some urgent, in a second message.
  await client.submit(makeTasks(0, 30, () => 0))
  await client.submit(makeTasks(30, 30, (id) => (id % 3 === 0 ? 10 : id % 3 === 1 ? 5 : -1)))
  await client.send({ t: 'status', req: 1 })
  t.equal((await client.next('status_reply')).queued, 60, 'all 60 queued while no manager is there')

  const manager = new FakeManager(t, ix.workerPort, { id: 'one', workers: 1, heartbeatMs: 300 })
  await manager.register()
  await waitFor(() => client.results.size === 60, '60 results')
  const order = manager.tasks.map((task) => task.id)
  const pri = (id: number) => (id < 30 ? 0 : id % 3 === 0 ? 10 : id % 3 === 1 ? 5 : -1)
  const expected = Array.from({ length: 60 }, (_, id) => id).sort((a, b) => pri(b) - pri(a) || a - b)
  t.same(order, expected, 'dispatch order follows priority, then arrival')
  t.equal(manager.of('tasks').length, 60, 'capacity 1: one task per message')
})

t.test('cancel: queued tasks fail with TaskCancelled, held ones are forwarded to their manager', async (t) => {
  const ix = await spawnInterchange(t, FAST)
  const client = await connectedClient(t, ix.clientPort)
  await client.submit(makeTasks(0, 100))
  await client.send({ t: 'cancel', ids: Array.from({ length: 40 }, (_, i) => i) })
  await waitFor(() => client.failures.size === 40, '40 cancellations')
  for (let id = 0; id < 40; id++) {
    const failure = client.failures.get(id)!
    t.equal(failure.error.code, ErrorCode.CANCELLED, `task ${id} cancelled`)
    t.equal(failure.try, 0)
  }
  t.equal(client.of('failed').length, 1, 'reported in one message')

  const manager = new FakeManager(t, ix.workerPort, { id: 'holder', workers: 8, prefetch: 2, echo: false, heartbeatMs: 300 })
  await manager.register()
  await waitFor(() => manager.held.size === 10, 'the manager to hold 10 tasks')
  t.same([...manager.held.keys()], Array.from({ length: 10 }, (_, i) => 40 + i), 'cancelled tasks were never dispatched')

  // 40, 41 are on the manager; 99 is queued; 5 was already cancelled; 12345 never existed.
  await client.send({ t: 'cancel', ids: [40, 41, 99, 5, 12345] })
  const forwarded = await manager.next('cancel')
  t.same(forwarded.ids, [40, 41], 'the manager is asked to cancel the tasks it holds')
  await waitFor(() => client.failures.has(99), 'the queued task 99 cancelled')
  t.notOk(client.failures.has(40), 'held tasks are reported by the manager, not the interchange')

  await client.send({ t: 'status', req: 2 })
  const status = await client.next('status_reply')
  t.equal(status.queued, 100 - 40 - 10 - 1, 'queue length excludes cancelled and dispatched tasks')
  t.equal(status.managers[0]?.outstanding, 10)
})

t.test('drain: the block gets no new tasks, its managers are told, drained managers leave', async (t) => {
  const ix = await spawnInterchange(t, FAST)
  const client = await connectedClient(t, ix.clientPort)
  const a = new FakeManager(t, ix.workerPort, { id: 'a1', blockId: 'A', workers: 4, heartbeatMs: 300 })
  const b = new FakeManager(t, ix.workerPort, { id: 'b1', blockId: 'B', workers: 4, heartbeatMs: 300 })
  await a.register()
  await b.register()
  await waitFor(() => client.of('manager').length === 2, 'two registrations')

  await client.send({ t: 'drain', blockIds: ['A'] })
  await a.next('drain')
  t.equal(b.of('drain').length, 0, 'the other block is not drained')
  await client.send({ t: 'status', req: 3 })
  const status = await client.next('status_reply')
  t.same(
    status.managers.map((m) => [m.managerId, m.draining]).sort(),
    [['a1', true], ['b1', false]],
  )

  await client.submit(makeTasks(0, 200))
  await waitFor(() => client.results.size === 200, '200 results')
  t.equal(a.tasks.length, 0, 'the draining manager got nothing')
  t.equal(b.tasks.length, 200)

  // A manager of the drained block registering later drains at once.
  const late = new FakeManager(t, ix.workerPort, { id: 'a2', blockId: 'A', workers: 4, heartbeatMs: 300 })
  await late.register()
  await late.next('drain')

  await a.send({ t: 'drained' })
  await waitFor(() => client.of('manager').some((m) => m.event === 'drained'), 'a drained event')
  const drained = client.of('manager').find((m) => m.event === 'drained')!
  t.equal(drained.info.managerId, 'a1')
  await client.send({ t: 'status', req: 4 })
  await waitFor(() => client.of('status_reply').length === 2, 'second status')
  t.same(client.of('status_reply')[1]!.managers.map((m) => m.managerId).sort(), ['a2', 'b1'])
  t.equal(client.failures.size, 0)
})
