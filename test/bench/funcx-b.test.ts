// Smoke test of the funcX experiments scaling, fault-tolerance, prefetching and memoization (the
// compiled bench in out/, `npm run build:ts` first), each at a tiny size on the local default:
// the JSON lines' fields and the SVG.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { TSFLOW_VERSION } from 'tsflow'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const entry = join(root, 'out/bench/funcx/dev-entry.js')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-funcx-b-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

async function experiment(name: string, args: string[]): Promise<{ stdout: string; lines: Record<string, any>[]; svg: string }> {
  const { stdout } = await promisify(execFile)(process.execPath, [entry, name, '--out', scratch, '--history', 'false', ...args], { timeout: 90_000 })
  const results = /results (\S+results\.jsonl)/.exec(stdout)?.[1]
  const svg = /plot (\S+\.svg)/.exec(stdout)?.[1]
  if (!results || !svg) throw new Error(`${name}: no results or plot named in its output:\n${stdout}`)
  const lines = readFileSync(results, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, any>)
  return { stdout, lines, svg }
}

function common(t: any, name: string, line: Record<string, any>): void {
  t.equal(line.experiment, name)
  t.equal(line.tsflow, TSFLOW_VERSION)
  t.type(line.machine?.cores, 'number', 'machine: cores')
  t.type(line.machine?.cpuModel, 'string', 'machine: cpu model')
  t.equal(line.config?.source, 'default')
  t.equal(line.config?.executors?.[0]?.type, 'htex', "the config's executor described")
}

function plotted(t: any, svg: string): void {
  t.ok(existsSync(svg), `${svg} written`)
  t.match(readFileSync(svg, 'utf8'), /^<svg/)
}

t.test('scaling: strong and weak, no-op and sleep, two worker counts, efficiency against the fewest', async (t) => {
  const { lines, svg } = await experiment('scaling', ['--workers', '1', '2', '--sleeps', '0', '20', '--tasks', '50', '--sleep-tasks', '10', '--warmup', '10'])
  t.equal(lines.length, 2 * 2 * 2, 'workers x task kinds x modes')
  for (const line of lines) {
    common(t, 'scaling', line)
    t.ok(line.seconds > 0 && line.tasksPerSecond > 0)
  }
  const sleepStrong = lines.filter((l) => l.mode === 'strong' && l.sleepMs === 20)
  t.same(sleepStrong.map((l) => l.tasks), [10, 10])
  t.ok(sleepStrong[1]!.seconds < sleepStrong[0]!.seconds, 'two workers sleep through 10 tasks faster than one')
  t.ok(sleepStrong.every((l) => l.seconds >= l.idealSeconds), 'never faster than the sleeps alone')
  t.same(lines.filter((l) => l.mode === 'weak').map((l) => l.tasks), [10, 10, 20, 20], 'weak: 10 tasks per worker')
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
  t.same(lines.map((l) => l.config.executors[0].prefetchCapacity), [0, 0, 'auto', 'auto'], 'the capacity reached the executor')
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
