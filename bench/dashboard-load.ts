/**
 * bench/dashboard-load: how long the dashboard's pages take to show a 100,000-task run (issue 12's
 * figure: each page within 1 s).
 *
 *   npm run bench:dashboard-load [-- --tasks 100000 --reps 5 --threads 2 --failEvery 100]
 *
 * A real monitored run of no-op tasks (ThreadPoolExecutor, `monitoring: { enabled: true }`; one
 * task in `failEvery` throws) writes the database through the recorder and the writer thread;
 * `tsflow monitor <db>` serves it as a real process; Debian's headless Chromium (playwright-core)
 * opens each page `reps` times, each time in a fresh browser context (empty cache). The times are
 * the page's own performance marks, from navigation start: `ready:<view>` when the view's data is
 * on screen (for a workflow: header, task table and every chart drawn), `table` when the task
 * table first shows rows, `detail` when a task's panel is filled. Results are appended to
 * bench/results/dashboard-load.jsonl, plotted to bench/results/dashboard-load.svg.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'
import { DataFlowKernel, ThreadPoolExecutor, app, awaitAllSettled, main } from 'tsflow'
import { RESULTS_DIR, appendResult, parseFlags, percentile } from './lib/results.js'
import { writeVegaLiteSvg } from './lib/vega.js'

export const noop = app(function noop(x: number) {
  return x
})
export const fails = app(function fails(x: number): number {
  throw new Error(`bench failure ${x}`)
})

// from out/bench/ (compiled) or bench/ (tsx)
const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), ...(import.meta.url.includes('/out/') ? ['..', '..'] : ['..']))
const CHROMIUM = process.env.TSFLOW_CHROMIUM ?? '/usr/bin/chromium'

/** The pages measured: a route and the performance mark that says its data is shown. */
function pages(run: number, tasks: number, failedTask: number): { name: string; hash: string; mark: string; extra?: string }[] {
  return [
    { name: 'workflows list', hash: '#/', mark: 'tsflow:ready:list' },
    { name: 'workflow', hash: `#/run/${run}`, mark: 'tsflow:ready:workflow', extra: 'tsflow:table' },
    { name: 'failed tasks', hash: `#/run/${run}?state=failed`, mark: 'tsflow:ready:workflow', extra: 'tsflow:table' },
    { name: 'last page', hash: `#/run/${run}?offset=${tasks - 50}`, mark: 'tsflow:ready:workflow', extra: 'tsflow:table' },
    { name: 'sorted by duration', hash: `#/run/${run}?sort=duration&order=desc`, mark: 'tsflow:ready:workflow', extra: 'tsflow:table' },
    { name: 'task detail', hash: `#/run/${run}/task/${failedTask}`, mark: 'tsflow:detail' },
  ]
}

export async function record(db: string, tasks: number, threads: number, failEvery: number): Promise<{ runId: string; seconds: number; failedTask: number }> {
  const dfk = await new DataFlowKernel({ runDir: join(dirname(db), 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: threads })], monitoring: { enabled: true, db } }).start()
  const started = performance.now()
  const futures: PromiseLike<unknown>[] = new Array(tasks)
  const ok = noop.with({ dfk })
  const bad = fails.with({ dfk })
  for (let i = 0; i < tasks; i++) futures[i] = i % failEvery === failEvery - 1 ? bad(i) : ok(i)
  await awaitAllSettled(futures)
  await dfk.cleanup()
  // task ids count from 1 in submission order: the first failing task
  return { runId: dfk.runId!, seconds: (performance.now() - started) / 1000, failedTask: failEvery }
}

/** `tsflow monitor <db>` as a real process; resolves with its URL and a stop function. */
async function serve(db: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'bin', 'tsflow.js'), 'monitor', db, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  let out = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      out += chunk
      const m = /tsflow monitor: (http:\/\/\S+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    void exited.then(() => reject(new Error(`tsflow monitor exited: ${out}`)))
  })
  return { url, stop }
}

