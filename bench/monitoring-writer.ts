/**
 * bench/monitoring-writer: the monitoring writer thread alone. Starts the writer of a built tree
 * (--dist, default this checkout's dist/; point it at another checkout's dist/ for a before and
 * after), feeds it synthetic batches of no-op task state changes (launched, running, exec_done)
 * at a steady rate, and measures the writer thread's CPU time per task from /proc. No kernel, no
 * executor: the figure is the writer's own cost, which on a 2-core machine is taken from the
 * workflow.
 *
 *   node out/bench/monitoring-writer.js [--tasks 200000] [--rate 100000] [--latency 0,100,3000] [--paths summaries,changes] [--dist DIR]
 *
 * --latency: ms from a task's launch to its end; 0 puts all three changes in one batch, longer
 * ones put the end in a later batch (a queue of tasks), as a flood of no-op tasks does.
 *
 * --paths: \`summaries\` feeds what a kernel's own recorder sends (one summary per task at its end,
 * and a snapshot a second after its launch when it is still going then); \`changes\` the state
 * changes one by one, as a recorder of every run heard on the channels (and a task that does
 * something unusual) sends. Default both.
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

type WriterPath = 'summaries' | 'changes'

async function measure(dist: string, tasks: number, rate: number, latencyMs: number, path: WriterPath): Promise<{ cpuUsPerTask: number; seconds: number }> {
  const protocol = (await import(pathToFileURL(join(dist, 'protocol', 'monitoring.js')).href)) as {
    Rec: Record<string, number>
    STATE_FIELDS: number
    SUMMARY_FIELDS?: number
    stateCode(state: string): number
  }
  const { Rec, STATE_FIELDS, SUMMARY_FIELDS, stateCode } = protocol
  if (path === 'summaries' && SUMMARY_FIELDS === undefined) throw new Error(`${dist} has no task summaries (a build from before them): use --paths changes`)
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
    // packed buffers sent back for reuse are not answers
    if (message.t === 'buffers') return
    const resolve = waiting
    waiting = undefined
    resolve?.(message)
  })
  const next = () => new Promise<{ t: string }>((resolve) => (waiting = resolve))
  try {
    await next() // ready
    let seq = 0
    const send = (records: unknown[], at: number[], states: Float64Array, stateCount: number, summaries?: Float64Array, summaryCount = 0) =>
      worker.postMessage(
        { t: 'batch', seq: ++seq, records, at, states, stateCount, summaries, summaryCount, sentMs: Date.now() },
        [states.buffer as ArrayBuffer, ...(summaries ? [summaries.buffer as ArrayBuffer] : [])],
      )
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
      if (path === 'summaries') {
        // a snapshot of the tasks launched a second ago that are still going, and each ending task's summary
        const snapshotTick = tick - Math.round(1000 / TICK_MS)
        const snapshots = latencyMs > 1000 && snapshotTick >= 0 && snapshotTick < ticks ? Math.min(perTick, tasks - snapshotTick * perTick) : 0
        const summaries = new Float64Array(Math.max(1, snapshots + end) * SUMMARY_FIELDS!)
        let o = 0
        const now = Date.now()
        for (let i = 0; i < snapshots; i++, o += SUMMARY_FIELDS!) summaries.set([0, snapshotTick * perTick + i + 1, 0, launched, 1, 2, now - 1000, now - 1000, -1, -1], o)
        for (let i = 0; i < end; i++, o += SUMMARY_FIELDS!) summaries.set([0, endTick * perTick + i + 1, 0, done, 1, 2, now - latencyMs, now - latencyMs, now - latencyMs + 1, now], o)
        send([], [], new Float64Array(0), 0, summaries, snapshots + end)
        await next()
        const left = TICK_MS - (performance.now() - tickStarted)
        if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
        continue
      }
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
  const flags = parseFlags(process.argv.slice(2), { tasks: '200000', rate: '100000', latency: '0,100,3000', dist: '', paths: 'summaries,changes' })
  const dist = resolve(flags.dist || fileURLToPath(new URL('../../dist', import.meta.url)))
  const tasks = Number(flags.tasks)
  const rate = Number(flags.rate)
  const rows = []
  for (const path of flags.paths!.split(',') as WriterPath[]) {
    if (path !== 'summaries' && path !== 'changes') throw new Error(`--paths: summaries and/or changes (got ${path})`)
    for (const latencyMs of flags.latency!.split(',').map(Number)) {
      const { cpuUsPerTask, seconds } = await measure(dist, tasks, rate, latencyMs, path)
      console.log(`${path}, latency ${latencyMs} ms: writer thread ${cpuUsPerTask} us CPU per task (${tasks.toLocaleString('en')} tasks at ${rate.toLocaleString('en')}/s, ${seconds.toFixed(1)} s)`)
      rows.push({ path, latencyMs, cpuUsPerTask })
    }
  }
  console.log(`results appended to ${appendResult('monitoring-writer', { dist, tasks, rate, rows })}`)
})
