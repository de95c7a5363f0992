// 10,000 tasks through the real interchange process to two fake managers and back.

import t from 'tap'

import { FakeClient, FakeManager, makeTasks, spawnInterchange, waitFor } from './harness.js'

t.test('10,000 tasks are spread by capacity, batched both ways, and all come back', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 500, heartbeatThresholdMs: 5000 })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 500 })
  await client.hello()
  const hello = await client.next('ix_hello')
  t.equal(hello.clientPort, ix.clientPort)
  t.equal(hello.workerPort, ix.workerPort)

  const big = new FakeManager(t, ix.workerPort, { id: 'big', workers: 24, prefetch: 8, heartbeatMs: 500 })
  const small = new FakeManager(t, ix.workerPort, { id: 'small', workers: 4, prefetch: 0, heartbeatMs: 500 })
  await big.register()
  await small.register()
  await waitFor(() => client.of('manager').filter((m) => m.event === 'registered').length === 2, 'two registrations')
  t.ok(big.inbox.some((m) => m.t === 'registered'), 'manager got registered')

  const total = 10_000
  for (let from = 0; from < total; from += 2500) await client.submit(makeTasks(from, 2500))
  await waitFor(() => client.results.size === total, `${total} results`, 60_000)

  for (let id = 0; id < total; id++) {
    const result = client.results.get(id)
    if (!result || Buffer.from(result.payload).toString() !== `payload-${id}`) {
      t.fail(`result ${id} missing or wrong`)
      break
    }
  }
  t.equal(client.failures.size, 0, 'no failures')
  t.equal(big.tasks.length + small.tasks.length, total, 'each task dispatched once')
  t.ok(big.maxHeld <= big.capacity, `big never held more than its capacity (${big.maxHeld} <= ${big.capacity})`)
  t.ok(small.maxHeld <= small.capacity, `small never held more than its capacity (${small.maxHeld} <= ${small.capacity})`)
  t.ok(big.tasks.length > small.tasks.length * 2, `bigger manager got more (${big.tasks.length} vs ${small.tasks.length})`)
  t.ok(small.tasks.length > 0, 'small manager got some')

  const taskMessages = big.of('tasks').length + small.of('tasks').length
  const resultMessages = client.of('results').length
  t.ok(taskMessages < total / 4, `tasks went out in ${taskMessages} messages`)
  t.ok(resultMessages < total / 4, `results came back in ${resultMessages} messages`)
  t.comment(`dispatch: ${taskMessages} task messages, ${resultMessages} result messages for ${total} tasks`)

  await client.send({ t: 'shutdown' })
  await waitFor(() => big.of('shutdown').length > 0 && small.of('shutdown').length > 0, 'managers told to shut down')
  t.equal(await ix.exited, 0, 'interchange exited cleanly after shutdown')
  const log = await ix.log()
  t.match(log, /client test-client connected/)
  t.match(log, /stopped: the client asked for shutdown/)
})
