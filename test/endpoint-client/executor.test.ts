// EndpointExecutor against a real EndpointServer in this process (interchange, local block,
// manager and worker processes): many tasks with dependencies, remote exceptions, refused and
// wrong keys, a network drop mid-run, the endpoint stopping with work queued, two sessions.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { curveKeyPair } from 'zeromq'
import { DataFlowKernel, EndpointExecutor, EndpointStopped, EndpointRefused, EndpointUnreachable, ErrorCode, TaskState, awaitAll, type EndpointExecutorOptions } from 'tsflow'
import * as apps from '../fixtures/endpoint-apps.js'
import { startEndpoint, type TestEndpoint } from '../helpers/endpoint.js'
import { tcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'

const run = promisify(execFile)
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-endpoint-executor-'))
t.teardown(() => (process.env.KEEP_ENDPOINT_HOME ? t.comment(`kept ${scratch}`) : rmSync(scratch, { recursive: true, force: true })))

function executor(endpoint: TestEndpoint, extra: Partial<EndpointExecutorOptions> = {}): EndpointExecutor {
  return new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, helloTimeoutMs: 3000, ...extra })
}

async function kernelOn(t: Test, name: string, ...executors: EndpointExecutor[]): Promise<DataFlowKernel> {
  const kernel = new DataFlowKernel({ runDir: join(scratch, name), executors })
  t.teardown(() => kernel.cleanup({ deadlineMs: 2000 }))
  await kernel.start()
  return kernel
}

t.test('many tasks by name: batches, dependencies, running states, every result right', async (t) => {
  const endpoint = await startEndpoint(t)
  const ep = executor(endpoint)
  const kernel = await kernelOn(t, 'many', ep)
  const n = 300
  const futures = apps.square.map(Array.from({ length: n }, (_, i) => [i]), { dfk: kernel })
  // Dependencies: each sums two results of the first wave (futures as arguments).
  const chained = Array.from({ length: 20 }, (_, i) => apps.slowSquare.with({ dfk: kernel })(futures[i]!, 5))
  const values = await awaitAll(futures)
  t.same(values, Array.from({ length: n }, (_, i) => i * i))
  t.same(await Promise.all(chained), Array.from({ length: 20 }, (_, i) => (i * i) ** 2))
  const gate = join(scratch, 'many-gate')
  const held = apps.gatedSquare.with({ dfk: kernel })(7, gate)
  await waitFor(() => held.state === TaskState.running, 'the gated task to be dispatched (running)')
  writeFileSync(gate, '')
  t.equal(await held, 49)
  t.equal(ep.outstanding, 0)
  const status = await ep.status()
  const mine = status.sessions.find((s) => s.session === ep.session)
  t.match(mine, { connected: true, outstanding: 0, retained: 0 }, 'every result acknowledged')
  t.equal(status.totals.tasksReceived, n + 21, 'each task sent once')
  t.match(ep.describe(), { type: 'endpoint', endpoint: endpoint.name, session: ep.session })
})

t.test('a remote exception arrives with its message, class, cause and stack', async (t) => {
  const endpoint = await startEndpoint(t)
  const kernel = await kernelOn(t, 'exception', executor(endpoint))
  const error = (await apps.explode.with({ dfk: kernel })('boom').then(() => undefined, (e: unknown) => e)) as Error
  t.ok(error instanceof Error)
  t.match(error.message, /outer boom/)
  t.match(String(error.stack), /endpoint-apps/, 'the stack names the module that threw')
  t.match((error.cause as Error)?.message, /inner boom/)
})

t.test('a client key not on the allow-list: EndpointRefused; a wrong server key: EndpointUnreachable; both within the bound', async (t) => {
  const endpoint = await startEndpoint(t, {}, { allowClient: false })
  const refused = await new DataFlowKernel({ runDir: join(scratch, 'refused'), executors: [executor(endpoint)] }).start().then(() => undefined, (e: unknown) => e as Error)
  t.ok(refused instanceof EndpointRefused, `EndpointRefused (got ${refused})`)
  t.match(refused!.message, `npx tsflow endpoint allow ${endpoint.name} ${endpoint.clientKey}`)

  const allowed = await startEndpoint(t, {}, { name: 'ep2' })
  const started = Date.now()
  const wrongKey = new EndpointExecutor({ endpoint: allowed.address, serverKey: curveKeyPair().publicKey, home: allowed.home, helloTimeoutMs: 1500 })
  const error = await new DataFlowKernel({ runDir: join(scratch, 'wrong-key'), executors: [wrongKey] }).start().then(() => undefined, (e: unknown) => e as Error)
  t.ok(error instanceof EndpointUnreachable, `EndpointUnreachable (got ${error})`)
  t.match(error!.message, allowed.address)
  t.match(error!.message, /serverKey/)
  t.ok(Date.now() - started < 6000, `within the bound (${Date.now() - started} ms)`)
})

