/**
 * bench/htex-million: N no-op tasks (default 1,000,000) submitted to the default local HTEX in
 * ONE synchronous loop, then awaited. The loop keeps the workflow's event loop busy for many
 * seconds, far beyond the heartbeat threshold: the run must still complete (the interchange
 * learns of the client's death from its parent pipe, not from heartbeat silence).
 *
 *   node out/bench/htex-million.js [--tasks 1000000] [--workers 2]
 *
 * Prints the time of the submit loop, the time to the last result, tasks/s, how many completed
 * and the workflow's peak RSS; appends a line to bench/results/htex-million.jsonl.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HighThroughputExecutor, app, load, main, type AppFuture } from 'tsflow'
import { appendResult, parseFlags } from './lib/results.js'

export const noop = app(function noop() {
  return 0
})

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '1000000', workers: '2' })
  const count = Number(flags.tasks)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-million-'))
  try {
    const kernel = await load({ runDir: scratch, executors: [new HighThroughputExecutor({ maxWorkersPerNode: Number(flags.workers) })] })
    await noop()
    const started = performance.now()
    const futures: AppFuture<number>[] = new Array(count)
    for (let i = 0; i < count; i++) futures[i] = noop()
    const submitMs = performance.now() - started
    console.log(`submitted ${count} tasks in one synchronous loop of ${Math.round(submitMs)} ms; waiting for the results`)
    const outcomes = await Promise.allSettled(futures)
    const totalMs = performance.now() - started
    const failed = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[]
    const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024)
    await kernel.cleanup()
    const row = {
      tasks: count,
      submitLoopMs: Math.round(submitMs),
      totalMs: Math.round(totalMs),
      tasksPerSecond: Math.round(count / (totalMs / 1000)),
      completed: count - failed.length,
      failed: failed.length,
      firstFailure: failed[0] ? String(failed[0].reason).slice(0, 300) : undefined,
      peakRssMiB,
    }
    console.log(
      `${count} tasks in one loop: submit loop ${row.submitLoopMs} ms, all settled after ${row.totalMs} ms ` +
        `(${row.tasksPerSecond} tasks/s); ${row.completed} completed, ${row.failed} failed; workflow peak RSS ${peakRssMiB} MiB`,
    )
    if (row.firstFailure) console.log(`first failure: ${row.firstFailure}`)
    appendResult('htex-million', row)
    if (failed.length > 0) process.exitCode = 1
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
