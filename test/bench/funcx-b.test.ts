// Smoke test of the funcX experiments scaling, fault-tolerance, prefetching and memoization
// (bench/funcx.js compiled in out/: `npm run build:ts` first), each at a tiny size on the local
// default: the JSON lines' fields, their figures' consistency and the SVG.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { TSFLOW_VERSION } from 'tsflow'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const entry = join(root, 'out/bench/funcx.js')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-funcx-b-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

type Line = Record<string, any>

let runs = 0

async function experiment(name: string, args: string[]): Promise<{ stdout: string; lines: Line[]; svg: string }> {
  const out = join(scratch, `${name}-${++runs}`)
  const { stdout } = await promisify(execFile)(process.execPath, [entry, name, '--out', out, '--history', 'false', ...args], { timeout: 90_000 })
  const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Line)
  return { stdout, lines, svg: join(out, `${name}.svg`) }
}

function common(t: Test, name: string, line: Line): void {
  t.equal(line.experiment, name)
  t.equal(line.tsflow, TSFLOW_VERSION)
  t.match(line.machine, { cores: Number, cpuModel: String, node: process.version })
  t.equal(line.configFile, null, 'the local default')
  t.match(line.config, [{ class: 'HighThroughputExecutor', label: 'htex' }], "the config's executor described")
}

function plotted(t: Test, svg: string): void {
  t.ok(existsSync(svg), `${svg} written`)
  t.match(readFileSync(svg, 'utf8'), /^<svg/)
}

t.test('scaling: strong and weak, no-op and sleep, 1 and 4 workers, efficiency against the fewest', async (t) => {
  const { lines, svg } = await experiment('scaling', ['--workers', '1', '4', '--sleeps', '0', '20', '--tasks', '50', '--sleep-tasks', '10', '--warmup', '10'])
  t.equal(lines.length, 2 * 2 * 2, 'workers x task kinds x modes')
  for (const line of lines) {
    common(t, 'scaling', line)
    t.ok(line.seconds > 0 && line.tasksPerSecond > 0)
  }
  const sleepStrong = lines.filter((l) => l.mode === 'strong' && l.sleepMs === 20)
  t.same(sleepStrong.map((l) => l.tasks), [10, 10])
  t.ok(sleepStrong[1]!.seconds < sleepStrong[0]!.seconds, 'four workers sleep through 10 tasks faster than one')
  t.ok(sleepStrong.every((l) => l.seconds >= l.idealSeconds), 'never faster than the sleeps alone')
  t.same(lines.filter((l) => l.mode === 'weak').map((l) => l.tasks), [10, 10, 40, 40], 'weak: 10 tasks per worker')
  t.same([...new Set(lines.map((l) => l.workers))], [1, 4], 'four workers although the machine may have fewer cores (oversubscribed)')
  t.ok(lines.every((l) => l.efficiency > 0) && lines.filter((l) => l.workers === 1).every((l) => l.efficiency === 1), 'efficiency against the one-worker time')
  plotted(t, svg)
})

t.test('fault-tolerance: a manager SIGKILLed, declared lost, replaced; no task lost', async (t) => {
  const { lines, svg, stdout } = await experiment('fault-tolerance', ['--duration', '2.5', '--kill-after', '24', '--worker-mode', 'threads'])
  t.equal(lines.length, 1)
  const run = lines[0]!
  common(t, 'fault-tolerance', run)
  t.match(stdout, /killed manager \S+ \(pid \d+, block \d+\)/)
  t.ok(run.submitted >= 24 && run.submitted === run.tasks.length)
  t.equal(run.lost, 0, 'no task lost')
  t.equal(run.failed, 0, 'none failed after retries')
  t.equal(run.succeeded, run.submitted)
  t.ok(run.detectionSeconds !== null && run.detectionSeconds >= 0, `loss detected after ${run.detectionSeconds} s`)
  t.ok(run.replacedAt > run.killAt, `replacement registered ${run.replacementSeconds} s after the kill`)
  t.ok(run.tasks.every((x: any) => x.latency > 0 && x.end >= x.submit), 'every task has its submit and end times')
  t.type(run.targets.detection, 'boolean')
  plotted(t, svg)
})