t.test('the connection dropped mid-run: the client resumes and every task is reported once', async (t) => {
  const endpoint = await startEndpoint(t)
  const proxy = await tcpProxy('127.0.0.1', endpoint.state.clientPort)
  t.teardown(() => proxy.close())
  const ep = new EndpointExecutor({ endpoint: `tcp://127.0.0.1:${proxy.port}`, serverKey: endpoint.state.serverPublicKey, home: endpoint.home, heartbeatPeriodMs: 200 })
  const kernel = await kernelOn(t, 'drop', ep)
  const n = 120
  const futures = apps.slowSquare.map(Array.from({ length: n }, (_, i) => [i, 20]), { dfk: kernel })
  let done = 0
  for (const future of futures) void future.then(() => done++, () => done++)
  await waitFor(() => done >= 20, '20 results before the drop')
  proxy.drop()
  t.comment(`dropped ${proxy.drops} connections after ${done} results`)
  const values = await awaitAll(futures)
  t.same(values, Array.from({ length: n }, (_, i) => i * i), 'every result, right')
  const status = await ep.status()
  const mine = status.sessions.find((s) => s.session === ep.session)
  t.match(mine, { outstanding: 0, retained: 0 }, 'nothing left unacknowledged')
  t.equal(status.totals.resultsSent, n, 'each task ran once: none was sent twice')
})

t.test('the endpoint stops with work queued: futures reject with EndpointStopped at once', async (t) => {
  const endpoint = await startEndpoint(t)
  const kernel = await kernelOn(t, 'stopped', executor(endpoint))
  const gate = join(scratch, 'never')
  const futures = apps.gatedSquare.map(Array.from({ length: 10 }, (_, i) => [i, gate]), { dfk: kernel })
  await waitFor(() => futures.filter((f) => f.state === TaskState.running).length >= 2, 'two tasks running, the rest queued')
  const stoppedAt = Date.now()
  await endpoint.server.stop('stopped by the test')
  const errors = await Promise.all(futures.map((f) => f.then(() => undefined, (e: unknown) => e as Error)))
  const elapsed = Date.now() - stoppedAt
  for (const error of errors) {
    t.ok(error instanceof EndpointStopped, `EndpointStopped (got ${error})`)
    t.equal((error as EndpointStopped).code, ErrorCode.ENDPOINT_STOPPED)
  }
  t.ok(elapsed < 5000, `rejected within ${elapsed} ms of the stop`)
})

t.test('two executors, two sessions, one endpoint at once', async (t) => {
  const endpoint = await startEndpoint(t)
  const a = executor(endpoint, { label: 'ep-a' })
  const b = executor(endpoint, { label: 'ep-b' })
  const kernel = await kernelOn(t, 'two', a, b)
  t.not(a.session, b.session)
  const n = 100
  const [onA, onB] = await Promise.all([
    awaitAll(apps.squareOnA.map(Array.from({ length: n }, (_, i) => [i]), { dfk: kernel })),
    awaitAll(apps.squareOnB.map(Array.from({ length: n }, (_, i) => [i]), { dfk: kernel })),
  ])
  t.same(onA, Array.from({ length: n }, (_, i) => i * i))
  t.same(onB, Array.from({ length: n }, (_, i) => -i * i))
  const sessions = (await a.status()).sessions.map((s) => s.session)
  t.ok(sessions.includes(a.session) && sessions.includes(b.session), 'the endpoint lists both sessions')
})

t.test('an idle executor does not keep the workflow process alive', async (t) => {
  const endpoint = await startEndpoint(t)
  const script = fileURLToPath(new URL('../fixtures/endpoint/idle-exit.mjs', import.meta.url))
  const started = Date.now()
  const { stdout } = await run(process.execPath, [script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: { ...process.env, NODE_OPTIONS: '', ENDPOINT: endpoint.address, SERVER_KEY: endpoint.state.serverPublicKey, TSFLOW_HOME: endpoint.home, RUN_DIR: join(scratch, 'idle') },
    timeout: 30_000,
  })
  t.match(stdout, /values 1,4,9/)
  t.comment(`the script ended ${Date.now() - started} ms after it started`)
})

t.test('the endpoint gone for good with tasks outstanding: they fail with EndpointUnreachable after reconnectTimeoutMs, no hang', async (t) => {
  const endpoint = await startEndpoint(t)
  const proxy = await tcpProxy('127.0.0.1', endpoint.state.clientPort)
  let closed = false
  t.teardown(() => (closed ? undefined : proxy.close()))
  const ep = new EndpointExecutor({ endpoint: `tcp://127.0.0.1:${proxy.port}`, serverKey: endpoint.state.serverPublicKey, home: endpoint.home, reconnectTimeoutMs: 1500, helloTimeoutMs: 500 })
  const kernel = await kernelOn(t, 'gone', ep)
  const futures = apps.gatedSquare.map(Array.from({ length: 5 }, (_, i) => [i, join(scratch, 'gone-never')]), { dfk: kernel })
  await waitFor(() => futures.some((f) => f.state === TaskState.running), 'a task running')
  const cutAt = Date.now()
  closed = true
  await proxy.close() // no listener any more: every reconnect fails
  const errors = await Promise.all(futures.map((f) => f.then(() => undefined, (e: unknown) => e as Error)))
  const elapsed = Date.now() - cutAt
  for (const error of errors) {
    t.ok(error instanceof EndpointUnreachable, `EndpointUnreachable (got ${error})`)
    t.match(error!.message, /reconnectTimeoutMs 1500/)
  }
  // silence threshold (1 s) + reconnectTimeoutMs + the last hello attempt, with room for a busy machine
  t.ok(elapsed < 1500 + 8000, `failed ${elapsed} ms after the cut, bounded`)
})