async function measure(browser: Browser, url: string, hash: string, mark: string, extra: string | undefined): Promise<{ ms: number; extraMs: number | undefined }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } })
  try {
    const page = await context.newPage()
    await page.goto(url + hash)
    await page.waitForFunction((m) => performance.getEntriesByName(m).length > 0, mark, { timeout: 60_000 })
    return await page.evaluate(([m, x]) => ({
      ms: performance.getEntriesByName(m!)[0]!.startTime,
      extraMs: x ? performance.getEntriesByName(x)[0]?.startTime : undefined,
    }), [mark, extra] as const)
  } finally {
    await context.close()
  }
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { tasks: '100000', reps: '5', threads: '2', failEvery: '100' })
  const tasks = Number(flags.tasks)
  const reps = Number(flags.reps)
  if (!existsSync(CHROMIUM)) throw new Error(`chromium is not installed at ${CHROMIUM} (apt-get install chromium)`)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-dashboard-'))
  const db = join(scratch, 'monitoring.db')
  let server: { url: string; stop: () => Promise<void> } | undefined
  let browser: Browser | undefined
  try {
    const run = await record(db, tasks, Number(flags.threads), Number(flags.failEvery))
    console.log(`recorded ${tasks.toLocaleString('en')} tasks in ${run.seconds.toFixed(1)} s`)
    server = await serve(db)
    const list = (await (await fetch(`${server.url}api/workflows`)).json()) as { workflows: { run: number; runId: string; tasks: number }[] }
    const workflow = list.workflows.find((w) => w.runId === run.runId)
    if (workflow?.tasks !== tasks) throw new Error(`the database holds ${workflow?.tasks} tasks of run ${run.runId}, not ${tasks}`)
    const runKey = workflow.run
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] })
    // the first load meets a cold server (its answers are cached until the database changes) and
    // a cold page cache: reported on its own, not among the reps
    const first = await measure(browser, server.url, `#/run/${runKey}`, 'tsflow:ready:workflow', 'tsflow:table')
    console.log(`first workflow load (cold server) ${Math.round(first.ms)} ms (table shown ${Math.round(first.extraMs ?? NaN)} ms)`)
    const rows = []
    for (const p of pages(runKey, tasks, run.failedTask)) {
      const times: number[] = []
      const extras: number[] = []
      for (let r = 0; r < reps; r++) {
        const m = await measure(browser, server.url, p.hash, p.mark, p.extra)
        times.push(Math.round(m.ms))
        if (m.extraMs !== undefined) extras.push(Math.round(m.extraMs))
      }
      const sorted = [...times].sort((a, b) => a - b)
      const row = { page: p.name, route: p.hash, mark: p.mark, times, medianMs: percentile(sorted, 50), maxMs: sorted[sorted.length - 1]!, tableMs: extras.length ? percentile([...extras].sort((a, b) => a - b), 50) : undefined }
      rows.push(row)
      console.log(`${p.name.padEnd(20)} median ${String(row.medianMs).padStart(5)} ms  max ${String(row.maxMs).padStart(5)} ms${row.tableMs !== undefined ? `  (table shown ${row.tableMs} ms)` : ''}  ${row.maxMs <= 1000 ? 'within 1 s' : 'OVER 1 s'}`)
    }
    const file = appendResult('dashboard-load', { tasks, reps, threads: Number(flags.threads), failEvery: Number(flags.failEvery), recordSeconds: Number(run.seconds.toFixed(1)), firstLoadMs: Math.round(first.ms), firstTableMs: Math.round(first.extraMs ?? NaN), pages: rows })
    const svg = join(RESULTS_DIR, 'dashboard-load.svg')
    await writeVegaLiteSvg(svg, {
      title: `dashboard page load, ${tasks.toLocaleString('en')}-task run (${reps} loads each, fresh browser context)`,
      width: 520,
      height: { step: 28 },
      data: { values: rows.flatMap((r) => r.times.map((ms) => ({ page: r.page, ms }))) },
      layer: [
        { mark: { type: 'bar', color: '#9ecae9' }, encoding: { y: { field: 'page', type: 'nominal', sort: null, title: null }, x: { aggregate: 'median', field: 'ms', type: 'quantitative', title: 'navigation to data shown (ms)' } } },
        { mark: { type: 'tick', color: '#1f4e79', thickness: 2 }, encoding: { y: { field: 'page', type: 'nominal', sort: null }, x: { field: 'ms', type: 'quantitative' } } },
        { data: { values: [{ ms: 1000 }] }, mark: { type: 'rule', color: '#e45756', strokeDash: [4, 3] }, encoding: { x: { field: 'ms', type: 'quantitative' } } },
      ],
    })
    console.log(`results appended to ${file}; plot ${svg}`)
  } finally {
    await browser?.close()
    await server?.stop()
    rmSync(scratch, { recursive: true, force: true })
  }
})
