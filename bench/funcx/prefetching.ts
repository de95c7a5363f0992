/**
 * funcX experiment `prefetching`: the managers' prefetch capacity (tasks a manager holds beyond
 * one per worker, to hide the round trip to the interchange) against short tasks. For each
 * capacity (a number or 'auto', the HTEX default that adapts to the measured task length) a fresh
 * executor; for each task duration (0 = no-op, else a sleep of that many ms):
 *  - throughput: --tasks tasks submitted at once, first submit to last result;
 *  - latency in that burst: each task's submit to result (queueing included), median and p95;
 *  - round trip: --latency-calls tasks one after the other, median and p95 (prefetching should
 *    not cost a lone task anything).
 *
 *   node out/bench/funcx.js prefetching
 *   node out/bench/funcx.js prefetching --capacities 0 1 2 4 8 16 32 64 auto --tasks 20000 --repeat 3
 */
import { parseNumber, type FlagSpec } from '../lib/args.js'
import { median, prepare, quantile, round, startKernel, submitAll, waitForManagers, type Prepared } from './kernel.js'
import { openOutput, parseExperimentFlags } from './output-b.js'
import { noopTask, sleepTask } from './tasks.js'

export const NAME = 'prefetching'

export const FLAGS = {
  capacities: { default: ['0', '1', '4', '16', 'auto'], list: true, commas: true, help: "prefetch capacities: numbers and/or 'auto' (the paper's sweep: 0 1 2 4 8 16 32 64)" },
  durations: { default: ['0', '1', '10'], list: true, commas: true, help: 'task durations, ms (0: no-op)' },
  tasks: { default: '300', help: 'tasks per throughput burst' },
  'latency-calls': { default: '50', help: 'sequential round trips per duration' },
  workers: { default: '2', help: 'workers (one manager)' },
  'worker-mode': { default: 'processes', choices: ['threads', 'processes'], help: 'workers as processes (the HTEX default) or threads' },
} satisfies Record<string, FlagSpec>

export const SUMMARY = `Throughput and latency of short tasks by the managers' prefetch capacity (funcX paper, Prefetching).`

export interface PrefetchRow {
  capacity: string
  durationMs: number
  workers: number
  tasks: number
  seconds: number
  tasksPerSecond: number
  burstLatencyMedianMs: number
  burstLatencyP95Ms: number
  roundTripMedianMs: number
  roundTripP95Ms: number
}

export async function run(argv: string[]): Promise<number> {
  const flags = parseExperimentFlags(NAME, SUMMARY, FLAGS, argv)
  if (!flags) return 0
  const capacities = [...new Set(flags.capacities)].map((v) => (v === 'auto' ? 'auto' : parseNumber(v, '--capacities', { integer: true })))
  const durations = flags.durations.map((v) => parseNumber(v, '--durations'))
  const tasks = parseNumber(flags.tasks, '--tasks', { min: 1, integer: true })
  const calls = parseNumber(flags['latency-calls'], '--latency-calls', { min: 1, integer: true })
  const workersWanted = parseNumber(flags.workers, '--workers', { min: 1, integer: true })
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  let described: Prepared['described'] = []
  const out = openOutput(NAME, flags, () => ({ source: flags.config || 'default', executors: described }))
  const rows: PrefetchRow[] = []
  for (const capacity of capacities) {
    const prepared = await prepare(flags.config, { experiment: NAME, workers: workersWanted, managers: 1, prefetchCapacity: capacity, workerMode: flags['worker-mode'] as 'threads' | 'processes' })
    described = prepared.described
    const kernel = await startKernel(prepared)
    try {
      const workers = await waitForManagers(prepared.executor, 1, workersWanted)
      const noop = noopTask.with({ dfk: kernel })
      const sleep = sleepTask.with({ dfk: kernel })
      const call = (ms: number) => (ms === 0 ? noop(0) : sleep(ms))
      await Promise.all(await submitAll(Math.min(tasks, 500), (i) => noop(i)))
      for (const durationMs of durations) {
        // Warm-up at this duration: 'auto' learns the task length from what it ran.
        await Promise.all(await submitAll(workers * 4, () => call(durationMs)))
        const bursts: number[] = []
        const latencies: number[] = []
        for (let r = 0; r < repeat; r++) {
          const submitted: number[] = new Array(tasks)
          const started = performance.now()
          const futures = await submitAll(tasks, (i) => {
            submitted[i] = performance.now()
            return call(durationMs).then(() => latencies.push(performance.now() - submitted[i]!))
          })
          await Promise.all(futures)
          bursts.push((performance.now() - started) / 1000)
        }
        const trips: number[] = []
        for (let i = 0; i < calls * repeat; i++) {
          const started = performance.now()
          await call(durationMs)
          trips.push(performance.now() - started)
        }
        const seconds = median(bursts)
        const row: PrefetchRow = {
          capacity: String(capacity),
          durationMs,
          workers,
          tasks,
          seconds: round(seconds, 4),
          tasksPerSecond: Math.round(tasks / seconds),
          burstLatencyMedianMs: round(median(latencies), 2),
          burstLatencyP95Ms: round(quantile(latencies, 0.95), 2),
          roundTripMedianMs: round(median(trips), 3),
          roundTripP95Ms: round(quantile(trips, 0.95), 3),
        }
        rows.push(row)
        out.record({ ...row, bursts: bursts.map((x) => round(x, 4)) })
        console.log(
          `prefetch ${row.capacity.padStart(4)}, ${String(durationMs).padStart(3)} ms tasks: ${row.tasksPerSecond.toLocaleString('en-US').padStart(7)} tasks/s, ` +
            `burst latency median ${row.burstLatencyMedianMs} ms p95 ${row.burstLatencyP95Ms} ms, round trip median ${row.roundTripMedianMs} ms p95 ${row.roundTripP95Ms} ms`,
        )
      }
    } finally {
      await kernel.cleanup()
    }
  }
  const best = (ms: number) => rows.filter((r) => r.durationMs === ms).sort((a, b) => b.tasksPerSecond - a.tasksPerSecond)[0]
  await out.finish({ rows, bestByDuration: durations.map((ms) => ({ durationMs: ms, capacity: best(ms)?.capacity, tasksPerSecond: best(ms)?.tasksPerSecond })) }, plotSpec(rows, capacities.map(String)))
  return 0
}

function plotSpec(rows: PrefetchRow[], order: string[]): Record<string, unknown> {
  const data = rows.map((r) => ({ ...r, task: r.durationMs === 0 ? 'no-op' : `${r.durationMs} ms` }))
  const x = { field: 'capacity', type: 'ordinal', sort: order, title: 'prefetch capacity', axis: { labelAngle: 0 } }
  const color = { field: 'task', type: 'nominal', title: 'task', sort: [...new Set(data.map((d) => d.task))] }
  const panel = (field: string, title: string, log = false) => ({
    width: 220,
    height: 200,
    mark: { type: 'line', point: true },
    encoding: { x, y: { field, type: 'quantitative', title, ...(log ? { scale: { type: 'log' } } : {}) }, color },
  })
  return {
    title: { text: 'tsflow prefetching (funcX suite)', subtitle: `one manager, ${rows[0]?.workers ?? '?'} workers; bursts of ${rows[0]?.tasks ?? '?'} tasks and sequential round trips` },
    data: { values: data },
    hconcat: [panel('tasksPerSecond', 'throughput (tasks/s)', true), panel('burstLatencyMedianMs', 'burst latency, median (ms)', true), panel('roundTripMedianMs', 'round trip, median (ms)')],
  }
}
