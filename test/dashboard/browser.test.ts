// The dashboard page in a real headless Chromium (docs/monitoring.md "Dashboard"): a live monitored
// run (real DataFlowKernel, ThreadPoolExecutor, monitoring on) served by `tsflow monitor` as a real
// process. The run appears in the workflows list; its counts go up while tasks run, without a
// reload; a failed task's error and remote stack show in its detail; the task table filters by
// state and app, sorts and pages; the page says "ended" after cleanup. Every wait polls the DOM.
//
// Screenshots go to a scratch directory, or to $TSFLOW_DASHBOARD_SCREENSHOTS (docs/figures to
// refresh the documentation's: TSFLOW_DASHBOARD_SCREENSHOTS=docs/figures npx tap test/dashboard/browser.test.ts).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, awaitAllSettled } from 'tsflow'
import { burn } from '../fixtures/monitoring-apps.js'
import { chromiumMissing, launchChromium, startMonitor } from '../helpers/dashboard.js'
import { waitFor } from '../helpers/wait.js'
import { broken, gated, quick } from './apps.js'

// The functions run in the page; the test's tsconfig has no DOM library, so its globals are loose here.
declare const document: any, location: any, window: any
type HTMLElement = any

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-dashboard-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const shots = resolve(process.env.TSFLOW_DASHBOARD_SCREENSHOTS ?? join(scratch, 'shots'))

const QUICK = 30
const BROKEN = 4
const GATED = 20
const TOTAL = QUICK + BROKEN + GATED

/** Polls the page until `predicate(arg)` holds in it. */
async function until<A>(page: Page, what: string, predicate: (arg: A) => boolean, arg?: A, timeoutMs = 30_000): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: unknown) => boolean, arg, { timeout: timeoutMs, polling: 50 })
  } catch (error) {
    const state = await page.evaluate(() => ({ hash: location.hash, ready: document.body.dataset.ready, error: document.getElementById('error')?.textContent, header: document.querySelector('[data-testid=wf-header]')?.textContent }))
    throw new Error(`waiting for ${what}: ${(error as Error).message.split('\n')[0]}; page: ${JSON.stringify(state)}`)
  }
}
const countIs = (page: Page, state: string, n: number) =>
  until(page, `count-${state} = ${n}`, (a) => document.querySelector(`[data-testid=count-${a.state}]`)?.textContent === String(a.n), { state, n })
/** The element's text once the panel is filled, or null when the page has no such element (no waiting: the detail is drawn at once). */
const textOf = (page: Page, testid: string) => page.locator(`[data-testid=${testid}]`).textContent({ timeout: 1000 }).catch(() => null)
const rows = (page: Page) =>
  page.$$eval('[data-testid=task-row]', (trs) => trs.map((tr: any) => ({ id: Number(tr.getAttribute('data-task-id')), state: tr.getAttribute('data-state')!, app: tr.getAttribute('data-app')! })))
const pageInfo = (page: Page, text: string) =>
  until(page, `page info "${text}"`, (x) => document.querySelector('[data-testid=page-info]')?.textContent === x && !document.querySelector('[data-testid=task-table]')?.hasAttribute('aria-busy'), text)

// Runs where Chromium is missing too: the page's script at least parses.
t.test('the page script parses', async (t) => {
  const { PAGE_SCRIPT, PAGE_HTML, WEB_ASSETS } = await import('../../dist/monitoring/dashboard/web/page.js')
  t.doesNotThrow(() => new Function(PAGE_SCRIPT), 'dashboard.js is valid JavaScript')
  t.match(PAGE_HTML, /\/static\/dashboard\.js/, 'the HTML loads it')
  t.same(Object.keys(WEB_ASSETS).sort(), ['dashboard.css', 'dashboard.js'], 'the assets the server serves')
})

