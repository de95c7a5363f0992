/**
 * prefetching: the managers' prefetch capacity (tasks a manager holds beyond
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
import { awaitAll } from 'tsflow'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { loadKernel, parseNumber, round, type Experiment, type FlagSpec, type Row } from './common.js'
import { firstExecutor, htexDefaults, median, quantile, waitForManagers } from './kernel.js'
import { noopTask, sleepTask } from './tasks.js'

const flags = {
  capacities: { default: ['0', '1', '4', '16', 'auto'], list: true, commas: true, help: "prefetch capacities: numbers and/or 'auto' (the paper's sweep: 0 1 2 4 8 16 32 64)" },
  durations: { default: ['0', '1', '10'], list: true, commas: true, help: 'task durations, ms (0: no-op)' },
  tasks: { default: '300', help: 'tasks per throughput burst (one app.map)' },
  'latency-calls': { default: '50', help: 'sequential round trips per duration' },
  workers: { default: '2', help: 'workers (one manager)' },
  'worker-mode': { default: 'processes', choices: ['threads', 'processes'], help: 'workers as processes (the HTEX default) or threads' },
} satisfies Record<string, FlagSpec>

export const prefetching: Experiment<typeof flags> = {
  name: 'prefetching',
  summary: `The managers' prefetch capacity (tasks held beyond one per worker, hiding the round trip to the
interchange): 0, 1, 4, 16 and 'auto' by default (--capacities 0 1 2 4 8 16 32 64 auto for the sweep)
against no-op, 1 ms and 10 ms tasks; one fresh executor (one manager, --workers) per capacity. Per
setting: throughput of a burst of --tasks tasks (one app.map), each task's latency within it, and the
round trip of tasks sent one at a time. --repeat bursts (median). Paper: no published data.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    const capacities = [...new Set(f.capacities)].map((v): number | 'auto' => (v === 'auto' ? 'auto' : parseNumber(v, '--capacities', { integer: true })))
    const durations = f.durations.map((v) => parseNumber(v, '--durations'))
    const tasks = parseNumber(f.tasks, '--tasks', { min: 1, integer: true })
    const calls = parseNumber(f['latency-calls'], '--latency-calls', { min: 1, integer: true })
    const workersWanted = parseNumber(f.workers, '--workers', { min: 1, integer: true })
    const points = ctx.config.file ? [capacities[0]!] : capacities
    if (ctx.config.file && capacities.length > 1) ctx.log(`--config ${ctx.config.file}: taken as written, so one setting (its own prefetchCapacity), not --capacities ${capacities.join(' ')}`)
    for (const capacity of points) {
      const config = await ctx.config.make(htexDefaults({ workers: workersWanted, managers: 1, prefetchCapacity: capacity, workerMode: f['worker-mode'] as 'threads' | 'processes' }))
      const kernel = await loadKernel(config)
      try {
        const workers = await waitForManagers(firstExecutor(config), 1, workersWanted)
        const opts = { dfk: kernel }
        const burst = (ms: number, count: number) => (ms === 0 ? noopTask.map(Array.from({ length: count }, (_, i) => [i] as [number]), opts) : sleepTask.map(Array.from({ length: count }, () => [ms] as [number]), opts))
        await awaitAll(burst(0, Math.min(tasks, 500)))
        for (const durationMs of durations) {
          // Warm-up at this duration: 'auto' learns the task length from what it ran.
          await awaitAll(burst(durationMs, workers * 4))
          const bursts: number[] = []
          const latencies: number[] = []
          for (let r = 0; r < ctx.repeat; r++) {
            const started = performance.now()
            await Promise.all(burst(durationMs, tasks).map((future) => future.then(() => latencies.push(performance.now() - started))))
            bursts.push((performance.now() - started) / 1000)
          }
          const trips: number[] = []
          for (let i = 0; i < calls * ctx.repeat; i++) {
            const started = performance.now()
            await burst(durationMs, 1)[0]
            trips.push(performance.now() - started)
          }
          const seconds = median(bursts)
          const row: Row = {
            capacity: String(capacity),
            durationMs,
            workers,
            tasks,
            seconds: round(seconds, 4),
            bursts: bursts.map((x) => round(x, 4)),
            tasksPerSecond: Math.round(tasks / seconds),
            burstLatencyMedianMs: round(median(latencies), 2),
            burstLatencyP95Ms: round(quantile(latencies, 0.95), 2),
            roundTripMedianMs: round(median(trips), 3),
            roundTripP95Ms: round(quantile(trips, 0.95), 3),
          }
          ctx.record(row, config)
          ctx.log(
            `prefetch ${String(row.capacity).padStart(4)}, ${String(durationMs).padStart(3)} ms tasks: ${Number(row.tasksPerSecond).toLocaleString('en-US').padStart(7)} tasks/s, ` +
              `burst latency median ${row.burstLatencyMedianMs} ms p95 ${row.burstLatencyP95Ms} ms, round trip median ${row.roundTripMedianMs} ms p95 ${row.roundTripP95Ms} ms`,
          )
        }
      } finally {
        await kernel.cleanup()
      }
    }
  },
  async plot(rows, svg) {
    await writeVegaLiteSvg(svg, plotSpec(rows, [...new Set(rows.map((r) => String(r.capacity)))]))
  },
  summarize(rows) {
    const lines: string[] = []
    const figures: Row = {}
    for (const ms of [...new Set(rows.map((r) => Number(r.durationMs)))]) {
      const mine = rows.filter((r) => Number(r.durationMs) === ms)
      const best = [...mine].sort((a, b) => Number(b.tasksPerSecond) - Number(a.tasksPerSecond))[0]!
      const name = ms === 0 ? 'noop' : `${ms}ms`
      figures[`${name}_tasks_per_s`] = Object.fromEntries(mine.map((r) => [String(r.capacity), r.tasksPerSecond]))
      figures[`${name}_round_trip_ms`] = Object.fromEntries(mine.map((r) => [String(r.capacity), r.roundTripMedianMs]))
      lines.push(
        `prefetching ${ms === 0 ? 'no-op' : `${ms} ms`} tasks: ${mine.map((r) => `${r.capacity}: ${Number(r.tasksPerSecond).toLocaleString('en-US')}/s`).join(', ')}; best ${best.capacity}; ` +
          `round trip ${mine.map((r) => `${r.capacity}: ${r.roundTripMedianMs} ms`).join(', ')}`,
      )
    }
    return { lines, figures }
  },
}

function plotSpec(rows: Row[], order: string[]): Record<string, unknown> {
  const data = rows.map((r) => ({ ...r, task: Number(r.durationMs) === 0 ? 'no-op' : `${r.durationMs} ms` }))
  const x = { field: 'capacity', type: 'ordinal', sort: order, title: 'prefetch capacity', axis: { labelAngle: 0 } }
  const color = { field: 'task', type: 'nominal', title: 'task', sort: [...new Set(data.map((d) => d.task))] }
  const panel = (field: string, title: string, log = false) => ({
    width: 220,
    height: 200,
    mark: { type: 'line', point: true },
    encoding: { x, y: { field, type: 'quantitative', title, ...(log ? { scale: { type: 'log' } } : {}) }, color },
  })
  return {
    title: { text: 'Prefetching: throughput and latency by prefetch capacity', subtitle: `one manager, ${rows[0]?.workers ?? '?'} workers; bursts of ${rows[0]?.tasks ?? '?'} tasks and sequential round trips` },
    data: { values: data },
    hconcat: [panel('tasksPerSecond', 'throughput (tasks/s)', true), panel('burstLatencyMedianMs', 'burst latency, median (ms)', true), panel('roundTripMedianMs', 'round trip, median (ms)')],
  }
}
