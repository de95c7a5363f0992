// Startup, the single client, and the ways the interchange process ends.

import { spawnSync } from 'node:child_process'

import t from 'tap'

import { BIN, FakeClient, FakeManager, spawnInterchange, waitFor } from './harness.js'

t.test('exits when the client stops heartbeating, telling managers to shut down first', async (t) => {
  const thresholdMs = 1200
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 200, heartbeatThresholdMs: thresholdMs })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 200 })
  await client.hello()
  await client.next('ix_hello')
  const manager = new FakeManager(t, ix.workerPort, { id: 'm', workers: 1, heartbeatMs: 200 })
  await manager.register()
  await manager.next('registered')
  await waitFor(() => client.of('heartbeat').length > 0 && manager.of('heartbeat').length > 0, 'heartbeats from the interchange')

  client.stopHeartbeats()
  const stoppedAt = Date.now()
  t.equal(await ix.exited, 0, 'exit code 0')
  const elapsed = Date.now() - stoppedAt
  t.ok(elapsed < thresholdMs + 2000, `exited ${elapsed} ms after the last heartbeat`)
  await waitFor(() => manager.of('shutdown').length === 1, 'the manager told to shut down')
  t.match(await ix.log(), /stopping: client test-client sent nothing for \d+ ms/)
})

t.test('exits when no client ever says hello', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 100, heartbeatThresholdMs: 600 })
  t.equal(await ix.exited, 0)
  t.match(await ix.log(), /stopping: no client said hello within \d+ ms/)
})

t.test('serves one client: a second hello is refused, a repeated hello from the same client is fine', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 300, heartbeatThresholdMs: 5000 })
  const first = new FakeClient(t, ix.clientPort, { heartbeatMs: 300 })
  await first.hello('first')
  await first.next('ix_hello')
  const second = new FakeClient(t, ix.clientPort)
  await second.hello('second')
  t.match((await second.next('refused')).reason, /already serves client first/)
  await first.hello('first')
  await waitFor(() => first.of('ix_hello').length === 2, 'a second ix_hello')
  t.equal(first.of('refused').length, 0)
})

t.test('SIGTERM stops it cleanly and managers are told to shut down', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 300, heartbeatThresholdMs: 5000 })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 300 })
  await client.hello()
  const manager = new FakeManager(t, ix.workerPort, { id: 'm', workers: 1, heartbeatMs: 300 })
  await manager.register()
  await manager.next('registered')
  ix.proc.kill('SIGTERM')
  t.equal(await ix.exited, 0)
  await waitFor(() => manager.of('shutdown').length === 1, 'shutdown sent to the manager')
  t.match(await ix.log(), /stopping: received SIGTERM/)
})

t.test('command line: usage errors exit 2 with a message, --help prints usage', async (t) => {
  const run = (...args: string[]) => spawnSync(process.execPath, [...process.execArgv, BIN, ...args], { encoding: 'utf8', timeout: 20_000 })
  const bad = run('--heartbeat-period', 'soon')
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--heartbeat-period must be a whole number of ms/)
  t.match(bad.stderr, /usage: tsflow-interchange/)
  t.equal(bad.stdout, '', 'nothing on stdout, so the executor never mistakes it for ports')
  const unknown = run('--worker-adress', '0.0.0.0')
  t.equal(unknown.status, 2)
  t.match(unknown.stderr, /worker-adress/)
  const order = run('--heartbeat-period', '500', '--heartbeat-threshold', '400')
  t.equal(order.status, 2)
  t.match(order.stderr, /--heartbeat-threshold \(400 ms\) must be longer than the heartbeat period \(500 ms\)/)
  const help = run('--help')
  t.equal(help.status, 0)
  t.match(help.stdout, /--curve-dir DIR/)
  const missingKeys = run('--curve-dir', '/nonexistent/tsflow-keys')
  t.equal(missingKeys.status, 1)
  t.match(missingKeys.stderr, /could not start: .*server\.public/)
})
