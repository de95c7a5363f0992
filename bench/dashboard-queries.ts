/**
 * How long each dashboard route takes on a large workflow (docs/monitoring.md "Dashboard"): a
 * synthetic run of --tasks tasks (default 1,000,000; 1 in 1000 retried, half of those failing;
 * 1 in 100 with resource samples; 8 blocks and managers) written through the real monitoring
 * writer thread, then every route requested over HTTP from `tsflow monitor`'s server. Each
 * repetition starts a fresh server, so every request runs its SQL (the server's answer cache is
 * empty); a last request per route shows the cached answer. Results: bench/results/
 * dashboard-queries.jsonl and docs/figures/dashboard-queries.svg.
 *
 *   node out/bench/dashboard-queries.js [--tasks 1000000] [--reps 3] [--db FILE (reuse)]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Server from '../src/monitoring/dashboard/server.js'
import { pathToFileURL } from 'node:url'
import { writeSyntheticRun } from './lib/monitoring-synthetic.js'
import { appendResult, parseFlags } from './lib/results.js'

// The built server beside the package's entry (dist/), as `tsflow monitor` runs it.
const serverUrl = pathToFileURL(join(dirname(fileURLToPath(import.meta.resolve('tsflow'))), 'monitoring', 'dashboard', 'server.js')).href
const { startDashboard } = (await import(serverUrl)) as typeof Server

const flags = parseFlags(process.argv.slice(2), { tasks: '1000000', reps: '3', db: '' })
const tasks = Number(flags.tasks)
const reps = Number(flags.reps)
const scratch = flags.db ? undefined : mkdtempSync(join(tmpdir(), 'tsflow-dashboard-bench-'))
const db = flags.db || join(scratch!, 'monitoring.db')

try {
  if (!existsSync(db)) {
    const started = performance.now()
    const result = await writeSyntheticRun({ db, runId: 'bench', tasks, failEvery: 1000, managers: 8, sampleEvery: 100, submitGapMs: 0.05 })
    const seconds = (performance.now() - started) / 1000
    process.stdout.write(`wrote ${tasks} tasks (${result.written} records) through the writer in ${seconds.toFixed(1)} s\n`)
  }
  const routes = [
    '/api/workflows',
    '/api/workflows/1',
    '/api/workflows/1/tasks',
    '/api/workflows/1/tasks?sort=duration&order=desc',
    '/api/workflows/1/tasks?sort=end_ms',
    '/api/workflows/1/tasks?state=failed',
    '/api/workflows/1/tasks?app=simulate&sort=submit_ms&order=desc',
    `/api/workflows/1/tasks?offset=${Math.max(0, tasks - 50)}`,
    '/api/workflows/1/tasks/1000',
    '/api/workflows/1/gantt',
    '/api/workflows/1/gantt?limit=20000',
    '/api/workflows/1/states',
    '/api/workflows/1/apps',
    '/api/workflows/1/infrastructure',
    '/api/workflows/1/resources',
    '/metrics',
  ]
  const times = new Map<string, number[]>(routes.map((r) => [r, []]))
  const cached = new Map<string, number>()
  const bytes = new Map<string, number>()
  const timed = async (url: string) => {
    const start = performance.now()
    const response = await fetch(url)
    const body = await response.arrayBuffer()
    if (response.status !== 200) throw new Error(`${url}: ${response.status} ${Buffer.from(body).toString().slice(0, 200)}`)
    return { ms: performance.now() - start, bytes: body.byteLength }
  }
  for (let rep = 0; rep < reps; rep++) {
    const dashboard = await startDashboard({ db })
    try {
      for (const route of routes) {
        const { ms, bytes: size } = await timed(new URL(route, dashboard.url).href)
        times.get(route)!.push(ms)
        bytes.set(route, size)
      }
      if (rep === reps - 1) for (const route of routes) cached.set(route, (await timed(new URL(route, dashboard.url).href)).ms)
    } finally {
      await dashboard.close()
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  const rows = routes.map((route) => ({ route, medianMs: median(times.get(route)!), maxMs: Math.max(...times.get(route)!), cachedMs: cached.get(route)!, bytes: bytes.get(route)! }))
  process.stdout.write(`route${' '.repeat(60)}median ms   max ms  cached ms   bytes\n`)
  for (const r of rows) {
    process.stdout.write(`${r.route.padEnd(65)}${r.medianMs.toFixed(1).padStart(9)}${r.maxMs.toFixed(1).padStart(9)}${r.cachedMs.toFixed(2).padStart(11)}${String(r.bytes).padStart(8)}\n`)
  }
  const file = appendResult('dashboard-queries', { tasks, reps, routes: rows })
  process.stdout.write(`results: ${file}\n`)

  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')])
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `Dashboard routes on a ${tasks.toLocaleString('en')}-task workflow`, subtitle: `median of ${reps} uncached requests over HTTP; dot: the cached answer` },
    width: 420,
    height: { step: 20 },
    background: 'white',
    config: { axis: { labelLimit: 0 } },
    data: { values: rows },
    layer: [
      { mark: { type: 'bar', color: '#4c78a8' }, encoding: { y: { field: 'route', type: 'nominal', sort: routes, title: null }, x: { field: 'medianMs', type: 'quantitative', title: 'ms' } } },
      { mark: { type: 'point', filled: true, color: '#e45756' }, encoding: { y: { field: 'route', type: 'nominal', sort: routes }, x: { field: 'cachedMs', type: 'quantitative' } } },
    ],
  }
  const view = new vega.View(vega.parse(vegaLite.compile(spec as unknown as Parameters<typeof vegaLite.compile>[0]).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/out/') ? ['..'] : []))
  const figure = join(root, 'docs', 'figures', 'dashboard-queries.svg')
  writeFileSync(figure, svg)
  process.stdout.write(`figure: ${figure}\n`)
} finally {
  if (scratch) rmSync(scratch, { recursive: true, force: true })
}
