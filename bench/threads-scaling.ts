/**
 * bench/threads-scaling: no-op tasks/s of the ThreadPoolExecutor as threads are added.
 *
 *   node out/bench/threads-scaling.js [--threads 1,2,4,8] [--tasks 100000] [--reps 3] [--label current]
 *   node out/bench/threads-scaling.js --plot-only true      # redraw the SVG from the results file
 *
 * For each thread count: a new kernel, a warm-up burst, then --reps bursts of --tasks no-op app
 * calls all awaited, submitted --chunk per event-loop turn as tsflow-perf does (a steady stream,
 * which is what cut batches smaller as threads were added); reports the median tasks/s and the CPU time per task of the whole process
 * (all threads, from process.cpuUsage()). More threads than cores is oversubscribed: throughput
 * may stop rising there but should not collapse. Appends one JSON line per run to
 * bench/results/threads-scaling.jsonl and redraws bench/results/threads-scaling.svg from the
 * median of every --label.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, ThreadPoolExecutor, app, main } from 'tsflow'
import { RESULTS_DIR, appendResult, machine, parseFlags, percentile } from './lib/results.js'
import { writeBarChart } from './lib/svg.js'

export const noop = app(function noop(x: number) {
  return x
})

interface Point {
  threads: number
  tasksPerSecond: number
  cpuMicrosPerTask: number
  rates: number[]
}

/** Redraws the SVG from the results file: per --label and thread count, the median tasks/s of its runs. */
function plot(): string {
  const byLabel = new Map<string, { points: Point[]; machine: ReturnType<typeof machine> }[]>()
  for (const line of readFileSync(join(RESULTS_DIR, 'threads-scaling.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue
    const row = JSON.parse(line) as { label: string; points: Point[]; machine: ReturnType<typeof machine> }
    byLabel.set(row.label, [...(byLabel.get(row.label) ?? []), row])
  }
  const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50)
  const svg = join(RESULTS_DIR, 'threads-scaling.svg')
  const any = [...byLabel.values()].at(-1)?.at(-1)
  writeBarChart(
    svg,
    'ThreadPoolExecutor: no-op tasks/s by number of threads',
    `tasks per second, median of runs per label; ${any?.machine.cpuModel ?? ''}, ${any?.machine.cores ?? '?'} cores, Node ${any?.machine.node ?? ''}`,
    [...byLabel.entries()].map(([label, rows]) => {
      const threads = [...new Set(rows.flatMap((row) => row.points.map((p) => p.threads)))].sort((a, b) => a - b)
      return {
        label: `${label} (${rows.length} runs)`,
        bars: threads.map((n) => {
          const points = rows.flatMap((row) => row.points.filter((p) => p.threads === n))
          const cpu = median(points.map((p) => p.cpuMicrosPerTask))
          return { name: `${n} thread${n === 1 ? '' : 's'} (${cpu.toFixed(1)} µs CPU/task)`, value: median(points.map((p) => p.tasksPerSecond)) }
        }),
      }
    }),
  )
  return svg
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { threads: '1,2,4,8', tasks: '100000', reps: '3', chunk: '2048', label: 'current', 'plot-only': 'false' })
  if (flags['plot-only'] === 'true') {
    console.log(`plot ${plot()}`)
    return
  }
  const tasks = Number(flags.tasks)
  const chunk = Number(flags.chunk)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-threads-'))
  const points: Point[] = []
  try {
    for (const threads of flags.threads!.split(',').map(Number)) {
      const kernel = await new DataFlowKernel({ runDir: scratch, executors: [new ThreadPoolExecutor({ maxThreads: threads })] }).start()
      const submit = noop.with({ dfk: kernel })
      const burst = async (count: number) => {
        const futures = new Array(count)
        for (let i = 0; i < count; i++) {
          futures[i] = submit(i)
          if (i % chunk === chunk - 1) await new Promise((resolve) => setImmediate(resolve))
        }
        await Promise.all(futures)
      }
      await burst(Math.min(tasks, 20_000))
      const rates: number[] = []
      const cpu: number[] = []
      for (let rep = 0; rep < Number(flags.reps); rep++) {
        const before = process.cpuUsage()
        const started = performance.now()
        await burst(tasks)
        rates.push(tasks / ((performance.now() - started) / 1000))
        const used = process.cpuUsage(before)
        cpu.push((used.user + used.system) / tasks)
      }
      await kernel.cleanup()
      const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50)
      const point = { threads, tasksPerSecond: Math.round(median(rates)), cpuMicrosPerTask: Number(median(cpu).toFixed(2)), rates: rates.map(Math.round) }
      points.push(point)
      console.log(`${String(threads).padStart(2)} threads: ${point.tasksPerSecond.toLocaleString('en-US').padStart(9)} tasks/s (${point.rates.join(', ')}), ${point.cpuMicrosPerTask} µs CPU per task (all threads)`)
    }
    const m = machine()
    console.log(`machine: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, tsflow ${m.tsflow} (${m.commit})`)
    console.log(`results appended to ${appendResult('threads-scaling', { label: flags.label, tasks, chunk, reps: Number(flags.reps), points })}; plot ${plot()}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
