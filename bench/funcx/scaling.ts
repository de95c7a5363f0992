/**
 * scaling: strong scaling (a fixed number of tasks) and weak scaling (--per-worker tasks per
 * worker, 10 in the paper) over worker counts, for no-op tasks and tasks that sleep --sleeps ms.
 * Each worker count gets a fresh executor; the clock runs from the first submit (one app.map
 * batch) to the last result, after every manager connected and a warm-up. Sleeping tasks wait on
 * a timer, so worker counts past the cores (oversubscription) still scale; no-op tasks are bound
 * by the dispatch path and the cores.
 *
 * Efficiency is against linear scaling from the smallest worker count measured: strong
 * T(w0)·w0 / (T(w)·w), weak T(w0) / T(w). Sleep tasks also carry their ideal time (the sleeps
 * alone: ceil(tasks / workers) x sleep). Paper: funcX ~1.4-1.7k tasks/s per endpoint.
 *
 *   node out/bench/funcx.js scaling                           # short: 1 2 4 8 workers, no-op and 10 ms
 *   node out/bench/funcx.js scaling --workers 1 2 4 8 16 32 64 --sleeps 0 10 100 1000 --tasks 100000 --sleep-tasks 10000
 */
import { awaitAll } from 'tsflow'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { BenchUsage, ints, loadKernel, parseNumber, round, type Experiment, type FlagSpec, type Row } from './common.js'
import { firstExecutor, htexDefaults, managersOf, median, waitForManagers } from './kernel.js'
import { noopTask, sleepTask } from './tasks.js'

const flags = {
  workers: { default: ['1', '2', '4', '8'], list: true, commas: true, help: 'worker counts (all managers together; local default only)' },
  managers: { default: '1', help: 'managers (blocks of one node) the workers are split over' },
  sleeps: { default: ['0', '10'], list: true, commas: true, help: 'task kinds: 0 = no-op, else sleep this many ms (the paper: 0 10 100 1000)' },
  modes: { default: ['strong', 'weak'], list: true, commas: true, choices: ['strong', 'weak'], help: 'strong (a fixed task count) and/or weak (tasks per worker) scaling' },
  tasks: { default: '2000', help: 'strong scaling: no-op tasks per measurement (the paper: 100000)' },
  'sleep-tasks': { default: '100', help: 'strong scaling: sleep tasks per measurement' },
  'per-worker': { default: '10', help: 'weak scaling: tasks per worker' },
  'worker-mode': { default: 'threads', choices: ['threads', 'processes'], help: 'workers as threads of the manager (cheap to oversubscribe) or processes' },
  warmup: { default: '200', help: 'no-op tasks run (and two sleep tasks per worker) before measuring' },
} satisfies Record<string, FlagSpec>

/** Efficiency against linear scaling from the smallest worker count of the same mode and task. */
export function efficiency(row: Row, rows: readonly Row[]): number {
  const peers = rows.filter((r) => r.mode === row.mode && r.sleepMs === row.sleepMs).sort((a, b) => Number(a.workers) - Number(b.workers))
  const base = peers[0] ?? row
  const t0 = Number(base.seconds)
  const w0 = Number(base.workers)
  return round(row.mode === 'strong' ? (t0 * w0) / (Number(row.seconds) * Number(row.workers)) : t0 / Number(row.seconds), 3)
}

