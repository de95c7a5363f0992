/**
 * memoization: --requests requests of which 0 / 25 / 50 / 100 % (--fractions)
 * repeat an earlier request. The cache (app option `cache: true`) is primed by the duplicates
 * first: their inputs run once, untimed. Then all requests, duplicates and new ones interleaved,
 * are submitted at once and timed to the last result. Each result carries a nonce made on the
 * worker, so the count of answers served from the cache is checked, not assumed: it must equal the
 * duplicates. Time should fall in proportion to the duplicates (ideal: (1 - fraction) x the time
 * at 0 %).
 *
 *   node out/bench/funcx.js memoization
 *   node out/bench/funcx.js memoization --requests 1000 --task-ms 500 --workers 8 --repeat 3
 */
import { awaitAll } from 'tsflow'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { BenchUsage, loadKernel, parseNumber, round, type Experiment, type FlagSpec, type Row } from './common.js'
import { firstExecutor, htexDefaults, median, waitForManagers } from './kernel.js'
import { cachedRequest } from './tasks.js'

const flags = {
  fractions: { default: ['0', '25', '50', '100'], list: true, commas: true, help: 'percent of the requests that are duplicates of primed ones' },
  requests: { default: '40', help: 'requests per measurement (one app.map)' },
  'task-ms': { default: '100', help: 'work per request that is not served from the cache, ms (a sleep: an inference call)' },
  workers: { default: '4', help: 'workers (one manager)' },
  'worker-mode': { default: 'processes', choices: ['threads', 'processes'], help: 'workers as processes (the HTEX default) or threads' },
} satisfies Record<string, FlagSpec>

/** The requests' inputs in a fixed interleaving: duplicates (0..d-1) spread among new ones (d..n-1). */
export function requestOrder(requests: number, duplicates: number): number[] {
  const order: number[] = []
  let dup = 0
  let fresh = duplicates
  for (let i = 0; i < requests; i++) {
    // Bresenham-style: after i+1 requests, about (i+1) * d / n of them are duplicates.
    if (Math.floor(((i + 1) * duplicates) / requests) > dup) order.push(dup++)
    else order.push(fresh++)
  }
  return order
}

