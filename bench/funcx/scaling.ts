/**
 * funcX experiment `scaling`: strong scaling (a fixed number of tasks, --tasks) and weak scaling
 * (--per-worker tasks per worker, 10 in the paper) over worker counts, for no-op tasks and tasks
 * that sleep --sleeps ms. Each worker count gets a fresh executor; the clock runs from the first
 * submit to the last result, after every manager connected and a warm-up. Sleeping tasks wait on
 * a timer, so worker counts past the cores (oversubscription) still scale; no-op tasks are bound
 * by the dispatch path and the cores.
 *
 * Efficiency is against ideal linear scaling from the smallest worker count measured: strong
 * T(w0)·w0 / (T(w)·w), weak T(w0) / T(w). Sleep tasks also report their ideal time (the sleeps
 * alone: ceil(tasks / workers) x sleep).
 *
 *   node out/bench/funcx.js scaling                           # short: 1 2 4 8 workers, no-op and 10 ms
 *   node out/bench/funcx.js scaling --workers 1 2 4 8 16 32 64 --sleeps 0 10 100 1000 --tasks 100000 --sleep-tasks 10000
 */
import { BenchUsage, parseNumber, type FlagSpec } from '../lib/args.js'
import { median, prepare, round, startKernel, submitAll, waitForManagers, type Prepared } from './kernel.js'
import { openOutput, parseExperimentFlags } from './output-b.js'
import { noopTask, sleepTask } from './tasks.js'

export const NAME = 'scaling'

export const FLAGS = {
  workers: { default: ['1', '2', '4', '8'], list: true, commas: true, help: 'worker counts (all managers together)' },
  managers: { default: '1', help: 'managers (blocks of one node) the workers are split over' },
  sleeps: { default: ['0', '10'], list: true, commas: true, help: 'task kinds: 0 = no-op, else sleep this many ms (the paper: 0 10 100 1000)' },
  modes: { default: ['strong', 'weak'], list: true, commas: true, choices: ['strong', 'weak'], help: 'strong (a fixed task count) and/or weak (tasks per worker) scaling' },
  tasks: { default: '2000', help: 'strong scaling: no-op tasks per measurement (the paper: 100000)' },
  'sleep-tasks': { default: '100', help: 'strong scaling: sleep tasks per measurement (the paper: 100000)' },
  'per-worker': { default: '10', help: 'weak scaling: tasks per worker' },
  'worker-mode': { default: 'threads', choices: ['threads', 'processes'], help: 'workers as threads of the manager (cheap to oversubscribe) or processes' },
  warmup: { default: '200', help: 'no-op tasks run (and one sleep task per worker) before measuring' },
} satisfies Record<string, FlagSpec>

export const SUMMARY = `Strong and weak scaling over worker counts, for no-op and sleep tasks (funcX paper, Scalability).`

export interface ScalingRow {
  mode: 'strong' | 'weak'
  task: string
  sleepMs: number
  workers: number
  managers: number
  tasks: number
  seconds: number
  runs: number[]
  tasksPerSecond: number
  idealSeconds: number | null
  efficiency?: number
}

