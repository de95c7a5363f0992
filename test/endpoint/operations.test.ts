// Endpoint operations beyond submit and results: cancel, bye, refusals, blocks that cannot start.
import { appendFileSync } from 'node:fs'

import t from 'tap'

import { RawClient, fixtureTask, startEndpoint, waitFor } from './harness.js'

t.test('cancel of a queued task fails it under the session id; bye forget cancels the rest and forgets the session', async (t) => {
  const ep = await startEndpoint(t, { prefetchCapacity: 0, maxWorkersPerNode: 1 })
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.hello('cancels')
  await client.submit([1, 2, 3].map((id) => fixtureTask(client.fns, id, 'sleep', [30_000])))
  await waitFor(async () => (await client.status()).running === 1, 'one task running')
  await client.send({ t: 'cancel', ids: [3] })
  await waitFor(() => client.outcomes.has(3), 'the cancelled task to fail')
  const [outcome] = client.outcomes.get(3)!
  t.equal(outcome!.error!.name, 'TaskCancelled')
  t.match(outcome!.error!.message, /task #3 .*cancelled while queued in endpoint ep/)

  await client.send({ t: 'bye', forget: true })
  const other = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await other.hello('watcher')
  await waitFor(async () => {
    const status = await other.status()
    return status.queued === 0 && status.running === 0
  }, 'the forgotten session to have nothing queued or running')
  const status = await other.status()
  t.same(status.sessions.map((s) => s.session), ['watcher'], 'the session is gone')
  t.match(ep.log(), /session cancels: client \S+ left for good; 2 outstanding tasks cancelled/)
})

t.test('messages before ep_hello, and a hello of another version, are refused', async (t) => {
  const ep = await startEndpoint(t, { provider: { type: 'local', initBlocks: 0, minBlocks: 0, maxBlocks: 1 } })
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.send({ t: 'status', req: 1 })
  const refused = await client.next((m) => m.t === 'refused')
  t.match(refused, { reason: /no session .*ep_hello/ })
  await client.send({ t: 'ep_hello', session: 's', client: 'old', proto: 0, version: '0.0.1' })
  const mismatch = await client.next((m) => m.t === 'refused' && /version/i.test(m.reason))
  t.match(mismatch, { reason: /0\.0\.1/ })
  await t.rejects(client.hello('bad name with spaces'), /session name .* must be 1 to 128 printable characters/)
})

t.test('blocks that cannot start fail the waiting tasks with the provider error, never a hang', async (t) => {
  const ep = await startEndpoint(t, {
    provider: { type: 'local', initBlocks: 0, minBlocks: 0, maxBlocks: 1, workerInit: 'exit 7' },
    strategyPeriodMs: 200,
  })
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.hello('doomed')
  await client.submit([fixtureTask(client.fns, 1, 'add', [1, 2])])
  await waitFor(() => client.outcomes.has(1), 'the task to fail', 30_000)
  const [outcome] = client.outcomes.get(1)!
  t.equal(outcome!.error!.code, 'E_PROVIDER')
  t.match(outcome!.error!.message, /failed before any manager connected, so no task of endpoint ep can run/)
  t.equal((await client.status()).queued, 0, 'taken out of the queue')
})

t.test('an allow-list edited into a bad state keeps the previous list, with the error logged', async (t) => {
  const ep = await startEndpoint(t, { provider: { type: 'local', initBlocks: 0, minBlocks: 0, maxBlocks: 1 } })
  appendFileSync(ep.paths.allowedClients, 'not a key\n')
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  const welcome = await client.hello('still-in')
  t.equal(welcome.session, 'still-in', 'the key admitted before is admitted still')
  t.match(ep.log(), /allowed_clients:\d+ is not a client public key .*; keeping the previous allow-list \(1 keys\)/)
})
