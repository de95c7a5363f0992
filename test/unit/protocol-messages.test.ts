import t from 'tap'
import { readFileSync } from 'node:fs'
import {
  ACCEPTED,
  checkVersion,
  decodeMessage,
  encodeMessage,
  stamp,
  type AnyMessage,
  type ManagerInfo,
} from 'tsflow/protocol'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from 'tsflow/protocol'
import { encode } from '../../dist/serialize/codec.js'
import { encodeError } from '../../dist/serialize/errors.js'
import { ProtocolError, SerializationError, TsflowError, VersionMismatch } from 'tsflow'

const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

const payload = (text: string) => new Uint8Array(Buffer.from(text))
const info: ManagerInfo = {
  managerId: 'm-1',
  host: 'node1',
  blockId: 'block-0',
  workers: 4,
  prefetch: 2,
  pid: 1234,
  registeredAt: 1_700_000_000_000,
  lastHeartbeat: 1_700_000_001_000,
  outstanding: 3,
  draining: false,
  accelerators: ['0', '1'],
}

type Receiver = keyof typeof ACCEPTED
const samples: [Receiver, AnyMessage][] = [
  ['interchangeFromClient', { t: 'client_hello', clientId: 'client-1', ...stamp() }],
  [
    'interchangeFromClient',
    {
      t: 'submit',
      tasks: [
        { id: 1, try: 0, f: 0, k: 0, payload: payload('task one') },
        { id: 2, try: 1, f: 1, k: 1, wt: 2.5, pri: 5, res: { cores: 2, memoryMb: 512, gpus: 1 }, payload: payload('task two') },
      ],
      fns: [[0, payload('function zero')], [1, payload('function one')]],
    },
  ],
  ['interchangeFromClient', { t: 'cancel', ids: [1, 2, 3] }],
  ['interchangeFromClient', { t: 'drain', blockIds: ['block-0'] }],
  ['interchangeFromClient', { t: 'status', req: 7 }],
  ['interchangeFromClient', { t: 'heartbeat' }],
  ['interchangeFromClient', { t: 'shutdown' }],
  ['interchangeFromClient', { t: 'block_ended', blockId: 'block-0', reason: 'the provider reports it failed: killed by SIGKILL' }],

  ['clientFromInterchange', { t: 'ix_hello', workerPort: 55001, clientPort: 55000, ...stamp() }],
  ['clientFromInterchange', { t: 'refused', reason: 'version mismatch' }],
  ['clientFromInterchange', { t: 'results', results: [{ id: 1, try: 0, payload: payload('result one') }] }],
  [
    'clientFromInterchange',
    { t: 'failed', failures: [{ id: 2, try: 0, error: encodeError(new Error('manager lost')) }] },
  ],
  ['clientFromInterchange', { t: 'manager', event: 'lost', info, reason: 'missed heartbeats' }],
  ['clientFromInterchange', { t: 'manager', event: 'stopped', info, reason: 'the interchange stopped' }],
  ['clientFromInterchange', { t: 'resources', managerId: 'm1', host: 'node1', timeMs: 1700000000000, samples: [[7, 1, 0.5, 0.01, 120e6, 0, 4096]] }],
  ['clientFromInterchange', { t: 'status_reply', req: 7, queued: 12, managers: [info] }],
  ['clientFromInterchange', { t: 'dispatched', ids: [1, 2, 3], tries: [0, 0, 1] }],
  ['clientFromInterchange', { t: 'heartbeat' }],

  [
    'interchangeFromManager',
    { t: 'register', managerId: 'm-1', host: 'node1', blockId: 'block-0', workers: 4, prefetch: 2, pid: 1234, accelerators: ['0'], ...stamp() },
  ],
  ['interchangeFromManager', { t: 'results', results: [{ id: 1, try: 0, payload: payload('r') }], capacity: 3 }],
  ['interchangeFromManager', { t: 'ready', capacity: 4 }],
  ['interchangeFromManager', { t: 'heartbeat', outstanding: 2 }],
  ['interchangeFromManager', { t: 'drained' }],
  ['interchangeFromManager', { t: 'stopping', reason: 'received SIGTERM; shutting down' }],
  ['interchangeFromManager', { t: 'resources', timeMs: 1700000000000, samples: [[7, 1, 0.5, 0.01, 120e6, 0, 4096]] }],

  ['managerFromInterchange', { t: 'registered', heartbeatPeriodMs: 30_000, heartbeatThreshold: 120_000 }],
  ['managerFromInterchange', { t: 'refused', reason: 'draining' }],
  ['managerFromInterchange', { t: 'tasks', tasks: [{ id: 9, try: 0, f: 3, k: 0, payload: payload('t') }], fns: [[3, payload('f')]] }],
  ['managerFromInterchange', { t: 'cancel', ids: [9] }],
  ['managerFromInterchange', { t: 'drain' }],
  ['managerFromInterchange', { t: 'heartbeat' }],
  ['managerFromInterchange', { t: 'shutdown' }],
]

