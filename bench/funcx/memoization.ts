/**
 * funcX experiment `memoization`: --requests requests of which 0 / 25 / 50 / 100 % (--fractions)
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
import { BenchUsage, parseNumber, type FlagSpec } from '../lib/args.js'
import { median, prepare, round, startKernel, waitForManagers, type Prepared } from './kernel.js'
import { openOutput, parseExperimentFlags } from './output-b.js'
import { cachedRequest } from './tasks.js'

export const NAME = 'memoization'

export const FLAGS = {
  fractions: { default: ['0', '25', '50', '100'], list: true, commas: true, help: 'percent of the requests that are duplicates of primed ones' },
  requests: { default: '40', help: 'requests per measurement' },
  'task-ms': { default: '100', help: 'work per request that is not served from the cache, ms (a sleep: an inference call)' },
  workers: { default: '4', help: 'workers (one manager)' },
  'worker-mode': { default: 'processes', choices: ['threads', 'processes'], help: 'workers as processes (the HTEX default) or threads' },
} satisfies Record<string, FlagSpec>

export const SUMMARY = `Completion time by the fraction of duplicate requests, the cache primed with them (funcX paper, Memoization).`

export interface MemoRow {
  fractionPercent: number
  requests: number
  duplicates: number
  cacheHits: number
  seconds: number
  runs: number[]
  relative?: number
  ideal?: number
}

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

export async function run(argv: string[]): Promise<number> {
  const flags = parseExperimentFlags(NAME, SUMMARY, FLAGS, argv)
  if (!flags) return 0
  const fractions = flags.fractions.map((v) => parseNumber(v, '--fractions'))
  const bad = fractions.find((f) => f > 100)
  if (bad !== undefined) throw new BenchUsage(`--fractions ${bad}: a percentage, 0..100`)
  const requests = parseNumber(flags.requests, '--requests', { min: 1, integer: true })
  const taskMs = parseNumber(flags['task-ms'], '--task-ms')
  const workersWanted = parseNumber(flags.workers, '--workers', { min: 1, integer: true })
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  let described: Prepared['described'] = []
  const out = openOutput(NAME, flags, () => ({ source: flags.config || 'default', executors: described }))
  const prepared = await prepare(flags.config, { experiment: NAME, workers: workersWanted, managers: 1, workerMode: flags['worker-mode'] as 'threads' | 'processes' })
  described = prepared.described
  const kernel = await startKernel(prepared)
  const rows: MemoRow[] = []
  try {
    const workers = await waitForManagers(prepared.executor, 1, workersWanted)
    const request = cachedRequest.with({ dfk: kernel })
    // Warm-up in a namespace of its own: every worker started and used.
    await Promise.all(Array.from({ length: workers * 2 }, (_, i) => request('warm-up', i, 1)))
    for (const fraction of fractions) {
      const duplicates = Math.round((requests * fraction) / 100)
      const runs: number[] = []
      let hits = 0
      for (let r = 0; r < repeat; r++) {
        // A namespace per measurement: nothing primed for another fraction or repetition is a hit here.
        const ns = `f${fraction}-r${r}-${process.pid}`
        const primed = new Set((await Promise.all(Array.from({ length: duplicates }, (_, i) => request(ns, i, taskMs)))).map((x) => x.nonce))
        const order = requestOrder(requests, duplicates)
        const started = performance.now()
        const results = await Promise.all(order.map((input) => request(ns, input, taskMs)))
        runs.push((performance.now() - started) / 1000)
        hits = results.filter((x) => primed.has(x.nonce)).length
        if (results.some((x, i) => x.input !== order[i] || x.ns !== ns)) throw new Error(`memoization: a result does not match its request (${ns})`)
        if (hits !== duplicates) {
          throw new Error(
            `memoization: ${hits} of ${requests} requests were served from the cache, expected the ${duplicates} duplicates; ` +
              'is the app cache off in the config (appCache: false)?',
          )
        }
      }
      const row: MemoRow = { fractionPercent: fraction, requests, duplicates, cacheHits: hits, seconds: round(median(runs), 4), runs: runs.map((x) => round(x, 4)) }
      rows.push(row)
      console.log(`${String(fraction).padStart(3)} % duplicates: ${requests} requests (${duplicates} from the cache) in ${row.seconds.toFixed(4)} s`)
    }
  } finally {
    await kernel.cleanup()
  }
  const base = rows.find((r) => r.fractionPercent === 0) ?? rows[0]!
  for (const row of rows) {
    row.relative = round(row.seconds / base.seconds, 3)
    row.ideal = round(1 - (row.fractionPercent - base.fractionPercent) / (100 - base.fractionPercent || 1), 3)
    out.record({ ...row, taskMs })
  }
  console.log(`relative to ${base.fractionPercent} %: ${rows.map((r) => `${r.fractionPercent} % -> ${r.relative} (ideal ${r.ideal})`).join(', ')}`)
  await out.finish({ rows: rows.map(({ runs: _runs, ...row }) => row), taskMs }, plotSpec(rows, taskMs))
  return 0
}

function plotSpec(rows: MemoRow[], taskMs: number): Record<string, unknown> {
  const base = rows.find((r) => r.fractionPercent === 0) ?? rows[0]!
  const ideal = rows.map((r) => ({ fractionPercent: r.fractionPercent, seconds: round(base.seconds * (r.ideal ?? 1), 4), series: 'ideal (in proportion)' }))
  const measured = rows.map((r) => ({ fractionPercent: r.fractionPercent, seconds: r.seconds, series: 'measured' }))
  return {
    title: { text: 'tsflow memoization (funcX suite)', subtitle: `${rows[0]?.requests ?? '?'} requests of ${taskMs} ms, the cache primed with the duplicates` },
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
