// The interchange's Prometheus endpoint end to end: a real HTEX run on the local provider, then
// real HTTP scrapes of /metrics whose counts must match the run exactly.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, DataFlowKernel, HighThroughputExecutor, LocalProvider, resolveConfig } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'
import { checkHistograms, parseExposition } from './helpers/prometheus-text.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-prom-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

/** The pids of this process's interchange children (bin/interchange.js). */
function interchangePids(): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid !== process.pid) continue
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('interchange.js')) pids.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return pids
}

/** The one interchange child, once an earlier test's has exited. */
async function interchangePid(): Promise<number> {
  await waitFor(() => interchangePids().length === 1, 'exactly one interchange child')
  return interchangePids()[0]!
}

/** How many TCP sockets the process listens on (its fds matched against /proc/net/tcp{,6}). */
function listeningSockets(pid: number): number {
  const listening = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols[3] === '0A') listening.add(cols[9]!)
    }
  }
  let count = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m && listening.has(m[1]!)) count++
    } catch {
      // closed meanwhile
    }
  }
  return count
}

function findFile(dir: string, name: string): string | undefined {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isFile() && entry.name === name) return path
    if (entry.isDirectory()) {
      const found = findFile(path, name)
      if (found) return found
    }
  }
  return undefined
}

t.test('200 tasks (some failing), then /metrics shows the counts exactly', async (t) => {
  const executor = new HighThroughputExecutor({
    label: 'htex_prom',
    workerMode: 'threads',
    maxWorkersPerNode: 2,
    metricsPort: 0,
    strategy: 'none',
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
  })
  const runDir = join(scratch, 'on')
  const kernel = await new DataFlowKernel({ runDir, executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.match(executor.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'the executor knows the URL')
  const url = executor.metricsUrl!
  const scrape = async () => {
    const response = await fetch(url)
    t.equal(response.status, 200)
    return parseExposition(await response.text())
  }
  const value = (parsed: ReturnType<typeof parseExposition>, name: string, labels: Record<string, string> = {}) =>
    parsed.samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value

  const before = await scrape()
  t.equal(value(before, 'tsflow_interchange_up'), 1)
  t.equal(value(before, 'tsflow_tasks_submitted_total'), 0)

  const double = apps.double.with({ dfk: kernel })
  const fail = apps.failWithCause.with({ dfk: kernel })
  const FAILING = 37
  const futures = Array.from({ length: 200 }, (_, i) => (i % 200 < FAILING ? fail(`#${i}`) : double(i)))
  const settled = await Promise.allSettled(futures)
  t.equal(settled.filter((s) => s.status === 'rejected').length, FAILING, 'the failing apps failed')
  await waitFor(() => executor.managers().length === 1, 'the manager to be listed')

  const after = await scrape()
  t.equal(value(after, 'tsflow_tasks_submitted_total'), 200)
  t.equal(value(after, 'tsflow_tasks_completed_total', { outcome: 'ok' }), 200 - FAILING)
  t.equal(value(after, 'tsflow_tasks_completed_total', { outcome: 'failed' }), FAILING)
  t.equal(value(after, 'tsflow_queue_depth'), 0, 'the queue is empty again')
  t.equal(value(after, 'tsflow_tasks', { state: 'queued' }), 0)
  t.equal(value(after, 'tsflow_tasks', { state: 'running' }), 0)
  const managers = executor.managers()
  t.equal(value(after, 'tsflow_managers'), managers.length)
  t.equal(value(after, 'tsflow_workers'), managers.reduce((n, m) => n + m.workers, 0))
  t.equal(value(after, 'tsflow_block_workers', { block: managers[0]!.blockId }), managers[0]!.workers)
  t.equal(value(after, 'tsflow_task_duration_seconds_count'), 200, 'every task timed from dispatch to result')
  t.equal(value(after, 'tsflow_managers_lost_total'), 0)
  checkHistograms(after, t)
  t.equal((await fetch(url.replace(/\/metrics$/, '/other'))).status, 404, '404 on another path')

  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: await (await fetch(url)).text(), encoding: 'utf8' })
  if (promtool.error) t.pass('promtool check metrics', { skip: 'promtool is not installed (apt-get install prometheus)' })
  else t.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`)

  const pid = await interchangePid()
  t.ok(pid, 'the interchange process found')
  t.equal(listeningSockets(pid!), 3, 'client, manager and metrics ports')
  const log = findFile(runDir, 'interchange.log')
  t.ok(log && /Prometheus metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/.test(readFileSync(log, 'utf8')), 'the interchange logs the URL')
})

t.test('with the option off no metrics port is opened', async (t) => {
  const executor = new HighThroughputExecutor({
    label: 'htex_plain',
    workerMode: 'threads',
    maxWorkersPerNode: 1,
    strategy: 'none',
    provider: new LocalProvider({ initBlocks: 0, minBlocks: 0, maxBlocks: 1 }),
  })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'off'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.equal(executor.metricsUrl, undefined)
  const pid = await interchangePid()
  t.ok(pid, 'the interchange process found')
  t.equal(listeningSockets(pid!), 2, 'only the client and manager ports')
})

t.test('metricsPort is checked once, naming the option path', async (t) => {
  for (const bad of [-1, 70_000, 1.5, '9100']) {
    try {
      resolveConfig({ executors: [new HighThroughputExecutor({ metricsPort: bad as number, provider: new LocalProvider({ initBlocks: 0 }) })] })
      t.fail(`metricsPort ${JSON.stringify(bad)} accepted`)
    } catch (error) {
      t.ok(error instanceof ConfigError, 'a ConfigError')
      t.equal((error as ConfigError).path, 'executors[0].metricsPort')
    }
  }
})
