/**
 * bench/monitoring-overhead: what monitoring costs no-op throughput, measured with tsflow-perf
 * itself (issue 12's figure: with `--monitoring`, resource sampling every 1 s, at least 85% of the
 * rate without). For each executor (the ThreadPoolExecutor, and the HighThroughputExecutor on a
 * LocalProvider), each rep runs `tsflow-perf --iterate WARMUP,TASKS` twice in fresh processes,
 * once off and once on, the order alternating from rep to rep so that drift on a shared machine
 * hits both; the rate is the last (measured) iteration's completed/s.
 *
 *   npm run bench:monitoring-overhead [-- --executors threads,htex --reps 3 --threads-tasks 100000 --htex-tasks 30000]
 *
 * Recorded per run: the rate, the workflow process's CPU time (all its threads: the kernel, the
 * thread pool or HTEX client, and with monitoring the writer thread), the 1-minute load average
 * before it (the machine's other work), and with monitoring the records sent and written and the
 * writer's lag. Writes bench/results/monitoring-overhead.{jsonl,csv,svg}.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { main } from 'tsflow'
import { CLOCK_TICKS } from './lib/proc.js'
import { threadCpu, WRITER_THREAD } from './lib/threads.js'
import { RESULTS_DIR, appendResult, parseFlags } from './lib/results.js'
import { writeVegaLiteSvg } from './lib/vega.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/out/') ? ['..'] : []))
const PERF_BIN = join(ROOT, 'dist', 'bin', 'perf.js')

interface Run {
  executor: string
  monitoring: boolean
  rep: number
  tasks: number
  tasksPerSec: number
  /** the tsflow-perf process's CPU time (user + system, all threads), s */
  cpuS: number
  /** of which the monitoring writer thread's, s */
  writerCpuS: number
  load1: number
  sent?: number
  written?: number
  maxLagMs?: number
  lagMs?: number
}

const CONFIGS: Record<string, string> = {
  threads: `import { ThreadPoolExecutor } from 'tsflow'\nexport default { executors: [new ThreadPoolExecutor({ maxThreads: 2 })], runDir: RUNDIR }\n`,
  htex: `import { HighThroughputExecutor, LocalProvider } from 'tsflow'\nexport default { executors: [new HighThroughputExecutor({ maxWorkersPerNode: 2, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }) })], runDir: RUNDIR }\n`,
}

/** utime + stime of a live process, s (0 once gone). */
function cpuSeconds(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return 0
  }
}