t.test('the dashboard in Chromium follows a live run', { skip: chromiumMissing() ?? false }, async (t) => {
  const runDir = join(scratch, 'runinfo')
  const db = join(scratch, 'monitoring.db')
  const gate = join(scratch, 'gate')
  const dfk = new DataFlowKernel({ runDir, executors: [new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })], monitoring: { enabled: true, db } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const futures: PromiseLike<unknown>[] = [
    ...Array.from({ length: QUICK }, (_, i) => quick.with({ dfk })(5 + (i % 5) * 10)),
    ...Array.from({ length: BROKEN }, (_, i) => broken.with({ dfk })(`#${i}`)),
    ...Array.from({ length: GATED }, () => gated.with({ dfk })(gate)),
  ]
  await waitFor(() => existsSync(db), 'the monitoring database')
  const url = await startMonitor(t, db)
  const browser = await launchChromium(t)
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(error.message))
  mkdirSync(shots, { recursive: true })

  // the workflows list shows the run, live
  await page.goto(url)
  const runId = dfk.runId!
  await until(page, 'the live run in the workflows list', (id) => {
    const row = document.querySelector(`[data-testid=workflow-row][data-run-id="${id}"]`)
    return !!row && row.querySelector('[data-testid=live-status]')?.textContent === 'live'
  }, runId)
  const run = Number(await page.getAttribute(`[data-testid=workflow-row][data-run-id="${runId}"]`, 'data-run'))
  t.ok(run > 0, `the run is listed as workflow ${run}`)
  await page.screenshot({ path: join(shots, 'dashboard-workflows.png'), clip: { x: 0, y: 0, width: 1400, height: 320 } })

  // its page: counts while the gated tasks hold both threads
  await page.click(`[data-testid=workflow-row][data-run-id="${runId}"] a`)
  await until(page, 'the workflow page', () => document.body.dataset.ready === 'workflow')
  t.equal(await page.evaluate(() => location.hash), `#/run/${run}`, 'the route names the run')
  await countIs(page, 'exec_done', QUICK)
  await countIs(page, 'failed', BROKEN)
  await until(page, 'tasks running', () => Number(document.querySelector('[data-testid=count-running]')?.textContent) >= 1)
  t.equal(await page.textContent('[data-testid=live-status]'), 'live', 'the header says live')
  t.equal(await page.textContent('[data-testid=count-total]'), String(TOTAL), 'every task is counted')

  // open the gate: the counts, table and charts follow without a reload
  await page.evaluate(() => (window.notReloaded = true))
  const chartsBefore = Number(await page.getAttribute('body', 'data-charts'))
  writeFileSync(gate, '')
  await countIs(page, 'exec_done', QUICK + GATED)
  await until(page, 'the charts redrawn', (n) => Number(document.body.dataset.charts) > n, chartsBefore)
  t.ok(await page.evaluate(() => window.notReloaded === true), 'the page updated in place')
  await awaitAllSettled(futures)
  await dfk.cleanup()
  await until(page, 'the run shown ended', () => document.querySelector('[data-testid=live-status]')?.textContent === 'ended')
  await until(page, 'no running task left in the header', () => document.querySelector('[data-testid=count-running]')?.textContent === '0')
  await until(page, 'an ended run shows its average rate', () => Number(document.querySelector('[data-testid=rate]')?.textContent) > 0)
  t.ok(await page.evaluate(() => window.notReloaded === true), 'still the same page at the end')
  await until(page, 'the Gantt chart drawn', () => Number(document.querySelector('[data-testid=chart-gantt]')?.getAttribute('data-rendered')) > 0 && !!document.querySelector('[data-testid=chart-gantt] canvas'))
  await until(page, 'per-app durations', () => document.querySelectorAll('[data-testid=app-row]').length === 3)

  // filter by state: only the failed tasks
  await page.selectOption('[data-testid=filter-state]', 'failed')
  await pageInfo(page, `1\u2013${BROKEN} of ${BROKEN}`)
  const failedRows = await rows(page)
  t.equal(failedRows.length, BROKEN, 'one row per failed task')
  t.ok(failedRows.every((r) => r.state === 'failed' && r.app === 'broken'), 'every row is a failed broken task')
  t.match(await page.evaluate(() => location.hash), /state=failed/, 'the filter is in the route')

  // a failed task's detail: the error, the remote stack, its try and its states
  await page.click(`[data-testid=task-row][data-task-id="${failedRows[0]!.id}"] a`)
  await until(page, 'the task detail', (id) => document.body.dataset.detail === String(id), failedRows[0]!.id)
  t.match(await textOf(page, 'task-error'), /dashboard test failure #\d/, 'the error is shown')
  t.match(await textOf(page, 'task-stack'), /dashboardBrokenInner/, 'the remote stack names the function that threw')
  t.ok((await page.$$('[data-testid=task-tries] tbody tr')).length >= 1, 'the try history is shown')
  t.match(await page.textContent('[data-testid=task-statuses]'), /failed/, 'the state changes end in failed')
  await page.screenshot({ path: join(shots, 'dashboard-task.png') })
  await page.click('[data-testid=detail-close]')
  await until(page, 'the detail closed', () => (document.querySelector('[data-testid=task-detail]') as HTMLElement).hidden)

  // filter by app (and back to every state)
  await page.selectOption('[data-testid=filter-state]', '')
  await page.selectOption('[data-testid=filter-app]', 'quick')
  await pageInfo(page, `1\u2013${QUICK} of ${QUICK}`)
  t.ok((await rows(page)).every((r) => r.app === 'quick' && r.state === 'exec_done'), 'only quick tasks')
  await page.selectOption('[data-testid=filter-app]', '')
  await pageInfo(page, `1\u201350 of ${TOTAL}`)

  // sorting: task id descending, then by app
  const ascending = await rows(page)
  t.same(ascending.map((r) => r.id), [...ascending.map((r) => r.id)].sort((a, b) => a - b), 'task ids ascend by default')
  await page.click('[data-testid=sort-task_id]')
  await until(page, 'descending ids', () => document.querySelector('th[data-sort-key=task_id]')?.getAttribute('aria-sort') === 'descending' && !document.querySelector('[data-testid=task-table]')?.hasAttribute('aria-busy'))
  await until(page, 'rows re-sorted', (first) => Number(document.querySelector('[data-testid=task-row]')?.getAttribute('data-task-id')) !== first, ascending[0]!.id)
  const descending = await rows(page)
  t.same(descending.map((r) => r.id), [...descending.map((r) => r.id)].sort((a, b) => b - a), 'task ids descend after a click on the column')
  t.equal(descending[0]!.id, Math.max(...ascending.map((r) => r.id), ...descending.map((r) => r.id)), 'the newest task first')
  await page.click('[data-testid=sort-app]')
  await until(page, 'sorted by app', () => document.querySelector('th[data-sort-key=app]')?.getAttribute('aria-sort') === 'ascending' && !document.querySelector('[data-testid=task-table]')?.hasAttribute('aria-busy'))
  await until(page, 'the first rows are broken ones', () => document.querySelector('[data-testid=task-row]')?.getAttribute('data-app') === 'broken')
  const byApp = (await rows(page)).map((r) => r.app)
  t.same(byApp, [...byApp].sort(), 'apps in order')

  // paging: 50 a page by default, the next page holds the rest
  await page.click('[data-testid=sort-task_id]')
  await until(page, 'ids ascending again', () => document.querySelector('th[data-sort-key=task_id]')?.getAttribute('aria-sort') === 'ascending' && !document.querySelector('[data-testid=task-table]')?.hasAttribute('aria-busy'))
  await pageInfo(page, `1\u201350 of ${TOTAL}`)
  const first = await rows(page)
  t.equal(first.length, 50, 'a page of 50')
  await page.click('[data-testid=page-next]')
  await pageInfo(page, `51\u2013${TOTAL} of ${TOTAL}`)
  const second = await rows(page)
  t.equal(second.length, TOTAL - 50, 'the rest on the second page')
  t.ok(second.every((r) => r.id > first[first.length - 1]!.id), 'the second page continues the first')
  t.ok(await page.isDisabled('[data-testid=page-next]'), 'no page after the last')
  await page.click('[data-testid=page-prev]')
  await pageInfo(page, `1\u201350 of ${TOTAL}`)

  // a linkable task view: a fresh page at #/run/<run>/task/<id> opens it
  const linked = await browser.newPage()
  await linked.goto(`${url}#/run/${run}/task/${failedRows[1]!.id}`)
  await until(linked, 'the linked task detail', (id) => document.body.dataset.detail === String(id), failedRows[1]!.id)
  t.match(await textOf(linked, 'task-error'), /dashboard test failure/, 'a linked failed task shows its error')
  await linked.close()

  t.same(pageErrors, [], 'no script errors on the page')
})