export const scaling: Experiment<typeof flags> = {
  name: 'scaling',
  summary: `Strong (a fixed task count) and weak (10 tasks per worker) scaling over worker counts, for no-op
tasks and sleep tasks, timed from the first submit to the last result after all managers connected and a
warm-up; one fresh executor per worker count, the tasks submitted as one app.map batch; --repeat
measurements per point (median). Sleep tasks oversubscribe the cores. Efficiency against linear scaling
from the fewest workers. Paper: funcX ~1.4-1.7k tasks/s per endpoint.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    const workerCounts = [...new Set(ints(f.workers, '--workers'))].sort((a, b) => a - b)
    const managers = parseNumber(f.managers, '--managers', { min: 1, integer: true })
    const sleeps = f.sleeps.map((v) => parseNumber(v, '--sleeps'))
    const tasks = parseNumber(f.tasks, '--tasks', { min: 1, integer: true })
    const sleepTasks = parseNumber(f['sleep-tasks'], '--sleep-tasks', { min: 1, integer: true })
    const perWorker = parseNumber(f['per-worker'], '--per-worker', { min: 1, integer: true })
    const warmup = parseNumber(f.warmup, '--warmup', { integer: true })
    const modes = [...new Set(f.modes)] as ('strong' | 'weak')[]
    if (workerCounts.some((w) => w < managers)) throw new BenchUsage(`--workers ${workerCounts.join(' ')}: each count must be at least --managers ${managers}`)
    // A --config file is taken as written: one point, with the workers its managers bring.
    const points = ctx.config.file ? [workerCounts[0]!] : workerCounts
    if (ctx.config.file && workerCounts.length > 1) ctx.log(`--config ${ctx.config.file}: taken as written, so one point (the workers it brings; for an endpoint, give its worker count as --workers), not --workers ${workerCounts.join(' ')}`)
    const rows: Row[] = []
    for (const wanted of points) {
      const config = await ctx.config.make(htexDefaults({ workers: wanted, managers, workerMode: f['worker-mode'] as 'threads' | 'processes' }))
      const kernel = await loadKernel(config)
      try {
        const executor = firstExecutor(config)
        const workers = await waitForManagers(executor, managers, wanted)
        // An endpoint's managers are not visible to its client: its worker count is --workers as given.
        const workersFrom = managersOf(executor) === undefined ? 'the --workers flag' : 'the connected managers'
        const opts = { dfk: kernel }
        const run = (sleepMs: number, count: number) => awaitAll(sleepMs === 0 ? noopTask.map(Array.from({ length: count }, (_, i) => [i] as [number]), opts) : sleepTask.map(Array.from({ length: count }, () => [sleepMs] as [number]), opts))
        // Warm-up: the JIT of every process on the path, and every worker started and used.
        await run(0, warmup)
        await run(Math.min(10, Math.max(...sleeps)), 2 * workers)
        for (const sleepMs of sleeps) {
          for (const mode of modes) {
            const count = mode === 'strong' ? (sleepMs === 0 ? tasks : sleepTasks) : perWorker * workers
            const runs: number[] = []
            for (let r = 0; r < ctx.repeat; r++) {
              const started = performance.now()
              await run(sleepMs, count)
              runs.push((performance.now() - started) / 1000)
            }
            const seconds = median(runs)
            const row: Row = {
              mode,
              task: sleepMs === 0 ? 'no-op' : `sleep ${sleepMs} ms`,
              sleepMs,
              workers,
              workersFrom,
              managers,
              tasks: count,
              seconds: round(seconds, 4),
              runs: runs.map((x) => round(x, 4)),
              tasksPerSecond: Math.round(count / seconds),
              idealSeconds: sleepMs === 0 ? null : round((Math.ceil(count / workers) * sleepMs) / 1000, 4),
            }
            // Worker counts run in ascending order, so the base of the efficiency is already here.
            row.efficiency = efficiency(row, [...rows, row])
            rows.push(row)
            ctx.record(row, config)
            ctx.log(
              `${mode.padEnd(6)} ${String(row.task).padEnd(14)} ${String(workers).padStart(3)} workers: ${String(count).padStart(6)} tasks in ${seconds.toFixed(3)} s, ` +
                `${Number(row.tasksPerSecond).toLocaleString('en-US')} tasks/s${row.idealSeconds !== null ? ` (ideal ${row.idealSeconds} s)` : ''}, efficiency ${(Number(row.efficiency) * 100).toFixed(0)} %`,
            )
          }
        }
      } finally {
        await kernel.cleanup()
      }
    }
  },
  async plot(rows, svg) {
    const data: Row[] = rows.map((row) => ({ ...row, efficiency: efficiency(row, rows) }))
    const x = { field: 'workers', type: 'quantitative', scale: { type: 'log', base: 2 }, axis: { values: [...new Set(rows.map((r) => Number(r.workers)))] }, title: 'workers' }
    const color = { field: 'task', type: 'nominal', title: 'task' }
    const panel = (mode: string, y: Record<string, unknown>, title: string, ideal = false) => ({
      title,
      width: 300,
      height: 200,
      layer: [
        { data: { values: data.filter((r) => r.mode === mode) }, mark: { type: 'line', point: true }, encoding: { x, y, color } },
        ...(ideal ? [{ data: { values: [{ y: 1 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { field: 'y', type: 'quantitative' } } }] : []),
      ],
    })
    await writeVegaLiteSvg(svg, {
      title: { text: 'Scaling: strong and weak', subtitle: 'first submit to last result, after all managers connected and a warm-up; efficiency against linear scaling from the fewest workers (dashed: ideal)' },
      vconcat: [
        {
          hconcat: [
            panel('strong', { field: 'tasksPerSecond', type: 'quantitative', scale: { type: 'log' }, title: 'tasks/s (log)' }, 'strong scaling: throughput'),
            panel('weak', { field: 'seconds', type: 'quantitative', title: 'completion time (s)' }, 'weak scaling: time'),
          ],
        },
        {
          hconcat: [
            panel('strong', { field: 'efficiency', type: 'quantitative', title: 'efficiency' }, 'strong scaling: efficiency', true),
            panel('weak', { field: 'efficiency', type: 'quantitative', title: 'efficiency' }, 'weak scaling: efficiency', true),
          ],
        },
      ],
    })
  },
  summarize(rows) {
    const lines: string[] = []
    const figures: Row = {}
    const noop = rows.filter((r) => r.mode === 'strong' && r.sleepMs === 0).sort((a, b) => Number(b.tasksPerSecond) - Number(a.tasksPerSecond))[0]
    if (noop) {
      figures.peak_noop_tasks_per_s = noop.tasksPerSecond
      figures.peak_noop_workers = noop.workers
      lines.push(`scaling: no-op peak ${Number(noop.tasksPerSecond).toLocaleString('en-US')} tasks/s at ${noop.workers} workers (strong, ${noop.tasks} tasks); paper: funcX ~1.4-1.7k tasks/s per endpoint`)
    }
    for (const mode of ['strong', 'weak']) {
      for (const sleepMs of [...new Set(rows.filter((r) => r.mode === mode).map((r) => Number(r.sleepMs)))]) {
        const mine = rows.filter((r) => r.mode === mode && Number(r.sleepMs) === sleepMs).sort((a, b) => Number(a.workers) - Number(b.workers))
        const top = mine[mine.length - 1]!
        const e = efficiency(top, rows)
        figures[`${mode}_${sleepMs === 0 ? 'noop' : `sleep${sleepMs}ms`}_efficiency_at_${top.workers}`] = e
        lines.push(`scaling ${mode} ${top.task}: ${mine.map((r) => `${r.workers}w ${Number(r.seconds).toFixed(3)} s`).join(', ')}; efficiency at ${top.workers} workers ${(e * 100).toFixed(0)} %`)
      }
    }
    return { lines, figures }
  },
}