/** The ProtocolError decodeMessage throws for `frame`, or fails the test. */
function protocolError(frame: Uint8Array | Uint8Array[], accepted: ReadonlySet<string> = ACCEPTED.interchangeFromClient): ProtocolError {
  try {
    decodeMessage(frame, accepted)
  } catch (error) {
    if (error instanceof ProtocolError) return error
    throw error
  }
  throw new Error('expected a ProtocolError')
}
// A (possibly malformed) message as frames, as a sender would send it: entries with payload
// bytes list their length `n` in the header and their bytes follow in one frame; entries without
// bytes list no length.
const frameOf = (value: unknown): Uint8Array[] => {
  const message = value as Record<string, unknown> | null
  const list = message && typeof message === 'object' ? (message.tasks ?? message.results) : undefined
  if (!Array.isArray(list)) return [encode(value)]
  const payloads: Uint8Array[] = []
  const entries = list.map((entry) => {
    const bytes = typeof entry === 'object' && entry !== null ? (entry as { payload?: unknown }).payload : undefined
    if (!(bytes instanceof Uint8Array)) return entry
    const { payload: _payload, ...rest } = entry as Record<string, unknown>
    payloads.push(bytes)
    return { ...rest, n: bytes.byteLength }
  })
  const key = message!.tasks !== undefined ? 'tasks' : 'results'
  return [encode({ ...message, [key]: entries }), ...(payloads.length > 0 ? [Buffer.concat(payloads)] : [])]
}

/** The message without the payload lengths the header carries. */
const withoutLengths = (message: unknown): unknown => {
  const m = message as Record<string, unknown>
  const key = m.tasks !== undefined ? 'tasks' : m.results !== undefined ? 'results' : undefined
  if (!key || !Array.isArray(m[key])) return message
  return { ...m, [key]: (m[key] as Record<string, unknown>[]).map(({ n: _n, ...rest }) => rest) }
}

t.test('stamp() and the version constants', async (t) => {
  t.same(stamp(), { proto: PROTOCOL_VERSION, version: TSFLOW_VERSION })
  t.equal(TSFLOW_VERSION, packageVersion, 'the tsflow version comes from package.json')
  t.ok(Number.isInteger(PROTOCOL_VERSION) && PROTOCOL_VERSION >= 1)
})

t.test('every message kind round trips', async (t) => {
  const kinds = new Set<string>()
  for (const [receiver, message] of samples) {
    kinds.add(`${receiver}:${message.t}`)
    const frames = encodeMessage(message)
    t.ok(frames.length >= 1 && frames.every((f) => f instanceof Uint8Array), `${receiver}/${message.t}: encodes to frames`)
    const decoded = decodeMessage<AnyMessage>(frames, ACCEPTED[receiver])
    t.same(withoutLengths(decoded), message, `${receiver}/${message.t}: decodes to the same message`)
  }
  for (const [receiver, accepted] of Object.entries(ACCEPTED)) {
    for (const kind of accepted) t.ok(kinds.has(`${receiver}:${kind}`), `${receiver} accepts '${kind}' and it is covered`)
  }
})

