// The function table: each function travels once per hop, and the interchange never opens it.
import t from 'tap'
import { InterchangeCore } from '../../dist/interchange/index.js'
import { stamp, type FunctionEntry, type InterchangeToClient, type InterchangeToManager, type TaskEnvelope } from '../../dist/protocol/messages.js'

const task = (id: number, f: number): TaskEnvelope => ({ id, try: 0, f, k: 0, payload: new Uint8Array([0x91, 0x90]) })

function setup() {
  const toManagers: { key: string; message: InterchangeToManager }[] = []
  const toClient: InterchangeToClient[] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: 60_000, heartbeatThresholdMs: 600_000 },
    { toClient: (message) => toClient.push(message), toManager: (key, message) => toManagers.push({ key, message }) },
  )
  const register = (key: string, workers: number) =>
    core.onManagerMessage(key, { t: 'register', managerId: key, host: 'h', blockId: '0', workers, prefetch: 0, pid: 1, ...stamp() })
  return { core, toManagers, toClient, register }
}

t.test('a manager gets each function with the first tasks message that uses it, and only then', async (t) => {
  const { core, toManagers, register } = setup()
  // Bytes the interchange cannot decode: it must pass them on without opening them.
  const fnA: FunctionEntry = [0, new Uint8Array([0xc1, 0xc1])]
  const fnB: FunctionEntry = [1, new Uint8Array([0xc1, 0x01])]
  register('m1', 2)
  core.onClientMessage({ t: 'submit', tasks: [task(1, 0), task(2, 0)], fns: [fnA] })
  core.flush()
  const first = toManagers.filter((m) => m.message.t === 'tasks')
  t.equal(first.length, 1)
  t.same(first[0]!.message.t === 'tasks' && first[0]!.message.fns, [fnA], 'function 0 goes with the first message')
  const done = (id: number) => ({ id, try: 0, payload: new Uint8Array([0x90]) })
  core.onManagerMessage('m1', { t: 'results', results: [done(1), done(2)], capacity: 2 })
  core.onClientMessage({ t: 'submit', tasks: [task(3, 0), task(4, 1)], fns: [fnB] })
  core.flush()
  const second = toManagers.filter((m) => m.message.t === 'tasks')[1]!.message
  t.same(second.t === 'tasks' && second.fns, [fnB], 'only the function the manager has not been sent')
  register('m2', 2)
  core.onClientMessage({ t: 'submit', tasks: [task(5, 0), task(6, 1)] })
  core.flush()
  const toM2 = toManagers.filter((m) => m.key === 'm2' && m.message.t === 'tasks')
  t.equal(toM2.length, 1)
  t.same(toM2[0]!.message.t === 'tasks' && toM2[0]!.message.fns, [fnA, fnB], 'a new manager gets the entries its tasks use')
})

t.test('a task naming a function the client never sent fails at once', async (t) => {
  const { core, toClient, register } = setup()
  register('m1', 4)
  core.onClientMessage({ t: 'submit', tasks: [task(1, 7), task(2, 0)], fns: [[0, new Uint8Array([1])]] })
  core.flush()
  const failed = toClient.find((m) => m.t === 'failed')
  t.ok(failed && failed.t === 'failed')
  if (failed?.t !== 'failed') return
  t.same(failed.failures.map((f) => f.id), [1])
  t.equal(failed.failures[0]!.error.code, 'E_PROTOCOL')
  t.match(failed.failures[0]!.error.message, /task #1 names function 7, which the client never sent/)
})
