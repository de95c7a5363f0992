/**
 * bench/dfk-overhead: no-op tasks per second through the DataFlowKernel.
 *
 *   npm run bench:dfk [-- --tasks 200000 --reps 5 --threads 2]
 *
 * Three figures:
 *  - kernel only: an in-process executor that completes each task at once, so the figure is
 *    the kernel's own cost per task (futures, dependency scan, records, settle);
 *  - threads: the same no-op apps on the ThreadPoolExecutor (serialization + worker threads);
 *  - round trip: one task at a time on the ThreadPoolExecutor, median and p99.
 * Results are appended to bench/results/dfk-overhead.jsonl.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, ThreadPoolExecutor, app, main } from 'tsflow'
import { InlineExecutor } from './lib/inline-executor.js'
import { appendResult, parseFlags, percentile } from './lib/results.js'

export const noop = app(function noop(x: number) {
  return x
})

async function burst(kernel: DataFlowKernel, tasks: number): Promise<number> {
  const submit = noop.with({ dfk: kernel })
  const started = performance.now()
  const futures = new Array(tasks)
  for (let i = 0; i < tasks; i++) futures[i] = submit(i)
  await Promise.all(futures)
  return tasks / ((performance.now() - started) / 1000)
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '200000', reps: '5', threads: '2', 'rtt-tasks': '5000' })
  const tasks = Number(flags.tasks)
  const reps = Number(flags.reps)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-'))
  try {
    const inline = await new DataFlowKernel({ runDir: scratch, executors: [new InlineExecutor()] }).start()
    await burst(inline, 10_000)
    const inlineRates: number[] = []
    for (let r = 0; r < reps; r++) inlineRates.push(await burst(inline, tasks))
    await inline.cleanup()

    const threads = await new DataFlowKernel({ runDir: scratch, executors: [new ThreadPoolExecutor({ maxThreads: Number(flags.threads) })] }).start()
    await burst(threads, 10_000)
    const threadRates: number[] = []
    for (let r = 0; r < reps; r++) threadRates.push(await burst(threads, tasks))
    const submit = noop.with({ dfk: threads })
    const rtts: number[] = []
    for (let i = 0; i < Number(flags['rtt-tasks']); i++) {
      const started = performance.now()
      await submit(i)
      rtts.push(performance.now() - started)
    }
    await threads.cleanup()

    rtts.sort((a, b) => a - b)
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
    const row = {
      tasks,
      reps,
      threads: Number(flags.threads),
      kernelOnlyTasksPerSec: Math.round(median(inlineRates)),
      threadsTasksPerSec: Math.round(median(threadRates)),
      threadsRates: threadRates.map(Math.round),
      roundTripMedianMs: Number(percentile(rtts, 50).toFixed(3)),
      roundTripP99Ms: Number(percentile(rtts, 99).toFixed(3)),
    }
    console.log(`kernel only (inline executor): ${row.kernelOnlyTasksPerSec.toLocaleString('en')} tasks/s (median of ${reps} x ${tasks})`)
    console.log(`ThreadPoolExecutor(${row.threads}):        ${row.threadsTasksPerSec.toLocaleString('en')} tasks/s (median of ${reps} x ${tasks})`)
    console.log(`single-task round trip:        median ${row.roundTripMedianMs} ms, p99 ${row.roundTripP99Ms} ms`)
    console.log(`results appended to ${appendResult('dfk-overhead', row)}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