export async function run(argv: string[]): Promise<number> {
  const flags = parseExperimentFlags(NAME, SUMMARY, FLAGS, argv)
  if (!flags) return 0
  const workerCounts = [...new Set(flags.workers.map((v) => parseNumber(v, '--workers', { min: 1, integer: true })))].sort((a, b) => a - b)
  const managers = parseNumber(flags.managers, '--managers', { min: 1, integer: true })
  const sleeps = flags.sleeps.map((v) => parseNumber(v, '--sleeps'))
  const tasks = parseNumber(flags.tasks, '--tasks', { min: 1, integer: true })
  const sleepTasks = parseNumber(flags['sleep-tasks'], '--sleep-tasks', { min: 1, integer: true })
  const perWorker = parseNumber(flags['per-worker'], '--per-worker', { min: 1, integer: true })
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const warmup = parseNumber(flags.warmup, '--warmup', { integer: true })
  const modes = [...new Set(flags.modes)] as ('strong' | 'weak')[]
  if (workerCounts.some((w) => w < managers)) throw new BenchUsage(`--workers ${workerCounts.join(' ')}: each count must be at least --managers ${managers}`)

  let described: Prepared['described'] = []
  const out = openOutput(NAME, flags, () => ({ source: flags.config || 'default', executors: described }))
  const rows: ScalingRow[] = []
  for (const wanted of workerCounts) {
    const prepared = await prepare(flags.config, { experiment: NAME, workers: wanted, managers, workerMode: flags['worker-mode'] as 'threads' | 'processes' })
    described = prepared.described
    const kernel = await startKernel(prepared)
    try {
      const workers = await waitForManagers(prepared.executor, managers, wanted)
      const noop = noopTask.with({ dfk: kernel })
      const sleep = sleepTask.with({ dfk: kernel })
      // Warm-up: the JIT of every process on the path, and every worker started and used once.
      await Promise.all(await submitAll(warmup, (i) => noop(i)))
      await Promise.all(await submitAll(workers, () => sleep(Math.min(10, Math.max(...sleeps)))))
      for (const sleepMs of sleeps) {
        for (const mode of modes) {
          const count = mode === 'strong' ? (sleepMs === 0 ? tasks : sleepTasks) : perWorker * workers
          const runs: number[] = []
          for (let r = 0; r < repeat; r++) {
            const started = performance.now()
            const futures = await submitAll(count, (i) => (sleepMs === 0 ? noop(i) : sleep(sleepMs)))
            await Promise.all(futures)
            runs.push((performance.now() - started) / 1000)
          }
          const seconds = median(runs)
          const row: ScalingRow = {
            mode,
            task: sleepMs === 0 ? 'no-op' : `sleep ${sleepMs} ms`,
            sleepMs,
            workers,
            managers,
            tasks: count,
            seconds: round(seconds, 4),
            runs: runs.map((x) => round(x, 4)),
            tasksPerSecond: Math.round(count / seconds),
            idealSeconds: sleepMs === 0 ? null : round((Math.ceil(count / workers) * sleepMs) / 1000, 4),
          }
          rows.push(row)
          out.record({ ...row })
          console.log(
            `${mode.padEnd(6)} ${row.task.padEnd(14)} ${String(workers).padStart(3)} workers: ${String(count).padStart(6)} tasks in ${seconds.toFixed(3)} s, ` +
              `${row.tasksPerSecond.toLocaleString('en-US')} tasks/s${row.idealSeconds !== null ? ` (ideal ${row.idealSeconds} s)` : ''}`,
          )
        }
      }
    } finally {
      await kernel.cleanup()
    }
  }
  addEfficiency(rows)
  for (const row of rows) if (row.efficiency !== undefined) console.log(`efficiency ${row.mode} ${row.task} at ${row.workers} workers: ${(row.efficiency * 100).toFixed(0)} %`)
  const best = rows.filter((row) => row.sleepMs === 0 && row.mode === 'strong').sort((a, b) => b.tasksPerSecond - a.tasksPerSecond)[0]
  await out.finish(
    { rows: rows.map(({ runs: _runs, ...row }) => row), peakNoopTasksPerSecond: best?.tasksPerSecond ?? null, peakAtWorkers: best?.workers ?? null },
    plotSpec(rows),
  )
  return 0
}

/** Efficiency against linear scaling from the smallest worker count of each (mode, task). */
export function addEfficiency(rows: ScalingRow[]): void {
  for (const row of rows) {
    const base = rows.filter((r) => r.mode === row.mode && r.sleepMs === row.sleepMs).sort((a, b) => a.workers - b.workers)[0]!
    row.efficiency = round(row.mode === 'strong' ? (base.seconds * base.workers) / (row.seconds * row.workers) : base.seconds / row.seconds, 3)
  }
}

function plotSpec(rows: ScalingRow[]): Record<string, unknown> {
  const x = { field: 'workers', type: 'quantitative', scale: { type: 'log', base: 2 }, axis: { values: [...new Set(rows.map((r) => r.workers))] }, title: 'workers' }
  const color = { field: 'task', type: 'nominal', title: 'task' }
  const panel = (mode: string, y: Record<string, unknown>, title: string, ideal?: boolean) => ({
    title,
    width: 300,
    height: 200,
    layer: [
      { data: { values: rows.filter((r) => r.mode === mode) }, mark: { type: 'line', point: true }, encoding: { x, y, color } },
      ...(ideal ? [{ data: { values: [{ y: 1 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { field: 'y', type: 'quantitative' } } }] : []),
    ],
  })
  return {
    title: { text: 'tsflow scaling (funcX suite)', subtitle: 'first submit to last result, after all managers connected and a warm-up; efficiency against linear scaling from the fewest workers' },
    vconcat: [
      {
        hconcat: [
          panel('strong', { field: 'tasksPerSecond', type: 'quantitative', scale: { type: 'log' }, title: 'tasks/s' }, 'strong scaling: throughput'),
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
  }
}