t.test('small payloads share a frame, large ones travel alone, and lengths must match the frames', async (t) => {
  const big = new Uint8Array(64 * 1024).fill(9)
  const tasks = [
    { id: 1, try: 0, f: 0, k: 0, payload: payload('a') },
    { id: 2, try: 0, f: 0, k: 0, payload: payload('bb') },
    { id: 3, try: 0, f: 0, k: 0, payload: big },
    { id: 4, try: 0, f: 0, k: 0, payload: payload('') },
    { id: 5, try: 0, f: 0, k: 0, payload: payload('c') },
  ]
  const frames = encodeMessage({ t: 'submit', tasks })
  t.equal(frames.length, 4, 'a header, one frame for the two small payloads, the large one, one for the rest')
  t.equal(Buffer.from(frames[1]!).toString(), 'abb', 'small payloads joined in envelope order')
  t.equal(frames[2], big, 'a large payload is its own frame, not a copy')
  const decoded = decodeMessage<Extract<AnyMessage, { t: 'submit' }>>(frames, ACCEPTED.interchangeFromClient)
  t.same(decoded.tasks.map((task) => Buffer.from(task.payload).toString('hex')), tasks.map((task) => Buffer.from(task.payload).toString('hex')), 'every payload comes back')
  t.throws(() => decodeMessage(frames.slice(0, 2), ACCEPTED.interchangeFromClient), /need more payload bytes than its 1 frames carry/)
  t.throws(() => decodeMessage([...frames, payload('x')], ACCEPTED.interchangeFromClient), /carry bytes beyond its 5 entries/)
  t.throws(() => decodeMessage([...encodeMessage({ t: 'heartbeat' }), payload('x')], ACCEPTED.interchangeFromClient), /1 unexpected extra frames/)
  t.throws(() => decodeMessage([], ACCEPTED.interchangeFromClient), /empty message/)
})

t.test('payloads arrive as bytes and are not decoded on the way', async (t) => {
  const inner = encode({ args: [1, 2], big: new Float64Array(1000) })
  const frame = encodeMessage({ t: 'submit', tasks: [{ id: 1, try: 0, f: 0, k: 0, payload: inner }] })
  const decoded = decodeMessage<Extract<AnyMessage, { t: 'submit' }>>(frame, ACCEPTED.interchangeFromClient)
  const bytes = decoded.tasks[0]!.payload
  t.ok(bytes instanceof Uint8Array, 'the payload is a Uint8Array')
  t.equal(Buffer.compare(Buffer.from(bytes), inner), 0, 'byte for byte')
})

