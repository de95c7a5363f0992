/**
 * bench/resource-sampling: what the manager's resource sampler costs (docs/monitoring.md
 * "Resource sampling and manager events"). A real HTEX run on the local provider keeps `workers`
 * tasks running (each sleeps, so the workers use no CPU); over a window of `window` seconds the
 * manager process's own CPU time is read from /proc, with monitoring off and with sampling every
 * `intervals` ms. The difference, divided by the samples taken, is the manager's cost per sample.
 * Separately, the time of one open/read/close of a worker's `stat` and `io` (what the sampler
 * reads per task) is measured in a loop.
 *
 *   npm run bench:resource-sampling [-- --workers 8 --window 8 --intervals 100,1000]
 *
 * Results are appended to bench/results/resource-sampling.jsonl.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { channels, DataFlowKernel, HighThroughputExecutor, LocalProvider, app, main } from 'tsflow'
import { appendResult, parseFlags } from './lib/results.js'
import { cpuMicros, descendants } from './lib/proc.js'

export const hold = app(async function hold(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms))
  return process.pid
})

interface Row {
  intervalMs: number
  managerCpuMsPerS: number
  samplesPerS: number
  messagesPerS: number
}

async function waitUntil(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function measure(scratch: string, workers: number, windowS: number, intervalMs: number): Promise<Row & { readPairMicros: number }> {
  const htex = new HighThroughputExecutor({
    workerMode: 'processes',
    maxWorkersPerNode: workers,
    // Enough workers on a small machine: the tasks sleep, they need no CPU of their own.
    coresPerWorker: availableParallelism() / workers,
    strategy: 'none',
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const runDir = join(scratch, `run-${intervalMs}`)
  const monitoring = intervalMs > 0 ? { enabled: true, resourceIntervalMs: intervalMs, db: join(scratch, `m-${intervalMs}.db`) } : undefined
  let samples = 0
  let messages = 0
  const count = (message: { samples: readonly unknown[] }) => {
    messages++
    samples += message.samples.length
  }
  channels.taskResource.subscribe(count)
  const kernel = await new DataFlowKernel({ runDir, executors: [htex], ...(monitoring ? { monitoring } : {}) }).start()
  try {
    const submit = hold.with({ dfk: kernel })
    const futures = Array.from({ length: workers }, () => submit((windowS + 30) * 1000))
    // They are failed by the cleanup below, on purpose.
    for (const future of futures) Promise.resolve(future).catch(() => undefined)
    await waitUntil(() => futures.every((future) => future.state === 'running'), 'every task to run')
    const manager = htex.managers()[0]!
    // Let the first samples (and the workers' start) pass before the window opens.
    await new Promise((resolve) => setTimeout(resolve, Math.max(1000, 2 * intervalMs)))
    const workerPids = descendants(manager.pid).filter((p) => p.cmdline.includes('worker/process.js')).map((p) => p.pid)
    const cpu0 = cpuMicros(manager.pid)!
    const samples0 = samples
    const messages0 = messages
    const t0 = performance.now()
    await new Promise((resolve) => setTimeout(resolve, windowS * 1000))
    const seconds = (performance.now() - t0) / 1000
    const cpu1 = cpuMicros(manager.pid)!
    return {
      readPairMicros: workerPids.length > 0 ? readPairMicros(workerPids) : NaN,
      intervalMs,
      managerCpuMsPerS: (cpu1 - cpu0) / 1000 / seconds,
      samplesPerS: (samples - samples0) / seconds,
      messagesPerS: (messages - messages0) / seconds,
    }
  } finally {
    channels.taskResource.unsubscribe(count)
    await kernel.cleanup({ deadlineMs: 0 }).catch(() => undefined)
  }
}

/** µs per open/read/close of `stat` and `io` of these processes, as the sampler reads them. */
function readPairMicros(pids: number[], rounds = 500): number {
  const buffer = Buffer.alloc(4096)
  const read = (path: string) => {
    const fd = openSync(path, 'r')
    readSync(fd, buffer, 0, buffer.length, 0)
    closeSync(fd)
  }
  const started = performance.now()
  for (let r = 0; r < rounds; r++) {
    for (const pid of pids) {
      read(`/proc/${pid}/stat`)
      read(`/proc/${pid}/io`)
    }
  }
  return ((performance.now() - started) * 1000) / (rounds * pids.length)
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { workers: '8', window: '8', intervals: '100,1000' })
  const workers = Number(flags.workers)
  const windowS = Number(flags.window)
  const intervals = flags.intervals!.split(',').map(Number)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-sampling-'))
  try {
    const off = await measure(scratch, workers, windowS, 0)
    console.log(`monitoring off: manager ${off.managerCpuMsPerS.toFixed(2)} ms CPU/s, ${off.samplesPerS} samples/s`)
    const pair = off.readPairMicros
    const rows: (Row & { costPerSampleMicros: number })[] = []
    for (const intervalMs of intervals) {
      const on = await measure(scratch, workers, windowS, intervalMs)
      const costPerSampleMicros = on.samplesPerS > 0 ? ((on.managerCpuMsPerS - off.managerCpuMsPerS) * 1000) / on.samplesPerS : NaN
      console.log(
        `every ${intervalMs} ms: manager ${on.managerCpuMsPerS.toFixed(2)} ms CPU/s, ${on.samplesPerS.toFixed(1)} samples/s in ${on.messagesPerS.toFixed(1)} messages/s; ` +
          `${costPerSampleMicros.toFixed(0)} µs of manager CPU per sample (incl. its message)`,
      )
      rows.push({ intervalMs, managerCpuMsPerS: on.managerCpuMsPerS, samplesPerS: on.samplesPerS, messagesPerS: on.messagesPerS, costPerSampleMicros })
    }
    console.log(`one stat + io read: ${pair.toFixed(1)} µs`)
    const file = appendResult('resource-sampling', { workers, windowS, off: { managerCpuMsPerS: off.managerCpuMsPerS }, on: rows, readPairMicros: pair })
    console.log(`appended to ${file}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
