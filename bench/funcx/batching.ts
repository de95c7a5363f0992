/**
 * batching: one worker; jobs of k = 1, 2, 4 .. 1024 invocations of a small function, each job
 * submitted as one batch (`app.map`, which executors and endpoints receive as batches) and timed
 * from the submit to its last result; time per job and per invocation.
 * Paper: MNIST 1.78 s for one request -> 5.9 ms per request at k = 1024.
 */
import { awaitAll } from 'tsflow'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { double } from './apps.js'
import { ints, loadKernel, parseNumber, round, stats, type Experiment, type FlagSpec, type Row } from './common.js'

const flags = {
  sizes: { default: ['1', '2', '4', '8', '16', '32', '64', '128', '256', '512', '1024'], list: true, commas: true, help: 'invocations per job (k)' },
  warmup: { default: '2', help: 'unrecorded jobs of the largest k before the measured ones (JIT, heap growth)' },
} satisfies Record<string, FlagSpec>

/** One job: k invocations submitted as one batch (app.map), awaited together; returns ms. */
async function job(k: number, base: number): Promise<number> {
  const args = Array.from({ length: k }, (_, i) => base + i)
  const started = performance.now()
  const results = await awaitAll(double.map(args.map((x) => [x] as [number])))
  const ms = performance.now() - started
  for (let i = 0; i < k; i++) if (results[i] !== args[i]! * 2) throw new Error(`batching: invocation ${i} of a k=${k} job returned ${results[i]} instead of ${args[i]! * 2}`)
  return ms
}

export const batching: Experiment<typeof flags> = {
  name: 'batching',
  summary: `One worker; jobs of k = 1, 2, 4 .. 1024 invocations of a small function, each job submitted as
one batch (app.map) and timed from submit to its last result; time per job and per invocation, log-log.
--repeat jobs per k (median reported), after one unrecorded job of that k. Paper: MNIST 1.78 s -> 5.9 ms per request at k = 1024.
tsflow's target: per-invocation time at k = 1024 at least 50x lower than at k = 1.`,
  flags,
  defaultRepeat: 5,
  async run(ctx, f) {
    const sizes = [...new Set(ints(f.sizes, '--sizes'))]
    const warmup = parseNumber(f.warmup, '--warmup', { integer: true })
    const config = await ctx.config.make({ maxWorkersPerNode: 1 })
    const kernel = await loadKernel(config)
    try {
      const largest = Math.max(...sizes)
      for (let w = 0; w < warmup; w++) await job(largest, 0)
      // Each k's jobs run back to back after one unrecorded job of that k, so a small job is
      // measured warm (as in latency), not right after a large job's garbage collection.
      const times = new Map<number, number[]>(sizes.map((k) => [k, []]))
      for (const k of sizes) {
        await job(k, 0)
        for (let r = 0; r < ctx.repeat; r++) {
          const ms = await job(k, r * 10_000)
          times.get(k)!.push(ms)
          ctx.record({ k, repetition: r, job_ms: round(ms, 4), per_invocation_ms: round(ms / k, 5) }, config)
        }
      }
      for (const k of sizes) {
        const s = stats(times.get(k)!)
        ctx.log(`k=${String(k).padStart(4)}: job ${s.median.toFixed(3)} ms, per invocation ${(s.median / k).toFixed(4)} ms (median of ${s.n})`)
      }
    } finally {
      await kernel.cleanup()
    }
  },
  async plot(rows, svg) {
    const values = medians(rows).flatMap(({ k, job, per }) => [
      { k, ms: job, measure: 'time per job' },
      { k, ms: per, measure: 'time per invocation' },
    ])
    await writeVegaLiteSvg(svg, {
      title: 'Batching: one worker, k invocations per job',
      width: 520,
      height: 300,
      data: { values },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'k', type: 'quantitative', title: 'invocations per job (k, log)', scale: { type: 'log', base: 2 } },
        y: { field: 'ms', type: 'quantitative', title: 'time (ms, log)', scale: { type: 'log' } },
        color: { field: 'measure', type: 'nominal' },
      },
    })
  },
  summarize(rows) {
    const table = medians(rows)
    const lines = table.map(({ k, job, per }) => `batching k=${String(k).padStart(4)}: job ${job.toFixed(3)} ms, per invocation ${per.toFixed(4)} ms`)
    const one = table.find((x) => x.k === 1)
    const top = table[table.length - 1]
    const figures: Row = { per_invocation_ms: Object.fromEntries(table.map(({ k, per }) => [k, round(per, 5)])), job_ms: Object.fromEntries(table.map(({ k, job }) => [k, round(job, 4)])) }
    if (one && top && top.k > 1) {
      const speedup = one.per / top.per
      figures.speedup = round(speedup, 1)
      figures.speedup_k = top.k
      lines.push(`batching: per-invocation time ${speedup.toFixed(1)}x lower at k=${top.k} than at k=1${top.k === 1024 ? ` (target >= 50x: ${speedup >= 50 ? 'met' : 'NOT met'})` : ''}; paper: MNIST 1.78 s -> 5.9 ms per request at k=1024 (302x)`)
    }
    return { lines, figures }
  },
}

function medians(rows: Row[]): { k: number; job: number; per: number }[] {
  const ks = [...new Set(rows.map((row) => Number(row.k)))].sort((a, b) => a - b)
  return ks.map((k) => {
    const job = stats(rows.filter((row) => Number(row.k) === k).map((row) => Number(row.job_ms))).median
    return { k, job, per: job / k }
  })
}
