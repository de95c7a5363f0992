// CURVE encryption with client-key authentication, against the real interchange process.

import { statSync } from 'node:fs'
import { join } from 'node:path'

import t from 'tap'
import { curveKeyPair } from 'zeromq'

import { generateCurveKeys, loadCurveKeys } from '../../dist/transport/curve.js'
import { FakeClient, FakeManager, makeTasks, spawnInterchange, tempDir, waitFor } from './harness.js'

t.test('with CURVE on, key holders work; peers without the keys never get through', async (t) => {
  const keyDir = join(tempDir(t, 'curve'), 'keys')
  generateCurveKeys(keyDir)
  t.equal(statSync(keyDir).mode & 0o777, 0o700, 'key directory is 0700')
  for (const name of ['server.public', 'server.secret', 'client.public', 'client.secret']) {
    t.equal(statSync(join(keyDir, name)).mode & 0o777, 0o600, `${name} is 0600`)
  }
  const clientKeys = loadCurveKeys(keyDir, 'client')

  const ix = await spawnInterchange(t, { curveDir: keyDir, heartbeatPeriodMs: 300, heartbeatThresholdMs: 5000 })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 300, curve: clientKeys })
  await client.hello()
  await client.next('ix_hello')

  // No keys at all: the handshake cannot complete, so its register never arrives.
  const keyless = new FakeManager(t, ix.workerPort, { id: 'keyless', workers: 50, heartbeatMs: 300 })
  void keyless.register()
  // The server's public key but a client key pair of its own: ZAP turns it away.
  const own = curveKeyPair()
  const impostor = new FakeManager(t, ix.workerPort, {
    id: 'impostor',
    workers: 50,
    heartbeatMs: 300,
    curve: { role: 'client', publicKey: own.publicKey, secretKey: own.secretKey, serverPublicKey: clientKeys.serverPublicKey },
  })
  void impostor.register()
  await waitFor(async () => /handshake failed.*manager port/.test(await ix.log()), 'the keyless handshake to fail')
  await waitFor(async () => /refused a CURVE connection .*unknown client key/.test(await ix.log()), 'ZAP to refuse the impostor')

  const good = new FakeManager(t, ix.workerPort, { id: 'good', workers: 2, heartbeatMs: 300, curve: clientKeys })
  await good.register()
  await good.next('registered')
  await client.submit(makeTasks(0, 300))
  await waitFor(() => client.results.size === 300, '300 results over CURVE')
  t.equal(good.tasks.length, 300, 'only the keyed manager ran tasks')
  t.equal(keyless.inbox.length, 0, 'the keyless manager heard nothing')
  t.equal(impostor.inbox.length, 0, 'the impostor heard nothing')

  await client.send({ t: 'status', req: 1 })
  t.same((await client.next('status_reply')).managers.map((m) => m.managerId), ['good'])

  // A client without keys cannot even say hello.
  const stranger = new FakeClient(t, ix.clientPort)
  void stranger.hello('stranger')
  await waitFor(async () => /handshake failed.*client port/.test(await ix.log()), 'the keyless client handshake to fail')
  t.equal(stranger.inbox.length, 0)
  const ownClient = curveKeyPair()
  const impostorClient = new FakeClient(t, ix.clientPort, {
    curve: { role: 'client', publicKey: ownClient.publicKey, secretKey: ownClient.secretKey, serverPublicKey: clientKeys.serverPublicKey },
  })
  void impostorClient.hello('impostor')
  const zapRefusals = async () => (await ix.log()).match(/refused a CURVE connection .*unknown client key/g)?.length ?? 0
  await waitFor(async () => (await zapRefusals()) >= 2, 'ZAP to refuse the impostor client too')
  t.equal(impostorClient.inbox.length, 0)
  t.equal(client.of('refused').length, 0, 'the real client was never disturbed')
})
