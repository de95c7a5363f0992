// The endpoint server in-process (LocalProvider, real managers) against raw CURVE DEALER clients.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import t from 'tap'
import { curveKeyPair } from 'zeromq'

import { addAllowedClient, ensureClientKeys, runEndpoint, writeDefaultEndpointConfig } from 'tsflow/endpoint'
import { endpointPaths } from 'tsflow/protocol'
import { RawClient, fixtureTask, startEndpoint, tempHome, waitFor } from './harness.js'
import { isAlive } from '../helpers/wait.js'

t.test('two sessions at once, with the same task ids, each get their own results', async (t) => {
  const ep = await startEndpoint(t)
  const a = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  const b = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  const welcomeA = await a.hello('session-a')
  await b.hello('session-b')
  t.equal(welcomeA.endpoint, 'ep')
  t.same(welcomeA.outstanding, [])
  t.equal(welcomeA.retained, 0)
  const n = 30
  await a.submit(Array.from({ length: n }, (_, i) => fixtureTask(a.fns, i + 1, 'add', [i, 1])))
  await b.submit(Array.from({ length: n }, (_, i) => fixtureTask(b.fns, i + 1, 'add', [i, 1000])))
  await waitFor(() => a.outcomes.size === n && b.outcomes.size === n, 'all results of both sessions')
  for (let i = 0; i < n; i++) {
    t.same(a.outcomes.get(i + 1), [{ ok: true, value: i + 1, try: 0 }], `session a task ${i + 1}`)
    t.same(b.outcomes.get(i + 1), [{ ok: true, value: i + 1000, try: 0 }], `session b task ${i + 1}`)
  }
  t.ok(a.messages.some((m) => (m.t === 'results' && m.dispatched) || m.t === 'dispatched'), 'dispatch notices reach the session')
  const status = await a.status()
  t.equal(status.totals.tasksReceived, 2 * n)
  t.equal(status.sessions.length, 2)
  t.same(status.sessions.map((s) => [s.session, s.connected, s.outstanding, s.retained]).sort(), [
    ['session-a', true, 0, n],
    ['session-b', true, 0, n],
  ])
})

t.test('a client key not on the allow-list is refused at the handshake and logged; allow takes effect without a restart', async (t) => {
  const ep = await startEndpoint(t)
  const stranger = curveKeyPair()
  const refused = new RawClient(t, ep.state.clientPort, stranger, ep.state.serverPublicKey)
  void refused.send({ t: 'heartbeat' }).catch(() => {})
  await waitFor(() => refused.authFailures.length > 0, 'the handshake to be refused')
  await waitFor(() => ep.log().includes(stranger.publicKey), 'the refusal in endpoint.log')
  t.match(ep.log(), new RegExp(`refused a CURVE connection from 127\\.0\\.0\\.1: unknown client key ${escape(stranger.publicKey)}.*npx tsflow endpoint allow ep`))
  t.equal(refused.messages.length, 0, 'nothing reaches a refused client')
  refused.close()

  // The managers' key (on the manager port's list) does not open the client port either.
  const managersKeys = { publicKey: readFileSync(`${ep.paths.curveDir}/client.public`, 'utf8').trim(), secretKey: readFileSync(`${ep.paths.curveDir}/client.secret`, 'utf8').trim() }
  const manager = new RawClient(t, ep.state.clientPort, managersKeys, ep.state.serverPublicKey)
  await waitFor(() => manager.authFailures.length > 0, 'the managers key to be refused on the client port')
  manager.close()

  addAllowedClient(ep.paths, stranger.publicKey)
  const admitted = new RawClient(t, ep.state.clientPort, stranger, ep.state.serverPublicKey)
  const welcome = await admitted.hello('late')
  t.equal(welcome.session, 'late', 'admitted once on the allow-list, without a restart')
  t.match(ep.log(), /allow-list reloaded: 2 client keys/)
})

