// Version mismatches and lost managers, against the real interchange process.

import t from 'tap'

import { ErrorCode } from 'tsflow'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from 'tsflow/protocol'
import { FakeClient, FakeManager, makeTasks, spawnInterchange, waitFor } from './harness.js'

t.test('a manager of another version is refused, naming both versions; the client hears of it', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 300, heartbeatThresholdMs: 3000 })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 300 })
  await client.hello()
  await client.next('ix_hello')

  const old = new FakeManager(t, ix.workerPort, { id: 'old', workers: 2, heartbeatMs: 300, version: { proto: PROTOCOL_VERSION + 1, version: '0.0.1-old' } })
  await old.register()
  const refused = await old.next('refused')
  t.match(refused.reason, '0.0.1-old', "names the manager's version")
  t.match(refused.reason, TSFLOW_VERSION, "names the interchange's version")
  t.match(refused.reason, `protocol ${PROTOCOL_VERSION + 1}`)
  t.match(refused.reason, `protocol ${PROTOCOL_VERSION}`)

  const event = await client.next('manager')
  t.equal(event.event, 'refused')
  t.equal(event.info.managerId, 'old')
  t.match(event.reason ?? '', '0.0.1-old')

  // The refused manager never gets work; a good one does.
  const good = new FakeManager(t, ix.workerPort, { id: 'good', workers: 2, heartbeatMs: 300 })
  await good.register()
  await client.submit(makeTasks(0, 20))
  await waitFor(() => client.results.size === 20, '20 results')
  t.equal(old.tasks.length, 0, 'refused manager got no tasks')
  await waitFor(() => old.of('refused').length >= 2, 'its heartbeats refused too')
  t.match(old.of('refused')[1]!.reason, /not registered/)
})

t.test('a client of another version is refused, naming both versions', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 300, heartbeatThresholdMs: 3000 })
  const client = new FakeClient(t, ix.clientPort)
  await client.hello('old-client', { proto: PROTOCOL_VERSION, version: '9.9.9' })
  const refused = await client.next('refused')
  t.match(refused.reason, '9.9.9')
  t.match(refused.reason, TSFLOW_VERSION)
  t.equal(client.of('ix_hello').length, 0)
})

t.test('a manager that stops heartbeating is declared lost and its tasks fail with ManagerLost', async (t) => {
  const thresholdMs = 1500
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 200, heartbeatThresholdMs: thresholdMs })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 200 })
  await client.hello()
  await client.next('ix_hello')

  // `silent` takes tasks and keeps them (no echo); `alive` is not given work (registers later).
  const silent = new FakeManager(t, ix.workerPort, { id: 'silent', workers: 3, prefetch: 1, echo: false, heartbeatMs: 200 })
  await silent.register()
  await silent.next('registered')
  await client.submit(makeTasks(0, 10))
  await waitFor(() => silent.held.size === 4, 'the silent manager to hold 4 tasks')
  const alive = new FakeManager(t, ix.workerPort, { id: 'alive', workers: 1, heartbeatMs: 200, echo: false })
  await alive.register()
  await waitFor(() => alive.held.size === 1, 'the live manager to hold a task')

  silent.stopHeartbeats() // as if the process had frozen or died: only silence is visible
  const stoppedAt = Date.now()
  await waitFor(() => client.failures.size === 4, 'failures for the 4 held tasks', thresholdMs + 3000)
  const elapsed = Date.now() - stoppedAt
  t.ok(elapsed <= thresholdMs + 1000, `lost within threshold + 1 s (${elapsed} ms)`)
  t.ok(elapsed >= thresholdMs - 250, `not before the threshold (${elapsed} ms)`)

  for (const id of silent.held.keys()) {
    const failure = client.failures.get(id)
    t.ok(failure, `task ${id} reported failed`)
    t.equal(failure?.error.code, ErrorCode.MANAGER_LOST)
    t.equal(failure?.error.name, 'ManagerLost')
    t.match(failure?.error.message ?? '', /manager silent on test-host: no heartbeat for \d+ ms/)
    t.equal(failure?.error.props?.managerId, 'silent')
    t.equal(failure?.error.props?.host, 'test-host')
    t.type(failure?.error.props?.lastHeartbeat, 'number')
  }
  const lost = await waitFor(() => client.of('manager').some((m) => m.event === 'lost'), 'a lost event').then(() =>
    client.of('manager').find((m) => m.event === 'lost')!,
  )
  t.equal(lost.info.managerId, 'silent')
  t.equal(lost.info.outstanding, 4)
  t.match(lost.reason ?? '', /no heartbeat/)
  t.notOk(client.failures.has([...alive.held.keys()][0]!), "the live manager's task is untouched")

  // A late message from the lost manager is refused, and its results are not forwarded.
  await silent.answer()
  const refused = await silent.next('refused')
  t.match(refused.reason, /no longer registered: declared lost/)
  await alive.answer()
  await waitFor(() => client.results.size >= 1, "the live manager's result")
  t.notOk([...silent.tasks].some((task) => client.results.has(task.id)), 'no result forwarded from the lost manager')

  await client.send({ t: 'status', req: 7 })
  const status = await client.next('status_reply')
  t.same(status.managers.map((m) => m.managerId), ['alive'])
  t.match(await ix.log(), /manager silent \(host test-host, block block-0, pid \d+\) lost: no heartbeat for \d+ ms/)
})