t.test('undecodable frames', async (t) => {
  const valid = encodeMessage({ t: 'submit', tasks: [{ id: 1, try: 0, f: 0, k: 0, payload: payload('abc') }] })[0]!
  for (const [label, frame] of [
    ['empty', new Uint8Array(0)],
    ['garbage', Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ['text', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ['truncated', valid.subarray(0, valid.length - 2)],
    ['truncated header', valid.subarray(0, 1)],
  ] as const) {
    const error = protocolError(frame)
    t.ok(error instanceof TsflowError, `${label}: a tsflow error`)
    t.equal(error.code, 'E_PROTOCOL', `${label}: code`)
    t.equal(error.message, `undecodable frame of ${frame.length} bytes`, `${label}: says the frame is undecodable and its size`)
    t.ok(error.cause instanceof SerializationError, `${label}: the decoder error is the cause`)
  }
})

t.test('frames that are not messages', async (t) => {
  for (const [label, value] of [
    ['number', 42],
    ['string', 'submit'],
    ['null', null],
    ['array', [{ t: 'submit' }]],
    ['object without t', { kind: 'submit' }],
    ['numeric t', { t: 5 }],
    ['Map', new Map([['t', 'submit']])],
  ] as const) {
    const frame = encode(value)
    const error = protocolError(frame)
    t.equal(error.message, `frame of ${frame.length} bytes is not a tsflow message (no 't' field)`, label)
  }
  const reserved = protocolError(Buffer.from([0xc1]))
  t.match(reserved.message, /not a tsflow message|undecodable/, 'the reserved msgpack byte is not a message')
})

t.test('unknown kinds and kinds meant for another receiver', async (t) => {
  t.equal(protocolError(frameOf({ t: 'bogus' })).message, "unexpected message kind 'bogus'")
  t.equal(protocolError(frameOf({ t: '' })).message, "unexpected message kind ''")
  t.equal(
    protocolError(frameOf({ t: 'register', managerId: 'm' }), ACCEPTED.clientFromInterchange).message,
    "unexpected message kind 'register'",
    'a manager message sent to the client',
  )
  t.equal(
    protocolError(frameOf({ t: 'submit', tasks: [] }), ACCEPTED.managerFromInterchange).message,
    "unexpected message kind 'submit'",
    'a client message sent to a manager',
  )
  t.equal(protocolError(frameOf({ t: 'tasks', tasks: [] }), ACCEPTED.interchangeFromClient).message, "unexpected message kind 'tasks'")
})

t.test('missing or mistyped fields name the problem', async (t) => {
  const cases: [Receiver, Record<string, unknown>, string][] = [
    ['interchangeFromClient', { t: 'client_hello', proto: 1, version: '0.1.0' }, "malformed 'client_hello' message: field 'clientId' must be a string"],
    ['interchangeFromClient', { t: 'client_hello', clientId: 'c', version: '0.1.0' }, "malformed 'client_hello' message: field 'proto' must be a number"],
    ['interchangeFromClient', { t: 'client_hello', clientId: 'c', proto: 1 }, "malformed 'client_hello' message: field 'version' must be a string"],
    ['interchangeFromClient', { t: 'submit' }, "malformed 'submit' message: field 'tasks' must be an array"],
    ['interchangeFromClient', { t: 'submit', tasks: { 0: {} } }, "malformed 'submit' message: field 'tasks' must be an array"],
    ['interchangeFromClient', { t: 'submit', tasks: [null] }, "malformed 'submit' message: entry 0 is not an object"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, try: 0, f: 0, k: 0, payload: payload('a') }, 'x'] }, "malformed 'submit' message: entry 1 is not an object"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: '1', try: 0, f: 0, k: 0, payload: payload('a') }] }, "malformed 'submit' message: entry 0 has no numeric id/try"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, f: 0, k: 0, payload: payload('a') }] }, "malformed 'submit' message: entry 0 has no numeric id/try"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, try: 0 }] }, "malformed 'submit' message: entry 0 has no payload length 'n'"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, try: 0, payload: 'bytes' }] }, "malformed 'submit' message: entry 0 has no payload length 'n'"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, try: 0, payload: payload('a') }] }, "malformed 'submit' message: task entry 0 has no numeric function id 'f' and kind 'k'"],
    ['interchangeFromClient', { t: 'submit', tasks: [{ id: 1, try: 0, f: 0, k: 0, payload: payload('a') }], fns: [[0, 'not bytes']] }, "malformed 'submit' message: function table entry 0 is not [id, bytes]"],
    ['interchangeFromClient', { t: 'cancel', ids: 5 }, "malformed 'cancel' message: field 'ids' must be an array of numbers"],
    ['interchangeFromClient', { t: 'drain', blockIds: 'block-0' }, "malformed 'drain' message: field 'blockIds' must be an array"],
    ['interchangeFromClient', { t: 'status' }, "malformed 'status' message: field 'req' must be a number"],
    ['interchangeFromClient', { t: 'block_ended', blockId: 0, reason: 'x' }, "malformed 'block_ended' message: field 'blockId' must be a string"],
    ['clientFromInterchange', { t: 'ix_hello', version: '0.1.0' }, "malformed 'ix_hello' message: field 'proto' must be a number"],
    ['clientFromInterchange', { t: 'results' }, "malformed 'results' message: field 'results' must be an array"],
    ['clientFromInterchange', { t: 'resources', timeMs: 1, samples: [] }, "malformed 'resources' message: field 'managerId' must be a string"],
    ['interchangeFromManager', { t: 'resources', timeMs: 1, samples: [[1, 1, 0, 0, 0, 0]] }, "malformed 'resources' message: sample 0 is not 7 finite numbers"],
    ['interchangeFromManager', { t: 'resources', samples: [] }, "malformed 'resources' message: field 'timeMs' must be a number"],
    ['interchangeFromManager', { t: 'stopping' }, "malformed 'stopping' message: field 'reason' must be a string"],
    ['clientFromInterchange', { t: 'results', results: [{ id: 1, try: 0 }] }, "malformed 'results' message: entry 0 has no payload length 'n'"],
    ['clientFromInterchange', { t: 'failed', failures: null }, "malformed 'failed' message: field 'failures' must be an array"],
    ['clientFromInterchange', { t: 'manager', event: 'lost', info: null }, "malformed 'manager' message: field 'info' must be an object"],
    ['clientFromInterchange', { t: 'manager', event: 'lost' }, "malformed 'manager' message: field 'info' must be an object"],
    ['interchangeFromManager', { t: 'register', host: 'h', blockId: 'b', workers: 1, prefetch: 0, proto: 1, version: 'v' }, "malformed 'register' message: field 'managerId' must be a string"],
    ['interchangeFromManager', { t: 'register', managerId: 'm', host: 'h', blockId: 'b', workers: '4', prefetch: 0, proto: 1, version: 'v' }, "malformed 'register' message: field 'workers' must be a number"],
    ['interchangeFromManager', { t: 'register', managerId: 'm', host: 'h', blockId: 'b', workers: 4, prefetch: 0, pid: 1, version: 'v' }, "malformed 'register' message: field 'proto' must be a number"],
    ['interchangeFromManager', { t: 'ready' }, "malformed 'ready' message: field 'capacity' must be a number"],
    ['managerFromInterchange', { t: 'registered', heartbeatPeriodMs: 1000 }, "malformed 'registered' message: field 'heartbeatThreshold' must be a number"],
    ['managerFromInterchange', { t: 'tasks', tasks: [{ id: 1, try: 0, payload: null }] }, "malformed 'tasks' message: entry 0 has no payload length 'n'"],
  ]
  for (const [receiver, message, expected] of cases) {
    const error = protocolError(frameOf(message), ACCEPTED[receiver])
    t.equal(error.message, expected, `${receiver}: ${expected}`)
  }
  t.same(
    decodeMessage(frameOf({ t: 'drain' }), ACCEPTED.interchangeFromClient),
    { t: 'drain' },
    "'drain' without blockIds (drain everything) is valid",
  )
})

