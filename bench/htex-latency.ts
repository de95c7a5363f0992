/**
 * bench/htex-latency: the default local HighThroughputExecutor (1 block) as a user meets it.
 *
 *   node out/bench/htex-latency.js [--cold-starts 5] [--round-trips 2000] [--mb-tasks 200] [--workers 2]
 *
 *  - load() to first result: a new kernel each time, from load() to the first task's result;
 *  - single-task round trip: one task at a time, after --warmup round trips, median and p99;
 *  - 1 MB arguments: bursts of tasks each taking a 1 MB Uint8Array (result: its length), MB/s end
 *    to end, median of 5 bursts after 2 warm-up bursts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HighThroughputExecutor, app, load, main } from 'tsflow'
import { appendResult, parseFlags, percentile } from './lib/results.js'

export const noop = app(function noop(x: number) {
  return x
})
export const byteLength = app(function byteLength(data: Uint8Array) {
  return data.byteLength
})

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { 'cold-starts': '5', 'round-trips': '2000', warmup: '2000', 'mb-tasks': '500', workers: '2' })
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-htex-'))
  const config = () => ({ runDir: scratch, executors: [new HighThroughputExecutor({ maxWorkersPerNode: Number(flags.workers), ...(process.env.TSFLOW_BENCH_MODE ? { workerMode: process.env.TSFLOW_BENCH_MODE as 'threads' | 'processes' } : {}) })] })
  try {
    const coldStarts: number[] = []
    for (let i = 0; i < Number(flags['cold-starts']); i++) {
      const started = performance.now()
      const kernel = await load(config())
      await noop(1)
      coldStarts.push(performance.now() - started)
      await kernel.cleanup()
    }

    const kernel = await load(config())
    // Warm: the JIT of all three processes has seen the path (like a service that has run a while).
    for (let i = 0; i < Number(flags.warmup); i++) await noop(i)
    const rtts: number[] = []
    for (let i = 0; i < Number(flags['round-trips']); i++) {
      const started = performance.now()
      await noop(i)
      rtts.push(performance.now() - started)
    }
    rtts.sort((a, b) => a - b)

    const megabyte = new Uint8Array(1 << 20).fill(7)
    const mbTasks = Number(flags['mb-tasks'])
    const rates: number[] = []
    // Two warm-up bursts: the first gigabyte through three fresh processes runs slower (JIT, heap growth).
    for (let rep = 0; rep < 7; rep++) {
      const started = performance.now()
      const lengths = await Promise.all(Array.from({ length: mbTasks }, () => byteLength(megabyte)))
      if (rep >= 2) rates.push(mbTasks / ((performance.now() - started) / 1000))
      if (lengths.some((length) => length !== megabyte.byteLength)) throw new Error('a 1 MB argument arrived damaged')
    }
    rates.sort((a, b) => a - b)
    await kernel.cleanup()

    coldStarts.sort((a, b) => a - b)
    const row = {
      workers: Number(flags.workers),
      workerMode: process.env.TSFLOW_BENCH_MODE ?? 'threads',
      warmupRoundTrips: Number(flags.warmup),
      loadToFirstResultMedianMs: Math.round(percentile(coldStarts, 50)),
      loadToFirstResultMs: coldStarts.map(Math.round),
      roundTripMedianMs: Number(percentile(rtts, 50).toFixed(3)),
      roundTripP99Ms: Number(percentile(rtts, 99).toFixed(3)),
      oneMbArgsMBps: Math.round(rates[2]!),
      oneMbArgsRuns: rates.map(Math.round),
    }
    console.log(`load() to first result: median ${row.loadToFirstResultMedianMs} ms (${row.loadToFirstResultMs.join(', ')})`)
    console.log(`single-task round trip: median ${row.roundTripMedianMs} ms, p99 ${row.roundTripP99Ms} ms`)
    console.log(`1 MB arguments: ${row.oneMbArgsMBps} MB/s end to end (median of 5 bursts of ${mbTasks} tasks after 2 warm-up bursts: ${row.oneMbArgsRuns.join(', ')})`)
    console.log(`results appended to ${appendResult('htex-latency', row)}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