t.test('a client that closes mid-run resumes and gets every result exactly once', async (t) => {
  const ep = await startEndpoint(t)
  const first = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey, { linger: 1000 })
  await first.hello('resumable')
  const n = 12
  // Two workers, 150 ms each: the run takes about a second.
  await first.submit(Array.from({ length: n }, (_, i) => fixtureTask(first.fns, i + 1, 'sleep', [150])))
  await waitFor(() => first.outcomes.size >= 3, 'the first results')
  const acked = [...first.outcomes.keys()]
  await first.ack(acked)
  // The status reply comes after the ack was handled (one connection, in order).
  const mid = await first.status()
  t.ok(mid.sessions[0]!.outstanding > 0, `tasks still outstanding when the client leaves (${mid.sessions[0]!.outstanding})`)
  first.close()

  const second = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  const welcome = await second.hello('resumable', true)
  t.ok(welcome.outstanding.every((id) => !acked.includes(id)), 'acknowledged tasks are not outstanding')
  t.ok(welcome.outstanding.length > 0 || welcome.retained > 0, 'the welcome reports what is still to come')
  await waitFor(() => second.outcomes.size + acked.length >= n, 'the remaining results after the resume')
  for (let id = 1; id <= n; id++) {
    const got = second.outcomes.get(id)
    if (acked.includes(id)) t.equal(got, undefined, `task ${id} was acked before: not sent again`)
    else t.match(got, [{ ok: true, value: Number, try: 0 }], `task ${id} arrived exactly once after the resume`)
  }
  // A non-resume hello for the session while it holds results is refused (it is someone's).
  const third = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await t.rejects(third.hello('resumable'), /session resumable exists .*resume: true/)
})

t.test('ack drops retained results; unacknowledged ones expire after resultTtlMs', async (t) => {
  const ep = await startEndpoint(t, { resultTtlMs: 1500 })
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.hello('acks')
  await client.submit([1, 2, 3, 4].map((id) => fixtureTask(client.fns, id, 'add', [id, id])))
  await waitFor(() => client.outcomes.size === 4, 'four results')
  t.equal((await client.status()).sessions[0]!.retained, 4, 'retained until acked')
  await client.ack([1, 2])
  t.equal((await client.status()).sessions[0]!.retained, 2, 'acked results are dropped')
  await waitFor(async () => (await client.status()).sessions[0]!.retained === 0, 'the TTL to expire the rest', 10_000, 100)
  // One line per sweep that dropped some: the two may have finished (and expire) in different ticks.
  const dropped = [...ep.log().matchAll(/session acks: (\d+) results unacknowledged for 2 s \(resultTtlMs\) dropped/g)]
  t.equal(dropped.reduce((sum, match) => sum + Number(match[1]), 0), 2, 'the expiry is logged')
  // A resume now has nothing to resend.
  client.close()
  const again = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  const welcome = await again.hello('acks', true)
  t.equal(welcome.retained, 0)
  t.same(welcome.outstanding, [])
})

t.test('status shows managers, workers, queued and running; stop fails queued and running work with E_ENDPOINT_STOPPED', async (t) => {
  // No prefetch: tasks beyond the two workers stay queued in the endpoint.
  const ep = await startEndpoint(t, { prefetchCapacity: 0 })
  const client = new RawClient(t, ep.state.clientPort, ep.clientKeys, ep.state.serverPublicKey)
  await client.hello('stopped')
  await client.submit(Array.from({ length: 6 }, (_, i) => fixtureTask(client.fns, i + 1, 'sleep', [30_000])))
  let status = await client.status()
  await waitFor(async () => {
    status = await client.status()
    // The block's state comes from the provider's poll, which may come after the manager registered.
    return status.running === 2 && status.queued === 4 && status.blocks[0]?.state === 'running'
  }, 'two running and four queued, on a running block', 20_000, 50)
  t.equal(status.managers.length, 1)
  t.equal(status.workers, 2)
  t.equal(status.blocks.length, 1)
  t.equal(status.blocks[0]!.state, 'running')
  t.equal(status.sessions[0]!.outstanding, 6)
  const managerPid = status.managers[0]!.pid
  t.ok(isAlive(managerPid))

  const started = Date.now()
  await ep.server.stop('the test stops it')
  t.ok(Date.now() - started < 15_000, `stop is bounded (${Date.now() - started} ms)`)
  await waitFor(() => client.messages.some((m) => m.t === 'stopping'), 'the stopping notice')
  t.equal(client.outcomes.size, 6, 'every task got an outcome')
  for (const [id, [outcome]] of client.outcomes) {
    t.equal(outcome!.ok, false)
    t.equal(outcome!.error!.code, 'E_ENDPOINT_STOPPED', `task ${id}`)
    t.match(outcome!.error!.message, new RegExp(`^endpoint ep: task #${id} of session stopped was (queued|running) when the endpoint stopped \\(the test stops it\\)`))
  }
  const kinds = client.messages.map((m) => m.t)
  t.ok(kinds.lastIndexOf('failed') < kinds.indexOf('stopping'), 'failures come before stopping')
  t.match(
    [...client.outcomes.values()].map(([o]) => /was (queued|running)/.exec(o!.error!.message)![1]).sort(),
    ['queued', 'queued', 'queued', 'queued', 'running', 'running'],
  )
  await waitFor(() => !isAlive(managerPid), 'the manager process to be gone', 10_000)
  t.equal(await ep.server.done, 'the test stops it')
})