export const memoization: Experiment<typeof flags> = {
  name: 'memoization',
  summary: `--requests requests (40; app option cache: true) of which 0 / 25 / 50 / 100 % duplicate earlier ones,
the cache primed with the duplicates first (untimed); then all requests, duplicates interleaved with new
ones, submitted as one app.map and timed to the last result. Results carry a nonce made on the worker,
so the answers served from the cache are counted, and must equal the duplicates. --repeat measurements
per fraction (median). Expected (paper): time falls in proportion to the duplicates.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    const fractions = f.fractions.map((v) => parseNumber(v, '--fractions'))
    const bad = fractions.find((x) => x > 100)
    if (bad !== undefined) throw new BenchUsage(`--fractions ${bad}: a percentage, 0..100`)
    const requests = parseNumber(f.requests, '--requests', { min: 1, integer: true })
    const taskMs = parseNumber(f['task-ms'], '--task-ms')
    const workersWanted = parseNumber(f.workers, '--workers', { min: 1, integer: true })
    const config = await ctx.config.make(htexDefaults({ workers: workersWanted, managers: 1, workerMode: f['worker-mode'] as 'threads' | 'processes' }))
    const kernel = await loadKernel(config)
    const measured: { fraction: number; duplicates: number; hits: number; runs: number[] }[] = []
    try {
      const workers = await waitForManagers(firstExecutor(config), 1, workersWanted)
      const opts = { dfk: kernel }
      // Warm-up in a namespace of its own: every worker started and used.
      await awaitAll(cachedRequest.map(Array.from({ length: workers * 2 }, (_, i) => ['warm-up', i, 1] as [string, number, number]), opts))
      for (const fraction of fractions) {
        const duplicates = Math.round((requests * fraction) / 100)
        const runs: number[] = []
        let hits = 0
        for (let r = 0; r < ctx.repeat; r++) {
          // A namespace per measurement: nothing primed for another fraction or repetition is a hit here.
          const ns = `f${fraction}-r${r}-${process.pid}-${Date.now()}`
          const primed = new Set((await awaitAll(cachedRequest.map(Array.from({ length: duplicates }, (_, i) => [ns, i, taskMs] as [string, number, number]), opts))).map((x) => x.nonce))
          const order = requestOrder(requests, duplicates)
          const started = performance.now()
          const results = await awaitAll(cachedRequest.map(order.map((input) => [ns, input, taskMs] as [string, number, number]), opts))
          runs.push((performance.now() - started) / 1000)
          if (results.some((x, i) => x.input !== order[i] || x.ns !== ns)) throw new Error(`memoization: a result does not match its request (${ns})`)
          hits = results.filter((x) => primed.has(x.nonce)).length
          if (hits !== duplicates) {
            throw new Error(`memoization: ${hits} of ${requests} requests were served from the cache, expected the ${duplicates} duplicates; is the app cache off in the config (appCache: false)?`)
          }
        }
        measured.push({ fraction, duplicates, hits, runs })
        ctx.log(`${String(fraction).padStart(3)} % duplicates: ${requests} requests (${duplicates} from the cache) in ${median(runs).toFixed(4)} s`)
      }
    } finally {
      await kernel.cleanup()
    }
    // Recorded at the end: each line carries its time relative to the fewest duplicates.
    const base = measured.find((m) => m.fraction === 0) ?? measured[0]!
    for (const m of measured) {
      const seconds = median(m.runs)
      ctx.record(
        {
          fractionPercent: m.fraction,
          requests,
          duplicates: m.duplicates,
          cacheHits: m.hits,
          taskMs,
          seconds: round(seconds, 4),
          runs: m.runs.map((x) => round(x, 4)),
          relative: round(seconds / median(base.runs), 3),
          ideal: round(1 - (m.fraction - base.fraction) / (100 - base.fraction || 1), 3),
        },
        config,
      )
    }
  },
  async plot(rows, svg) {
    await writeVegaLiteSvg(svg, plotSpec(rows))
  },
  summarize(rows) {
    const figures: Row = Object.fromEntries(rows.map((r) => [`seconds_at_${r.fractionPercent}`, r.seconds]))
    figures.relative = Object.fromEntries(rows.map((r) => [String(r.fractionPercent), r.relative]))
    const lines = [
      `memoization: ${rows.map((r) => `${r.fractionPercent} % -> ${Number(r.seconds).toFixed(3)} s (x${r.relative}, ideal x${r.ideal}, ${r.cacheHits}/${r.requests} from the cache)`).join('; ')}; expected: time falls in proportion`,
    ]
    return { lines, figures }
  },
}

function plotSpec(rows: Row[]): Record<string, unknown> {
  const taskMs = rows[0]?.taskMs
  const base = rows.find((r) => r.fractionPercent === 0) ?? rows[0]!
  const ideal = rows.map((r) => ({ fractionPercent: r.fractionPercent, seconds: round(Number(base.seconds) * Number(r.ideal ?? 1), 4), series: 'ideal (in proportion)' }))
  const measured = rows.map((r) => ({ fractionPercent: r.fractionPercent, seconds: r.seconds, series: 'measured' }))
  return {
    title: { text: 'Memoization: completion time by duplicate requests', subtitle: `${rows[0]?.requests ?? '?'} requests of ${taskMs} ms, the cache primed with the duplicates` },
    width: 360,
    height: 240,
    data: { values: [...measured, ...ideal] },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'fractionPercent', type: 'quantitative', title: 'duplicate requests (%)' },
      y: { field: 'seconds', type: 'quantitative', title: 'completion time (s)' },
      color: { field: 'series', type: 'nominal', title: '' },
      strokeDash: { field: 'series', type: 'nominal' },
    },
    config: { legend: { labelLimit: 300 } },
  }
}