t.test('fields the message types require but decodeMessage does not check', async (t) => {
  const cases: [Receiver, Record<string, unknown>, string][] = [
    ['interchangeFromManager', { t: 'results', results: [] }, "manager 'results' without capacity"],
    ['interchangeFromManager', { t: 'heartbeat' }, "manager 'heartbeat' without outstanding"],
    ['interchangeFromManager', { t: 'register', managerId: 'm', host: 'h', blockId: 'b', workers: 1, prefetch: 0, proto: 1, version: 'v' }, "'register' without pid"],
    ['clientFromInterchange', { t: 'ix_hello', proto: 1, version: '0.1.0' }, "'ix_hello' without ports"],
    ['clientFromInterchange', { t: 'refused' }, "'refused' without reason"],
    ['clientFromInterchange', { t: 'status_reply', req: 1 }, "'status_reply' without queued/managers"],
    ['clientFromInterchange', { t: 'failed', failures: [{ id: 1 }] }, "'failed' entry without try/error"],
    ['interchangeFromClient', { t: 'cancel', ids: ['x'] }, "'cancel' with non-numeric ids"],
  ]
  for (const [receiver, message, label] of cases) {
    let outcome: unknown
    try {
      outcome = decodeMessage(frameOf(message), ACCEPTED[receiver])
    } catch (error) {
      outcome = error
    }
    t.ok(outcome instanceof ProtocolError, `${label} is a ProtocolError`)
  }
})

t.test('checkVersion', async (t) => {
  t.doesNotThrow(() => checkVersion('manager m-1 on node1', stamp()), 'a matching stamp passes')

  const protocol = (() => {
    try {
      checkVersion('manager m-1 on node1', { proto: PROTOCOL_VERSION + 1, version: TSFLOW_VERSION })
    } catch (error) {
      return error as VersionMismatch
    }
    throw new Error('expected VersionMismatch')
  })()
  t.ok(protocol instanceof VersionMismatch)
  t.ok(protocol instanceof TsflowError)
  t.equal(protocol.code, 'E_VERSION_MISMATCH')
  t.equal(
    protocol.message,
    `manager m-1 on node1 speaks protocol ${PROTOCOL_VERSION + 1} (tsflow ${TSFLOW_VERSION}) but this side speaks protocol ` +
      `${PROTOCOL_VERSION} (tsflow ${TSFLOW_VERSION}); install the same tsflow version everywhere`,
    'names the peer and both versions',
  )

  t.throws(
    () => checkVersion('client c-1', { proto: PROTOCOL_VERSION, version: '9.9.9' }),
    VersionMismatch,
    'a different package version with the same protocol is a mismatch too',
  )
  try {
    checkVersion('client c-1', { proto: PROTOCOL_VERSION, version: '9.9.9' })
  } catch (error) {
    t.match((error as Error).message, /^client c-1 speaks protocol \d+ \(tsflow 9\.9\.9\)/)
    t.match((error as Error).message, `(tsflow ${TSFLOW_VERSION})`)
  }

  const hello = decodeMessage<Extract<AnyMessage, { t: 'client_hello' }>>(
    encodeMessage({ t: 'client_hello', clientId: 'c', proto: 0, version: '0.0.1' }),
    ACCEPTED.interchangeFromClient,
  )
  t.throws(() => checkVersion(`client ${hello.clientId}`, hello), VersionMismatch, 'a decoded hello from an old peer fails the check')
})