// HTEX on the local provider with resource sampling: the block, its manager and the tasks' /proc
// samples are drawn (the documentation's workflow screenshot comes from this run).
t.test('an HTEX run shows its block, manager and resource use', { skip: chromiumMissing() ?? false }, async (t) => {
  const db = join(scratch, 'htex', 'monitoring.db')
  const htex = new HighThroughputExecutor({
    label: 'htex', workerMode: 'processes', maxWorkersPerNode: 2, strategy: 'none',
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const dfk = new DataFlowKernel({ runDir: join(scratch, 'htex', 'runinfo'), executors: [htex], monitoring: { enabled: true, db, resourceIntervalMs: 100 } })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const futures: PromiseLike<unknown>[] = [
    ...Array.from({ length: 12 }, (_, i) => burn.with({ dfk })(300 + (i % 4) * 150, 10 + (i % 3) * 20)),
    ...Array.from({ length: 2 }, (_, i) => broken.with({ dfk })(`htex #${i}`)),
    ...Array.from({ length: 16 }, (_, i) => quick.with({ dfk })(20 + i * 5)),
  ]
  await awaitAllSettled(futures)
  await dfk.cleanup()
  const url = await startMonitor(t, db)
  const browser = await launchChromium(t)
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  await page.goto(`${url}#/run/1`)
  await until(page, 'the workflow page', () => document.body.dataset.ready === 'workflow')
  t.equal(await page.textContent('[data-testid=live-status]'), 'ended', 'the run has ended')
  for (const chart of ['chart-infra', 'chart-nodes', 'chart-task-resources', 'chart-gantt', 'chart-states', 'chart-apps']) {
    await until(page, `${chart} drawn`, (c) => !!document.querySelector(`[data-testid=${c}] canvas`), chart)
    t.pass(`${chart} is drawn`)
  }
  await page.screenshot({ path: join(shots, 'dashboard-workflow.png'), fullPage: true })
})
