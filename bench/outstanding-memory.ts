/**
 * bench/outstanding-memory: how much memory the workflow process holds per outstanding task.
 *
 *   node out/bench/outstanding-memory.js [--tasks 200000] [--million true]
 *        [--executor threads|htex|both] [--mode pending|held|both]
 *
 * It needs global.gc. `node --expose-gc` gives it, but worker threads refuse that flag in their
 * execArgv (ERR_WORKER_INVALID_EXEC_ARGV), so without it the bench turns the V8 flag on at run
 * time instead.
 *
 * Submits N no-op tasks that stay outstanding, measures heap and RSS after a full GC, then lets
 * them run. Two ways of being outstanding:
 *  - pending: every task depends on a future that has not resolved yet (a gate task that waits
 *    for a file), so it sits in the kernel (TaskRecord, AppFuture, records map, listener);
 *  - held: the workers are busy (one gate per worker), so the tasks sit in the executor as well
 *    (its queue or pending map; on HTEX the interchange holds the rest, in its own process).
 * Figures are bytes per outstanding task after a full GC (heap, external, RSS), and the peak RSS
 * reached while submitting over the RSS before (the high-water mark is per process, so run one
 * executor and mode per process to read it for that case). Results are appended to
 * bench/results/outstanding-memory.jsonl.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, app, main, type AppFuture, type Executor } from 'tsflow'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { appendResult, parseFlags } from './lib/results.js'

export const noop = app(function noop(x: unknown) {
  return x === undefined ? 0 : 1
})

/** Holds a worker (or stands for an unresolved dependency) until `path` exists. */
export const gate = app(async function gate(path: string) {
  const { existsSync: exists } = await import('node:fs')
  while (!exists(path)) await new Promise((resolve) => setTimeout(resolve, 20))
  return 0
})

const WORKERS = 2

function gcFunction(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}
const collect = gcFunction()

function gc(): void {
  for (let i = 0; i < 3; i++) collect()
}

async function settle(): Promise<void> {
  // Lets queued microtasks and immediates (executor flushes, socket writes) run.
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

function makeExecutor(kind: string): Executor {
  if (kind === 'threads') return new ThreadPoolExecutor({ maxThreads: WORKERS })
  return new HighThroughputExecutor({ maxWorkersPerNode: WORKERS, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }) })
}

interface Figures {
  executor: string
  mode: string
  tasks: number
  heapBytesPerTask: number
  externalBytesPerTask: number
  rssBytesPerTask: number
  peakRssBytesPerTask: number
  submitSeconds: number
  drainSeconds: number
  failedTasks: number
  firstError?: string
}

async function measure(kind: string, mode: 'pending' | 'held', tasks: number, scratch: string): Promise<Figures> {
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [makeExecutor(kind)] }).start()
  const release = join(scratch, `release-${kind}-${mode}`)
  try {
    const submit = noop.with({ dfk: kernel })
    const warm = await Promise.all(Array.from({ length: 1000 }, (_, i) => submit(i)))
    if (warm.length !== 1000) throw new Error('warm-up failed')
    const gates: AppFuture<number>[] = []
    for (let i = 0; i < (mode === 'held' ? WORKERS : 1); i++) gates.push(gate.with({ dfk: kernel })(release))
    const dependency = mode === 'pending' ? gates[0] : undefined
    await settle()
    gc()
    const before = process.memoryUsage()
    const started = performance.now()
    const futures: AppFuture<number>[] = new Array(tasks)
    for (let i = 0; i < tasks; i++) futures[i] = submit(dependency ?? i)
    const submitSeconds = (performance.now() - started) / 1000
    await settle()
    gc()
    const after = process.memoryUsage()
    // resourceUsage().maxRSS is in KiB: the high-water mark, garbage of the submit loop included.
    const peakRss = process.resourceUsage().maxRSS * 1024
    const outstanding = kernel.outstanding - gates.length
    if (outstanding !== tasks) throw new Error(`expected ${tasks} outstanding tasks, found ${outstanding}`)
    writeFileSync(release, '')
    const drainStarted = performance.now()
    await kernel.waitForCurrentTasks()
    const drainSeconds = (performance.now() - drainStarted) / 1000
    // Memory is the figure here; failures (say, the interchange lost during a 1M burst) are
    // reported with it rather than hiding it.
    let failed = 0
    let firstError: unknown
    for (const future of futures) {
      if (future.succeeded) continue
      if (failed++ === 0) firstError = future.exception()
    }
    return {
      failedTasks: failed,
      ...(failed ? { firstError: String((firstError as Error)?.message ?? firstError).slice(0, 300) } : {}),
      executor: kind,
      mode,
      tasks,
      heapBytesPerTask: Math.round((after.heapUsed - before.heapUsed) / tasks),
      externalBytesPerTask: Math.round((after.external - before.external) / tasks),
      rssBytesPerTask: Math.round((after.rss - before.rss) / tasks),
      peakRssBytesPerTask: Math.round((peakRss - before.rss) / tasks),
      submitSeconds: Number(submitSeconds.toFixed(2)),
      drainSeconds: Number(drainSeconds.toFixed(2)),
    }
  } finally {
    if (!existsSync(release)) writeFileSync(release, '')
    await kernel.cleanup({ deadlineMs: 10_000 })
  }
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '200000', million: 'false', executor: 'both', mode: 'both' })
  const tasks = flags.million === 'false' ? Number(flags.tasks) : 1_000_000
  const kinds = flags.executor === 'both' ? ['threads', 'htex'] : [flags.executor!]
  const modes = (flags.mode === 'both' ? ['pending', 'held'] : [flags.mode!]) as ('pending' | 'held')[]
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-memory-'))
  try {
    for (const kind of kinds) {
      for (const mode of modes) {
        const row = await measure(kind, mode, tasks, scratch)
        console.log(
          `${kind.padEnd(7)} ${mode.padEnd(7)} ${tasks.toLocaleString('en')} tasks: heap ${row.heapBytesPerTask} B/task, ` +
            `external ${row.externalBytesPerTask} B/task, RSS ${row.rssBytesPerTask} B/task, peak RSS ${row.peakRssBytesPerTask} B/task ` +
            `(submit ${row.submitSeconds} s, drain ${row.drainSeconds} s)` +
            (row.failedTasks ? `; ${row.failedTasks} tasks FAILED, first: ${row.firstError}` : ''),
        )
        appendResult('outstanding-memory', row as unknown as Record<string, unknown>)
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
