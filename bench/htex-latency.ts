/**
 * bench/htex-latency: the default local HighThroughputExecutor (1 block) as a user meets it.
 *
 *   node out/bench/htex-latency.js [--cold-starts 5] [--round-trips 2000] [--mb-tasks 200] [--workers 2]
 *
 *  - load() to first result: a new kernel each time, from load() to the first task's result;
 *  - single-task round trip: one task at a time after a priming call, median and p99;
 *  - 1 MB arguments: tasks each taking a 1 MB Uint8Array (result: its length), MB/s end to end.
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
  const flags = parseFlags(process.argv.slice(2), { 'cold-starts': '5', 'round-trips': '2000', 'mb-tasks': '200', workers: '2' })
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-htex-'))
  const config = () => ({ runDir: scratch, executors: [new HighThroughputExecutor({ maxWorkersPerNode: Number(flags.workers) })] })
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
    await noop(0)
    const rtts: number[] = []
    for (let i = 0; i < Number(flags['round-trips']); i++) {
      const started = performance.now()
      await noop(i)
      rtts.push(performance.now() - started)
    }
    rtts.sort((a, b) => a - b)

    const megabyte = new Uint8Array(1 << 20).fill(7)
    await byteLength(megabyte)
    const mbTasks = Number(flags['mb-tasks'])
    const started = performance.now()
    const lengths = await Promise.all(Array.from({ length: mbTasks }, () => byteLength(megabyte)))
    const seconds = (performance.now() - started) / 1000
    if (lengths.some((length) => length !== megabyte.byteLength)) throw new Error('a 1 MB argument arrived damaged')
    await kernel.cleanup()

    coldStarts.sort((a, b) => a - b)
    const row = {
      workers: Number(flags.workers),
      loadToFirstResultMedianMs: Math.round(percentile(coldStarts, 50)),
      loadToFirstResultMs: coldStarts.map(Math.round),
      roundTripMedianMs: Number(percentile(rtts, 50).toFixed(3)),
      roundTripP99Ms: Number(percentile(rtts, 99).toFixed(3)),
      oneMbArgsMBps: Math.round(mbTasks / seconds),
    }
    console.log(`load() to first result: median ${row.loadToFirstResultMedianMs} ms (${row.loadToFirstResultMs.join(', ')})`)
    console.log(`single-task round trip: median ${row.roundTripMedianMs} ms, p99 ${row.roundTripP99Ms} ms`)
    console.log(`1 MB arguments: ${row.oneMbArgsMBps} MB/s end to end (${mbTasks} tasks)`)
    console.log(`results appended to ${appendResult('htex-latency', row)}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
