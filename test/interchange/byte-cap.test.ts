// Large payloads are not packed into huge messages: dispatch splits at the byte cap.
import t from 'tap'
import { InterchangeCore } from 'tsflow/interchange'
import { MAX_BATCH_PAYLOAD_BYTES, stamp, type InterchangeToManager, type TaskEnvelope } from 'tsflow/protocol'

t.test('tasks to one manager are split into messages of about MAX_BATCH_PAYLOAD_BYTES', async (t) => {
  const sent: TaskEnvelope[][] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: 60_000, heartbeatThresholdMs: 600_000 },
    {
      toClient: () => {},
      toManager: (_key: string, message: InterchangeToManager) => {
        if (message.t === 'tasks') sent.push(message.tasks)
      },
    },
  )
  core.onManagerMessage('m', { t: 'register', managerId: 'm', host: 'h', blockId: '0', workers: 10, prefetch: 0, pid: 1, ...stamp() })
  const third = Math.floor(MAX_BATCH_PAYLOAD_BYTES / 3) + 1
  const big = Array.from({ length: 9 }, (_, i) => ({ id: i + 1, try: 0, f: 0, k: 0, payload: new Uint8Array(third) }))
  const small = { id: 10, try: 0, f: 0, k: 0, payload: new Uint8Array(10) }
  core.onClientMessage({ t: 'submit', tasks: [...big, small], fns: [[0, new Uint8Array(1)]] })
  core.flush()
  t.equal(sent.flat().length, 10, 'every task was dispatched')
  t.same(sent.map((tasks) => tasks.length), [3, 3, 3, 1], 'three large payloads per message, the rest in the last')
  for (const tasks of sent) {
    const bytes = tasks.reduce((total, task) => total + task.payload.byteLength, 0)
    t.ok(bytes < MAX_BATCH_PAYLOAD_BYTES + third, `a message carries ${bytes} bytes`)
  }
})

t.test('small tasks still travel together', async (t) => {
  const sent: TaskEnvelope[][] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: 60_000, heartbeatThresholdMs: 600_000 },
    { toClient: () => {}, toManager: (_key, message) => message.t === 'tasks' && void sent.push(message.tasks) },
  )
  core.onManagerMessage('m', { t: 'register', managerId: 'm', host: 'h', blockId: '0', workers: 500, prefetch: 0, pid: 1, ...stamp() })
  core.onClientMessage({ t: 'submit', tasks: Array.from({ length: 500 }, (_, i) => ({ id: i, try: 0, f: 0, k: 0, payload: new Uint8Array(100) })), fns: [[0, new Uint8Array(1)]] })
  core.flush()
  t.same(sent.map((tasks) => tasks.length), [500], 'one message')
})
