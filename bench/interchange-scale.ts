/**
 * bench/interchange-scale: the interchange's dispatch cost per task as the number of managers
 * grows. Drives the real InterchangeCore in-process (no sockets) with simulated managers that
 * report results at once, so the figure is the scheduler's own cost.
 *
 *   node out/bench/interchange-scale.js [--managers 1,10,100,1000,5000] [--tasks 200000] [--workers 4] [--metrics on]
 *
 * Flat cost per task from 1 to thousands of managers means no per-task scan of managers.
 * `--metrics on` attaches the Prometheus metrics (what `--metrics-port` does) and scrapes once
 * per run, to measure what they add per task.
 */
import { InterchangeCore, InterchangeMetrics } from 'tsflow/interchange'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from 'tsflow'
import type { InterchangeToManager, ResultEnvelope, TaskEnvelope } from 'tsflow/protocol'
import { appendResult, parseFlags } from './lib/results.js'

interface Simulated {
  key: string
  pending: TaskEnvelope[]
}

function run(managerCount: number, tasks: number, workers: number, metrics = false): { nsPerTask: number; messages: number } {
  const managers = new Map<string, Simulated>()
  const busy: Simulated[] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: 60_000, heartbeatThresholdMs: 600_000 },
    {
      toClient: () => {},
      toManager: (key: string, message: InterchangeToManager) => {
        if (message.t !== 'tasks') return
        const manager = managers.get(key)!
        if (manager.pending.length === 0) busy.push(manager)
        manager.pending.push(...message.tasks)
      },
    },
  )
  const attached = metrics ? new InterchangeMetrics(core) : undefined
  core.metrics = attached
  for (let i = 0; i < managerCount; i++) {
    const key = `m${i}`
    managers.set(key, { key, pending: [] })
    core.onManagerMessage(key, {
      t: 'register',
      managerId: key,
      host: `host${i}`,
      blockId: String(i),
      workers,
      prefetch: 0,
      pid: i,
      proto: PROTOCOL_VERSION,
      version: TSFLOW_VERSION,
    })
  }
  const payload = new Uint8Array(16)
  // A real result payload, msgpack [id 0, try 0, ok 1, nil]: the metrics read its ok byte.
  const answer = new Uint8Array([0x94, 0x00, 0x00, 0x01, 0xc0])
  const batch = 1024
  let submitted = 0
  let completed = 0
  const started = process.hrtime.bigint()
  while (completed < tasks) {
    if (submitted < tasks) {
      const envelopes: TaskEnvelope[] = []
      for (let i = 0; i < batch && submitted < tasks; i++) envelopes.push({ id: ++submitted, try: 0, f: 0, k: 0, payload })
      core.onClientMessage({ t: 'submit', tasks: envelopes, fns: [[0, payload]] })
    }
    core.flush()
    // Every manager that received tasks answers with their results in one message.
    const answering = busy.splice(0)
    for (const manager of answering) {
      const results: ResultEnvelope[] = manager.pending.map((task) => ({ id: task.id, try: task.try, payload: answer }))
      completed += results.length
      manager.pending = []
      core.onManagerMessage(manager.key, { t: 'results', results, capacity: workers })
    }
    if (answering.length === 0 && submitted >= tasks && completed < tasks) throw new Error('no progress: tasks stuck in the interchange')
  }
  if (attached && !attached.registry.render().includes(`tsflow_tasks_completed_total{outcome="ok"} ${tasks}`)) throw new Error('the metrics missed results')
  const elapsedNs = Number(process.hrtime.bigint() - started)
  return { nsPerTask: elapsedNs / tasks, messages: core.stats.taskMessages }
}

const flags = parseFlags(process.argv.slice(2), { managers: '1,10,100,1000,5000', tasks: '200000', workers: '4', metrics: 'off' })
const counts = flags.managers!.split(',').map(Number)
const withMetrics = flags.metrics === 'on'
run(10, 50_000, Number(flags.workers), withMetrics) // warm-up
const rows: { managers: number; nsPerTask: number; taskMessages: number }[] = []
for (const count of counts) {
  const { nsPerTask, messages } = run(count, Number(flags.tasks), Number(flags.workers), withMetrics)
  rows.push({ managers: count, nsPerTask: Math.round(nsPerTask), taskMessages: messages })
  console.log(`${String(count).padStart(6)} managers: ${Math.round(nsPerTask).toString().padStart(6)} ns per task (${messages} task messages)`)
}
console.log(`results appended to ${appendResult('interchange-scale', { tasks: Number(flags.tasks), workersPerManager: Number(flags.workers), metrics: withMetrics, rows })}`)