t.test('runEndpoint writes endpoint.json and endpoint.pid once listening and removes both when stopped', async (t) => {
  const home = tempHome(t)
  const paths = endpointPaths('daemon', home)
  writeDefaultEndpointConfig(paths, { provider: { type: 'local', initBlocks: 0, minBlocks: 0, maxBlocks: 1 }, logLevel: 'debug' })
  const server = await runEndpoint({ name: 'daemon', home })
  t.teardown(() => server.stop('teardown'))
  t.ok(existsSync(paths.pid) && existsSync(paths.state))
  t.equal(readFileSync(paths.pid, 'utf8').trim(), String(process.pid))
  const state = JSON.parse(readFileSync(paths.state, 'utf8'))
  t.equal(state.name, 'daemon')
  t.equal(state.pid, process.pid)
  t.equal(state.serverPublicKey, readFileSync(`${paths.curveDir}/server.public`, 'utf8').trim())
  t.ok(state.clientPort > 0 && state.workerPort > 0)
  // A second start while this one runs is refused, naming the pid file.
  await t.rejects(runEndpoint({ name: 'daemon', home }), { message: /endpoint.pid names process \d+, which is running: endpoint daemon already runs/ })
  await server.stop('done')
  await waitFor(() => !existsSync(paths.pid) && !existsSync(paths.state), 'the files to be removed')
  t.match(readFileSync(paths.log, 'utf8'), /endpoint daemon running[\s\S]*endpoint daemon stopped: done/)
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

t.test('the daemon path: SIGTERM stops the endpoint, its managers and the process; the files go', async (t) => {
  const home = tempHome(t)
  const paths = endpointPaths('sig', home)
  writeDefaultEndpointConfig(paths, { workerMode: 'threads', maxWorkersPerNode: 1, logLevel: 'debug' })
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL('./fixtures/daemon.mts', import.meta.url)), 'sig', home], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
  const state = JSON.parse(line)
  t.equal(state.pid, child.pid)
  t.same(JSON.parse(readFileSync(paths.state, 'utf8')), state, 'endpoint.json holds the same state')

  const keys = ensureClientKeys(home)
  addAllowedClient(paths, keys.publicKey)
  const client = new RawClient(t, state.clientPort, keys, state.serverPublicKey)
  await client.hello('sig')
  await waitFor(async () => (await client.status()).managers.length === 1, 'the manager to register', 30_000, 100)
  const registered = await client.status()
  const managerPid = registered.managers[0]!.pid
  t.equal(registered.blocks[0]?.state, 'running', "a block whose manager registered shows running, whatever the provider's last poll said")
  await client.submit([fixtureTask(client.fns, 1, 'sleep', [60_000])])
  await waitFor(async () => (await client.status()).running === 1, 'the task to run')

  child.kill('SIGTERM')
  t.equal(await exited, 0, `the process ends by itself once stopped (stderr: ${stderr})`)
  t.match(stderr, /stopped: received SIGTERM/)
  await waitFor(() => client.outcomes.has(1), 'the running task to fail')
  t.equal(client.outcomes.get(1)![0]!.error!.code, 'E_ENDPOINT_STOPPED')
  t.ok(client.messages.some((m) => m.t === 'stopping'))
  t.notOk(existsSync(paths.state) || existsSync(paths.pid), 'endpoint.json and endpoint.pid removed')
  await waitFor(() => !isAlive(managerPid), 'no manager left behind', 10_000)
})