async function perfRun(scratch: string, executor: string, monitoring: boolean, rep: number, warmup: number, tasks: number): Promise<Run> {
  const dir = join(scratch, `${executor}-${monitoring ? 'on' : 'off'}-${rep}`)
  mkdirSync(dir)
  const config = join(dir, 'config.mjs')
  writeFileSync(config, CONFIGS[executor]!.replace('RUNDIR', JSON.stringify(join(dir, 'runinfo'))))
  const results = join(dir, 'results')
  const args = [PERF_BIN, '--config', config, '--iterate', `${warmup},${tasks}`, '--results-dir', results]
  if (monitoring) args.push('--monitoring', '--resource-interval-ms', '1000')
  const load1 = loadavg()[0]!
  const child = spawn(process.execPath, args, { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  // The process's CPU just before it exits: sampled while it lives, the last reading kept.
  let cpuS = 0
  let writerCpuS = 0
  const sampler = setInterval(() => {
    cpuS = Math.max(cpuS, cpuSeconds(child.pid!))
    for (const thread of threadCpu(child.pid!).values()) if (thread.name === WRITER_THREAD) writerCpuS = Math.max(writerCpuS, thread.cpuS)
  }, 50)
  const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)))
  clearInterval(sampler)
  if (code !== 0) throw new Error(`tsflow-perf ${args.slice(1).join(' ')} exited with ${code}:\n${output}`)
  const record = JSON.parse(readFileSync(join(results, 'tsflow-perf.jsonl'), 'utf8').trim().split('\n').at(-1)!)
  const m = record.monitoring as { sent: number; written: number; maxLagMs: number; lagMs: number } | undefined
  return { executor, monitoring, rep, tasks, tasksPerSec: Math.round(record.tasksPerSecond), cpuS, writerCpuS, load1, sent: m?.sent, written: m?.written, maxLagMs: m?.maxLagMs, lagMs: m?.lagMs }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { executors: 'threads,htex', reps: '3', 'threads-tasks': '100000', 'htex-tasks': '30000' })
  const executors = flags.executors!.split(',')
  for (const executor of executors) if (!CONFIGS[executor]) throw new Error(`--executors: unknown ${executor}; known: ${Object.keys(CONFIGS).join(', ')}`)
  const reps = Number(flags.reps)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-monitoring-'))
  // The config modules import 'tsflow': resolve it to this checkout.
  mkdirSync(join(scratch, 'node_modules'))
  symlinkSync(ROOT, join(scratch, 'node_modules', 'tsflow'), 'dir')
  const runs: Run[] = []
  try {
    for (const executor of executors) {
      const tasks = Number(flags[`${executor}-tasks`])
      const warmup = Math.max(1000, Math.round(tasks / 10))
      for (let rep = 0; rep < reps; rep++) {
        for (const monitoring of rep % 2 === 0 ? [false, true] : [true, false]) {
          const run = await perfRun(scratch, executor, monitoring, rep, warmup, tasks)
          runs.push(run)
          const extra = monitoring ? `; ${run.written} of ${run.sent} records written, writer lag ${run.lagMs} ms at the end (max ${run.maxLagMs})` : ''
          console.log(`${executor} rep ${rep} monitoring ${monitoring ? 'on ' : 'off'}: ${run.tasksPerSec.toLocaleString('en')} tasks/s, ${run.cpuS.toFixed(2)} s CPU${monitoring ? ` (writer ${run.writerCpuS.toFixed(2)} s)` : ''}, load ${run.load1.toFixed(1)}${extra}`)
        }
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  const summary = executors.map((executor) => {
    const of = (on: boolean) => runs.filter((r) => r.executor === executor && r.monitoring === on)
    const off = median(of(false).map((r) => r.tasksPerSec))
    const on = median(of(true).map((r) => r.tasksPerSec))
    // Pairs from the same rep ran back to back: their ratios say more than the medians on a busy machine.
    const pairRatios = of(true).map((r) => Number((r.tasksPerSec / of(false).find((o) => o.rep === r.rep)!.tasksPerSec).toFixed(3)))
    const cpuPerTaskUs = (on: boolean) => Math.round(median(of(on).map((r) => (r.cpuS * 1e6) / (r.tasks + Math.max(1000, Math.round(r.tasks / 10))))) * 10) / 10
    return {
      executor,
      offTasksPerSec: off,
      onTasksPerSec: on,
      ratio: Number((on / off).toFixed(3)),
      pairRatios,
      cpuPerTaskUsOff: cpuPerTaskUs(false),
      cpuPerTaskUsOn: cpuPerTaskUs(true),
      writerCpuPerTaskUs: Math.round(median(of(true).map((r) => (r.writerCpuS * 1e6) / (r.tasks + Math.max(1000, Math.round(r.tasks / 10))))) * 10) / 10,
      recordsLost: of(true).map((r) => r.sent! - r.written!),
      maxLagMs: Math.max(...of(true).map((r) => r.maxLagMs!)),
    }
  })
  for (const s of summary) {
    console.log(
      `${s.executor}: off ${s.offTasksPerSec.toLocaleString('en')} tasks/s, on ${s.onTasksPerSec.toLocaleString('en')} tasks/s (medians of ${reps}); ratio ${s.ratio} ` +
        `(per rep ${s.pairRatios.join(', ')}); workflow process CPU ${s.cpuPerTaskUsOff} -> ${s.cpuPerTaskUsOn} us/task (start-up included), of which the writer ${s.writerCpuPerTaskUs}; records lost ${s.recordsLost.join(', ')}; max writer lag ${s.maxLagMs} ms`,
    )
  }
  const loads = runs.map((r) => r.load1)
  console.log(`load average (1 min) before the runs: ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)} on ${cpus().length} CPUs`)
  console.log(`results appended to ${appendResult('monitoring-overhead', { reps, summary, runs })}`)

  const csv = join(RESULTS_DIR, 'monitoring-overhead.csv')
  const columns = ['executor', 'monitoring', 'rep', 'tasks', 'tasksPerSec', 'cpuS', 'writerCpuS', 'load1', 'sent', 'written', 'lagMs', 'maxLagMs'] as const
  writeFileSync(csv, [columns.join(','), ...runs.map((r) => columns.map((c) => (r[c] === undefined ? '' : c === 'monitoring' ? (r[c] ? 'on' : 'off') : String(r[c]))).join(','))].join('\n') + '\n')
  const svg = join(RESULTS_DIR, 'monitoring-overhead.svg')
  const values = runs.map((r) => ({ ...r, mode: r.monitoring ? 'monitoring on' : 'monitoring off' }))
  await writeVegaLiteSvg(svg, {
    title: `No-op tasks/s with monitoring off and on (tsflow-perf; bar: median, dots: each of ${reps} reps)`,
    hconcat: summary.map((s) => ({
      title: `${s.executor}: on/off ${s.ratio}`,
      width: 200,
      height: 260,
      data: { values: values.filter((v) => v.executor === s.executor) },
      layer: [
        { mark: { type: 'bar', opacity: 0.6 }, encoding: { x: { field: 'mode', type: 'nominal', title: null, axis: { labelAngle: 0 } }, y: { aggregate: 'median', field: 'tasksPerSec', type: 'quantitative', title: 'tasks/s' }, color: { field: 'mode', legend: null } } },
        { mark: { type: 'point', filled: true, color: 'black' }, encoding: { x: { field: 'mode', type: 'nominal' }, y: { field: 'tasksPerSec', type: 'quantitative' } } },
      ],
    })),
  })
  console.log(`wrote ${csv} and ${svg}`)
})
