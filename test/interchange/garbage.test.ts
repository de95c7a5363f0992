// Garbage, truncated and unknown frames thrown at BOTH ports of a live interchange; afterwards
// tasks still run end to end and the process is still up.

import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'

import t from 'tap'
import { Dealer } from 'zeromq'

import { encodeMessage, stamp } from 'tsflow/protocol'
import { encode } from '../../dist/serialize/codec.js'
import { FNS, FakeClient, FakeManager, makeTasks, spawnInterchange, waitFor, withTimeout } from './harness.js'

/** Frames that are not valid messages for anyone, plus valid messages of the wrong kind or shape. */
function garbageFrames(): Buffer[][] {
  // Headers alone: a submit header without its payload frames is garbage too.
  const validSubmit = Buffer.from(encodeMessage({ t: 'submit', tasks: makeTasks(0, 50), fns: FNS })[0]!)
  const validRegister = Buffer.from(encodeMessage({ t: 'register', managerId: 'x', host: 'h', blockId: 'b', workers: 1, prefetch: 0, pid: 1, ...stamp() })[0]!)
  // Arbitrary values, encoded as a single frame without the protocol's help.
  const raw = (value: unknown) => Buffer.from(encode(value))
  return [
    // first, so its log line is among those the rate limiter lets through
    [validSubmit, validSubmit], // 50 tasks declared, one payload frame carried
    [randomBytes(64)],
    [randomBytes(100_000)],
    [Buffer.alloc(0)],
    [Buffer.from([0xc1])], // a msgpack byte that is never valid
    [validSubmit.subarray(0, validSubmit.length >> 1)], // truncated
    [validRegister.subarray(0, 7)],
    [Buffer.from('{"t":"submit","tasks":[]}')], // JSON, not msgpack
    [raw(42)],
    [raw(null)],
    [raw(['t', 'submit'])],
    [raw({ kind: 'submit' })],
    [raw({ t: 'bogus' })],
    [raw({ t: 7 })],
    [raw({ t: 'submit', tasks: 'lots' })],
    [raw({ t: 'submit', tasks: [{ id: 'a', try: 0, payload: Buffer.from('x') }] })],
    [raw({ t: 'submit', tasks: [{ id: 1, try: 0 }] })],
    [raw({ t: 'results', results: [null], capacity: 3 })],
    [raw({ t: 'register', managerId: 5 })],
    [raw({ t: 'ready' })],
    [raw({ t: 'status' })],
    [raw({ t: 'cancel', ids: 'all' })],
    [raw({ t: 'tasks', tasks: [] })], // a message only managers receive
    [raw({ t: 'ix_hello', proto: 1, version: 'x', clientPort: 1, workerPort: 2 })],
  ]
}

/** Sends bytes that are not ZMTP at all, straight over TCP. */
async function rawTcp(port: number, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes))
    socket.on('error', () => resolve())
    socket.on('close', () => resolve())
    socket.resume()
  })
}

t.test('garbage on both ports is dropped and tasks still run end to end', async (t) => {
  const ix = await spawnInterchange(t, { heartbeatPeriodMs: 300, heartbeatThresholdMs: 5000 })
  const client = new FakeClient(t, ix.clientPort, { heartbeatMs: 300 })
  await client.hello()
  await client.next('ix_hello')
  const manager = new FakeManager(t, ix.workerPort, { id: 'good-manager', workers: 4, prefetch: 2, heartbeatMs: 300 })
  await manager.register()
  await manager.next('registered')

  // Strangers on both ports, with every kind of bad frame, plus garbage from the real peers' sockets.
  const strangers: Dealer[] = []
  t.teardown(() => strangers.forEach((s) => s.close()))
  for (const port of [ix.clientPort, ix.workerPort]) {
    const stranger = new Dealer({ linger: 0 })
    strangers.push(stranger)
    stranger.connect(`tcp://127.0.0.1:${port}`)
    for (const frames of garbageFrames()) await stranger.send(frames)
    // A well-formed message from a peer that never introduced itself.
    await stranger.send(encodeMessage(port === ix.clientPort ? { t: 'submit', tasks: makeTasks(900, 1), fns: FNS } : { t: 'ready', capacity: 100 }))
  }
  for (const frames of garbageFrames()) {
    await client.sendRaw(frames)
    await manager.sendRaw(frames)
  }
  for (const port of [ix.clientPort, ix.workerPort]) {
    await rawTcp(port, randomBytes(4096))
    await rawTcp(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await rawTcp(port, Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3])) // a truncated ZMTP greeting
  }

  // Strangers are told they are not welcome; the interchange keeps serving.
  const strangerReplies: Buffer[][] = []
  for (const stranger of strangers) {
    strangerReplies.push(await withTimeout(stranger.receive(), 5000, 'a reply to the stranger'))
  }
  t.equal(strangerReplies.length, 2, 'both strangers got a refusal')

  await client.submit(makeTasks(0, 500))
  await waitFor(() => client.results.size === 500, '500 results after the garbage', 20_000)
  t.equal(client.failures.size, 0, 'no failures')
  t.notOk(client.results.has(900), "the stranger's task was not run")
  t.notOk(ix.exitedYet(), 'interchange still running')

  await client.send({ t: 'status', req: 1 })
  const status = await client.next('status_reply')
  t.equal(status.managers.length, 1, 'only the real manager is registered')
  t.equal(status.queued, 0)

  const log = await ix.log()
  t.match(log, /dropped a bad frame on the client port/)
  t.match(log, /dropped a bad frame from manager/)
  t.match(log, /its 50 entries need more payload bytes than its 1 frames carry/)
  t.match(log, /is not registered; send 'register' first/)
  t.match(log, /handshake failed/, 'non-ZMTP bytes are noticed at the handshake')
  const warnings = log.split('\n').filter((line) => line.includes(' WARN ')).length
  t.ok(warnings < 120, `warnings are rate-limited (${warnings} lines)`)

  await client.send({ t: 'shutdown' })
  t.equal(await ix.exited, 0, 'clean exit')
  t.equal(ix.stderr(), '', 'nothing on stderr')
})
