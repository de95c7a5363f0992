// CurveZMQ between the manager and the interchange, and the log file.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { curveKeyPair } from 'zeromq'

import { generateCurveKeys } from '../../dist/transport/curve.js'
import { FakeInterchange, spawnManager, task, waitFor } from './harness.js'

t.test('with --curve-dir the manager talks to a CURVE interchange', async (t) => {
  // One testdir() call per test: each call recreates the directory.
  const root = t.testdir()
  const dir = join(root, 'keys')
  const { server } = generateCurveKeys(dir)
  const ix = await FakeInterchange.start(t, { curve: server })
  const logDir = join(root, 'logs')
  const manager = spawnManager(t, ix, { workers: 1, curveDir: dir, logDir: logDir })
  await waitFor(() => ix.registered > 0 || manager.exited(), 'registration over CURVE')
  t.notOk(manager.exited(), manager.stderr())
  const ids = Array.from({ length: 100 }, (_, i) => i + 1)
  await ix.sendTasks(ids.map((id) => task(id, 'add', [id, id])))
  t.same((await ix.outcomesOf(ids)).map((o) => o.value), ids.map((id) => 2 * id))
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
  const log = readFileSync(join(logDir, `manager-${manager.id}.log`), 'utf8')
  t.match(log, /registered with the interchange/)
  t.match(log, /CurveZMQ/)
  t.notMatch(log, /task #\d+/, 'nothing per task at the default level')
})

t.test('a wrong server key never registers; the manager gives up instead of hanging', async (t) => {
  const dir = join(t.testdir(), 'keys')
  const { server } = generateCurveKeys(dir)
  const ix = await FakeInterchange.start(t, { curve: server })
  writeFileSync(join(dir, 'server.public'), curveKeyPair().publicKey)
  const manager = spawnManager(t, ix, { workers: 1, curveDir: dir, heartbeatThresholdMs: 700 })
  const { code } = await manager.exit
  t.equal(code, 4)
  t.match(manager.stderr(), /no answer to registration/)
  t.equal(ix.registers.length, 0)
})

t.test('a missing key file is reported and the manager exits non-zero', async (t) => {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workers: 1, curveDir: join(t.testdir(), 'nowhere') })
  const { code } = await manager.exit
  t.equal(code, 1)
  t.match(manager.stderr(), /client\.public \(a CURVE key\) cannot be read/)
})

t.test('a client secret key other users can read is refused', async (t) => {
  const dir = join(t.testdir(), 'keys')
  const { server } = generateCurveKeys(dir)
  chmodSync(join(dir, 'client.secret'), 0o644)
  const ix = await FakeInterchange.start(t, { curve: server })
  const manager = spawnManager(t, ix, { workers: 1, curveDir: dir })
  t.equal((await manager.exit).code, 1)
  t.match(manager.stderr(), /client\.secret is a CURVE secret key other users can access/)
})
