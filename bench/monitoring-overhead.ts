/**
 * bench/monitoring-overhead: no-op task throughput on the ThreadPoolExecutor with monitoring off
 * and on (issue 12's figure: on >= 85% of off), as tsflow-perf measures it: submit a burst of
 * no-op tasks, time until every future settled.
 *
 *   npm run bench:monitoring-overhead [-- --tasks 50000 --reps 3 --threads 2]
 *
 * Each rep starts a fresh kernel per mode (monitoring records per kernel start), off and on
 * alternating so drift on a shared machine hits both. With monitoring on, also: the time
 * cleanup() took to flush and close the store, records sent vs written, the writer's lag.
 * Results are appended to bench/results/monitoring-overhead.jsonl.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, ThreadPoolExecutor, app, main } from 'tsflow'
import { appendResult, parseFlags } from './lib/results.js'

export const noop = app(function noop(x: number) {
  return x
})

interface Rep {
  tasksPerSec: number
  cleanupMs: number
  sent?: number
  written?: number
  maxLagMs?: number
}

async function rep(scratch: string, tasks: number, threads: number, monitoring: boolean): Promise<Rep> {
  const runDir = join(scratch, 'runinfo')
  const dfk = await new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: threads })], monitoring: { enabled: monitoring } }).start()
  const submit = noop.with({ dfk })
  const started = performance.now()
  const futures = new Array(tasks)
  for (let i = 0; i < tasks; i++) futures[i] = submit(i)
  await Promise.all(futures)
  const tasksPerSec = tasks / ((performance.now() - started) / 1000)
  const cleanupStarted = performance.now()
  await dfk.cleanup()
  const stats = dfk.recorderStats
  return { tasksPerSec, cleanupMs: performance.now() - cleanupStarted, sent: stats?.sent, written: stats?.written, maxLagMs: stats?.maxLagMs }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '50000', reps: '3', threads: '2' })
  const tasks = Number(flags.tasks)
  const reps = Number(flags.reps)
  const threads = Number(flags.threads)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-monitoring-'))
  try {
    await rep(scratch, 10_000, threads, false) // warm-up: threads, JIT, the page cache
    await rep(scratch, 10_000, threads, true)
    const off: Rep[] = []
    const on: Rep[] = []
    for (let r = 0; r < reps; r++) {
      off.push(await rep(scratch, tasks, threads, false))
      on.push(await rep(scratch, tasks, threads, true))
    }
    const offRate = median(off.map((r) => r.tasksPerSec))
    const onRate = median(on.map((r) => r.tasksPerSec))
    const row = {
      tasks,
      reps,
      threads,
      offTasksPerSec: Math.round(offRate),
      onTasksPerSec: Math.round(onRate),
      ratio: Number((onRate / offRate).toFixed(3)),
      offRates: off.map((r) => Math.round(r.tasksPerSec)),
      onRates: on.map((r) => Math.round(r.tasksPerSec)),
      onCleanupMs: on.map((r) => Math.round(r.cleanupMs)),
      offCleanupMs: off.map((r) => Math.round(r.cleanupMs)),
      onRecordsLost: on.map((r) => r.sent! - r.written!),
      onMaxLagMs: on.map((r) => r.maxLagMs),
    }
    console.log(`monitoring off: ${row.offTasksPerSec.toLocaleString('en')} tasks/s (median of ${reps} x ${tasks}, ${threads} threads)`)
    console.log(`monitoring on:  ${row.onTasksPerSec.toLocaleString('en')} tasks/s; ratio ${row.ratio}`)
    console.log(`on: cleanup (flush + close) ${row.onCleanupMs.join(', ')} ms vs off ${row.offCleanupMs.join(', ')} ms; records lost ${row.onRecordsLost.join(', ')}; max writer lag ${row.onMaxLagMs.join(', ')} ms`)
    console.log(`results appended to ${appendResult('monitoring-overhead', row)}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