t.test('prefetching: capacities 0 and auto, no-op and 1 ms tasks', async (t) => {
  const { lines, svg } = await experiment('prefetching', ['--capacities', '0', 'auto', '--durations', '0', '1', '--tasks', '20', '--latency-calls', '5'])
  t.same(lines.map((l) => `${l.capacity}/${l.durationMs}`), ['0/0', '0/1', 'auto/0', 'auto/1'])
  t.same(lines.map((l) => l.config[0].prefetchCapacity), [0, 0, 'auto', 'auto'], 'the capacity reached the executor')
  for (const line of lines) {
    common(t, 'prefetching', line)
    t.ok(line.tasksPerSecond > 0 && line.roundTripMedianMs > 0 && line.burstLatencyP95Ms >= line.burstLatencyMedianMs)
  }
  plotted(t, svg)
})

t.test('memoization: hits equal the primed duplicates; all duplicates take almost no time', async (t) => {
  const { lines, svg } = await experiment('memoization', ['--fractions', '0', '50', '100', '--requests', '8', '--task-ms', '100', '--workers', '2'])
  t.same(lines.map((l) => [l.fractionPercent, l.duplicates, l.cacheHits]), [[0, 0, 0], [50, 4, 4], [100, 8, 8]])
  for (const line of lines) common(t, 'memoization', line)
  t.ok(lines[2]!.seconds < lines[0]!.seconds / 4, `100 % duplicates in ${lines[2]!.seconds} s against ${lines[0]!.seconds} s with none`)
  t.ok(lines[1]!.seconds < lines[0]!.seconds, 'half duplicates take less time than none')
  plotted(t, svg)
})

t.test('fault-tolerance recovery: the first batch after the kill that starts a second of normal latency', async (t) => {
  const { recoveryOf } = (await import(join(root, 'out/bench/funcx/fault-tolerance.js'))) as typeof import('../../bench/funcx/fault-tolerance.js')
  // Batches every 0.15 s of one task; latency 0.1 s except where `slow` says.
  const trace = (slow: (submit: number) => number | undefined) =>
    Array.from({ length: 40 }, (_, i) => {
      const submit = Number((i * 0.15).toFixed(2))
      const latency = slow(submit) ?? 0.1
      return { task: i, submit, end: submit + latency, latency, ok: true, tryNumber: 0 }
    })
  // Killed at 1.8 s, replacement at 2.2 s; slow until the batch at 3.0 s.
  t.equal(recoveryOf(trace((s) => (s >= 1.8 && s < 3 ? 1 : undefined)), 1.8, 2.2, 0.2), 0.8, 'normal again from 3.0 s: 0.8 s after the replacement')
  t.equal(recoveryOf(trace(() => undefined), 1.8, 2.2, 0.2), 0, 'never slow: recovered when it registered')
  t.equal(recoveryOf(trace((s) => (s >= 1.8 && s < 2.4 ? 1 : s > 4.4 && s < 4.6 ? 1 : undefined)), 1.8, 2.2, 0.2), 0.2, 'a spike 2 s after recovery is not the failure\'s')
  t.equal(recoveryOf(trace((s) => (s >= 1.8 && s < 5.5 ? 1 : undefined)), 1.8, 2.2, 0.2), round3(5.55 - 2.2), 'slow until the end but for the last batches: recovered at the last normal window, truncated to the run')
  t.equal(recoveryOf(trace((s) => (s >= 1.8 ? 1 : undefined)), 1.8, 2.2, 0.2), null, 'never normal again')
})

function round3(x: number): number {
  return Number(x.toFixed(3))
}

t.test('--config: a config module (a function returning a fresh config) is taken as written; a sweep collapses to one point', async (t) => {
  const file = join(scratch, 'config.mjs')
  writeFileSync(
    file,
    `import { HighThroughputExecutor, LocalProvider } from ${JSON.stringify(pathToFileURL(join(root, 'dist/index.js')).href)}\n` +
      `export default () => ({ executors: [new HighThroughputExecutor({ label: 'from-file', maxWorkersPerNode: 2, workerMode: 'threads', provider: new LocalProvider() })] })\n`,
  )
  const memo = await experiment('memoization', ['--config', file, '--fractions', '0', '100', '--requests', '4', '--task-ms', '10'])
  t.same(memo.lines.map((l) => [l.fractionPercent, l.cacheHits]), [[0, 0], [100, 4]])
  for (const line of memo.lines) {
    t.equal(line.configFile, file)
    t.match(line.config, [{ label: 'from-file', workersPerNode: 2 }])
  }
  const scaled = await experiment('scaling', ['--config', file, '--workers', '1', '8', '--sleeps', '0', '--modes', 'strong', '--tasks', '20', '--warmup', '5'])
  t.match(scaled.stdout, /taken as written, so one point/)
  t.same(scaled.lines.map((l) => [l.workers, l.workersFrom]), [[2, 'the connected managers']], 'the workers the file gives, not the --workers sweep')
})
