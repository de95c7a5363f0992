/**
 * bench/monitoring-writer: the monitoring writer thread alone. Starts the writer of a built tree
 * (--dist, default this checkout's dist/; point it at another checkout's dist/ for a before and
 * after), feeds it synthetic batches of no-op task state changes (launched, running, exec_done)
 * at a steady rate, and measures the writer thread's CPU time per task from /proc. No kernel, no
 * executor: the figure is the writer's own cost, which on a 2-core machine is taken from the
 * workflow.
 *
 *   node out/bench/monitoring-writer.js [--tasks 200000] [--rate 100000] [--latency 0,100,3000] [--dist DIR]
 *
 * --latency: ms from a task's launch to its end; 0 puts all three changes in one batch, longer
 * ones put the end in a later batch (a queue of tasks), as a flood of no-op tasks does.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { main } from 'tsflow'
import { appendResult, parseFlags } from './lib/results.js'
import { threadCpu } from './lib/threads.js'

const TICK_MS = 25

async function measure(dist: string, tasks: number, rate: number, latencyMs: number): Promise<{ cpuUsPerTask: number; seconds: number }> {
  const protocol = (await import(pathToFileURL(join(dist, 'protocol', 'monitoring.js')).href)) as {
    Rec: Record<string, number>
    STATE_FIELDS: number
    stateCode(state: string): number
  }
  const { Rec, STATE_FIELDS, stateCode } = protocol
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-bench-writer-'))
  // The writer is the thread the Worker adds (found by difference: an older build's writer is unnamed).
  const existing = new Set(threadCpu().keys())
  const writerCpuS = () => {
    let total = 0
    for (const [tid, thread] of threadCpu()) if (!existing.has(tid)) total += thread.cpuS
    return total
  }
  const worker = new Worker(pathToFileURL(join(dist, 'monitoring', 'writer-thread.js')), {
    workerData: { db: join(dir, 'monitoring.db'), retention: {}, retentionEveryMs: 3_600_000 },
  })
  let waiting: ((message: { t: string }) => void) | undefined
  worker.on('message', (message: { t: string }) => {
    const resolve = waiting
    waiting = undefined
    resolve?.(message)
  })
  const next = () => new Promise<{ t: string }>((resolve) => (waiting = resolve))
  try {
    await next() // ready
    let seq = 0
    const send = (records: unknown[], at: number[], states: Float64Array, stateCount: number) =>
      worker.postMessage({ t: 'batch', seq: ++seq, records, at, states, stateCount, sentMs: Date.now() }, [states.buffer as ArrayBuffer])
    send([[Rec.name, 0, 'run'], [Rec.workflowStart, 0, dir, '["threads"]', Date.now()], [Rec.name, 1, 'noop'], [Rec.name, 2, 'threads']], [0, 0, 0, 0], new Float64Array(0), 0)
    await next()
    const [launched, running, done] = ['launched', 'running', 'exec_done'].map(stateCode) as [number, number, number]
    const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000))
    const ticks = Math.ceil(tasks / perTick)
    const lag = Math.round(latencyMs / TICK_MS)
    // CPU of the writer thread before the first task batch (its start-up excluded).
    const before = writerCpuS()
    const started = performance.now()
    for (let tick = 0; tick < ticks + lag; tick++) {
      const tickStarted = performance.now()
      const launch = tick < ticks ? Math.min(perTick, tasks - tick * perTick) : 0
      const endTick = tick - lag
      const end = endTick >= 0 && endTick < ticks ? Math.min(perTick, tasks - endTick * perTick) : 0
      const count = launch + 2 * end
      const states = new Float64Array(Math.max(1, count) * STATE_FIELDS)
      let o = 0
      const put = (taskId: number, code: number) => {
        states.set([0, taskId, 0, code, 1, 2, Date.now()], o)
        o += STATE_FIELDS
      }
      for (let i = 0; i < launch; i++) put(tick * perTick + i + 1, launched)
      for (let i = 0; i < end; i++) {
        put(endTick * perTick + i + 1, running)
        put(endTick * perTick + i + 1, done)
      }
      send([], [], states, count)
      await next()
      const left = TICK_MS - (performance.now() - tickStarted)
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
    }
    const seconds = (performance.now() - started) / 1000
    const cpuS = writerCpuS() - before
    worker.postMessage({ t: 'close' })
    await next()
    return { cpuUsPerTask: Math.round(((cpuS * 1e6) / tasks) * 100) / 100, seconds }
  } finally {
    await worker.terminate()
    rmSync(dir, { recursive: true, force: true })
  }
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '200000', rate: '100000', latency: '0,100,3000', dist: '' })
  const dist = resolve(flags.dist || fileURLToPath(new URL('../../dist', import.meta.url)))
  const tasks = Number(flags.tasks)
  const rate = Number(flags.rate)
  const rows = []
  for (const latencyMs of flags.latency!.split(',').map(Number)) {
    const { cpuUsPerTask, seconds } = await measure(dist, tasks, rate, latencyMs)
    console.log(`latency ${latencyMs} ms: writer thread ${cpuUsPerTask} us CPU per task (${tasks.toLocaleString('en')} tasks at ${rate.toLocaleString('en')}/s, ${seconds.toFixed(1)} s)`)
    rows.push({ latencyMs, cpuUsPerTask })
  }
  console.log(`results appended to ${appendResult('monitoring-writer', { dist, tasks, rate, rows })}`)
})
