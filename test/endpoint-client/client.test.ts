// EndpointClient: a process that did not submit the tasks joins their session and collects them
// (finished ones the endpoint kept, outstanding ones as they finish), each once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, EndpointClient, EndpointExecutor, EndpointStopped, ShutdownError, TaskState } from 'tsflow'
import * as apps from '../fixtures/endpoint-apps.js'
import { startEndpoint } from '../helpers/endpoint.js'
import { waitFor } from '../helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-endpoint-client-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('a named session: the executor shuts down with tasks outstanding, a client collects them all once', async (t) => {
  const endpoint = await startEndpoint(t)
  const session = 'collect-me'
  const executor = new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, session })
  const kernel = new DataFlowKernel({ runDir: join(scratch, 'first'), executors: [executor] })
  await kernel.start()
  const gate = join(scratch, 'gate')
  const done = apps.square.map([[1], [2], [3]], { dfk: kernel })
  t.same(await Promise.all(done), [1, 4, 9], 'three finished and acknowledged by the first process')
  const held = apps.gatedSquare.map(Array.from({ length: 6 }, (_, i) => [10 + i, gate]), { dfk: kernel })
  await waitFor(() => held.some((f) => f.state === TaskState.running), 'a held task running')
  // Shut down without waiting: the tasks stay at the endpoint under the session.
  await kernel.cleanup({ deadlineMs: 0 })
  for (const error of await Promise.all(held.map((f) => f.then(() => undefined, (e: unknown) => e)))) {
    t.ok(error instanceof ShutdownError, 'the first process gave up on them locally')
  }

  const client = await EndpointClient.connect({ endpoint: endpoint.name, home: endpoint.home, session })
  t.teardown(() => client.close({ forget: true }))
  t.equal(client.outstanding.length, 6, 'the welcome lists the six outstanding tasks')
  const none = await client.collect({ timeoutMs: 300 })
  t.same(none, [], 'nothing finished yet: collect returns what arrived by the timeout')
  writeFileSync(gate, '')
  const results = await client.collect({ timeoutMs: 30_000 })
  t.same(results.map((r) => r.value).sort((a, b) => (a as number) - (b as number)), [100, 121, 144, 169, 196, 225], 'each held task once, none of the acknowledged ones')
  t.equal(new Set(results.map((r) => `${r.id}:${r.try}`)).size, 6, 'distinct (id, try)')
  t.ok(results.every((r) => r.ok), 'all succeeded')
  t.same(client.outstanding, [], 'nothing outstanding')
  const status = await client.status()
  t.match(status.sessions.find((s) => s.session === session), { outstanding: 0, retained: 0 }, 'all acknowledged')
  t.same(await client.collect({ timeoutMs: 100 }), [], 'a second collect gets nothing again')
})

t.test('a client of a session whose endpoint stops: the outstanding task is collected as EndpointStopped, no hang', async (t) => {
  const endpoint = await startEndpoint(t)
  const session = 'stopping'
  const executor = new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, session })
  const kernel = new DataFlowKernel({ runDir: join(scratch, 'stop'), executors: [executor] })
  await kernel.start()
  const held = apps.gatedSquare.map([[1, join(scratch, 'never')]], { dfk: kernel })
  await waitFor(() => held[0]!.state === TaskState.running, 'the task running')
  await kernel.cleanup({ deadlineMs: 0 })
  await held[0]!.catch(() => undefined)
  const client = await EndpointClient.connect({ endpoint: endpoint.name, home: endpoint.home, session })
  t.teardown(() => client.close())
  const collecting = client.collect()
  await endpoint.server.stop('stopped by the test')
  const outcome = await collecting.then((results) => results, (error: unknown) => error)
  // The stop fails the outstanding task first (a failure the collector receives), then says stopping.
  if (Array.isArray(outcome)) {
    t.equal(outcome.length, 1)
    t.ok(outcome[0]!.error instanceof EndpointStopped, `the task failed with EndpointStopped (got ${outcome[0]!.error})`)
  } else {
    t.ok(outcome instanceof EndpointStopped, `EndpointStopped (got ${outcome})`)
  }
})

t.test('forgetOnShutdown: the endpoint forgets the session, nothing is left to collect', async (t) => {
  const endpoint = await startEndpoint(t)
  const session = 'forget-me'
  const executor = new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, session, forgetOnShutdown: true })
  const kernel = new DataFlowKernel({ runDir: join(scratch, 'forget'), executors: [executor] })
  await kernel.start()
  const held = apps.gatedSquare.map(Array.from({ length: 4 }, (_, i) => [i, join(scratch, 'forget-never')]), { dfk: kernel })
  await waitFor(() => held.some((f) => f.state === TaskState.running), 'a held task running')
  await kernel.cleanup({ deadlineMs: 0 })
  await Promise.all(held.map((f) => f.catch(() => undefined)))
  const client = await EndpointClient.connect({ endpoint: endpoint.name, home: endpoint.home, session })
  t.teardown(() => client.close({ forget: true }))
  t.same(client.outstanding, [], 'the session starts empty: its tasks were cancelled')
  t.same(await client.collect({ timeoutMs: 200 }), [], 'and nothing was kept')
})
