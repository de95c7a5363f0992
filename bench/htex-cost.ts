/**
 * bench/htex-cost: where the HighThroughputExecutor's throughput ceiling sits.
 *
 *   node out/bench/htex-cost.js [--time 5] [--runs 3] [--warmup 3] [--workers 2] [--label before]
 *   node out/bench/htex-cost.js --plot-only true      # redraw the SVG from the results file
 *
 * Keeps the default local HTEX (1 block) saturated with no-op tasks (a window of --chunk x
 * --window tasks in flight) and, over --runs windows of --time seconds each, measures the CPU
 * time every process of the executor spent per completed task, in microseconds:
 *  - workflow: this process (kernel + HTEX client), from process.cpuUsage();
 *  - interchange, manager, workers: utime + stime from /proc/<pid>/stat of the descendants of
 *    this process (found by their command lines: bin/interchange.js, bin/manager.js, and the
 *    node processes under a manager).
 *  - kernel alone: the same loop on an in-process executor that completes each task at once, so
 *    "workflow" minus "kernel alone" is what the HTEX client side costs the workflow process.
 * The process with the most microseconds per task is the ceiling: 1e6 / that figure is the most
 * tasks/s it can pass with a whole core to itself. Wall-clock tasks/s is printed too, but on a
 * shared machine only CPU time per task compares between runs. Each run appends one JSON line to
 * bench/results/htex-cost.jsonl (with the machine) and redraws bench/results/htex-cost.svg from
 * the median of every --label in that file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataFlowKernel, HighThroughputExecutor, app, load, main } from 'tsflow'
import { InlineExecutor } from './lib/inline-executor.js'
import { cpuMicros, descendants } from './lib/proc.js'
import { RESULTS_DIR, appendResult, machine, parseFlags, percentile } from './lib/results.js'
import { writeBarChart } from './lib/svg.js'

export const noop = app(function noop(x: number) {
  return x
})

type Role = 'workflow' | 'interchange' | 'manager' | 'workers'
const ROLES: Role[] = ['workflow', 'interchange', 'manager', 'workers']

/** The executor's processes by role, from this process's descendants. */
function executorProcesses(): Map<Role, number[]> {
  const procs = descendants(process.pid)
  const roles = new Map<Role, number[]>(ROLES.map((role) => [role, []]))
  const managers = procs.filter((p) => p.cmdline.includes('bin/manager.js'))
  roles.get('interchange')!.push(...procs.filter((p) => p.cmdline.includes('bin/interchange.js')).map((p) => p.pid))
  roles.get('manager')!.push(...managers.map((p) => p.pid))
  for (const manager of managers) {
    roles.get('workers')!.push(...descendants(manager.pid).filter((p) => p.cmdline.startsWith(process.execPath)).map((p) => p.pid))
  }
  return roles
}

function snapshot(roles: Map<Role, number[]>): Map<Role, number> {
  const usage = process.cpuUsage()
  const cpu = new Map<Role, number>([['workflow', usage.user + usage.system]])
  for (const role of ROLES) {
    if (role === 'workflow') continue
    let total = 0
    for (const pid of roles.get(role)!) {
      const micros = cpuMicros(pid)
      if (micros === undefined) throw new Error(`the ${role} process ${pid} ended during the measurement`)
      total += micros
    }
    cpu.set(role, total)
  }
  return cpu
}

interface Row {
  label: string
  workers: number
  workerMode: string
  /** tasks kept in flight */
  inFlight?: number
  tasks: number
  seconds: number
  tasksPerSecond: number
  /** microseconds of CPU per task, by process */
  microsPerTask: Record<Role, number>
  /** microseconds of CPU per task of the kernel alone (in-process executor), same loop */
  kernelMicrosPerTask: number
  runs: { tasks: number; seconds: number; microsPerTask: Record<Role, number> }[]
}

/** Redraws the SVG from the results file: per --label, the median of its runs. */
function plot(): string {
  const file = join(RESULTS_DIR, 'htex-cost.jsonl')
  const byLabel = new Map<string, (Row & { machine: ReturnType<typeof machine> })[]>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue
    const row = JSON.parse(line) as Row & { machine: ReturnType<typeof machine> }
    byLabel.set(row.label, [...(byLabel.get(row.label) ?? []), row])
  }
  const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50)
  const svg = join(RESULTS_DIR, 'htex-cost.svg')
  const any = [...byLabel.values()].at(-1)?.at(-1)
  writeBarChart(
    svg,
    'HTEX: CPU time per no-op task, by process',
    `microseconds per task, median of runs per label; ${any?.machine.cpuModel ?? ''}, ${any?.machine.cores ?? '?'} cores, Node ${any?.machine.node ?? ''}`,
    [...byLabel.entries()].map(([label, rows]) => {
      const last = rows.at(-1)!
      const client = rows.filter((row) => row.kernelMicrosPerTask !== undefined).map((row) => row.microsPerTask.workflow - row.kernelMicrosPerTask)
      return {
        label: `${label} (${rows.length} runs): ${Math.round(median(rows.map((row) => row.tasksPerSecond))).toLocaleString('en-US')} tasks/s wall clock, ${last.workers} worker ${last.workerMode}, ${(last.inFlight ?? 20000).toLocaleString('en-US')} in flight`,
        bars: [
          ...ROLES.map((role) => ({ name: role, value: median(rows.map((row) => row.microsPerTask[role])) })),
          ...(client.length > 0 ? [{ name: 'workflow minus kernel', value: Math.max(0, median(client)) }] : []),
        ],
      }
    }),
  )
  return svg
}

/** CPU µs per task of the workflow process with an executor that completes tasks at once. */
async function kernelAlone(runDir: string, chunk: number, window: number, ms: number): Promise<number> {
  const kernel = await new DataFlowKernel({ runDir, executors: [new InlineExecutor()] }).start()
  const submit = noop.with({ dfk: kernel })
  const inFlight: Promise<unknown>[] = []
  let completed = 0
  const runFor = async (ms: number) => {
    const until = performance.now() + ms
    while (performance.now() < until) {
      while (inFlight.length < window) {
        const futures = new Array(chunk)
        for (let i = 0; i < chunk; i++) futures[i] = submit(i)
        inFlight.push(Promise.all(futures))
      }
      await inFlight.shift()
      completed += chunk
    }
  }
  await runFor(1000)
  const before = process.cpuUsage()
  const startCount = completed
  await runFor(ms)
  const used = process.cpuUsage(before)
  await Promise.all(inFlight)
  await kernel.cleanup()
  return Number(((used.user + used.system) / (completed - startCount)).toFixed(2))
}

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { time: '5', runs: '3', warmup: '3', workers: '2', chunk: '5000', window: '4', label: 'current', mode: 'processes', 'plot-only': 'false' })
  if (flags['plot-only'] === 'true') {
    console.log(`plot ${plot()}`)
    return
  }
  const chunk = Number(flags.chunk)
  const window = Number(flags.window)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-cost-'))
  const mode = flags.mode as 'threads' | 'processes'
  const kernelMicros = await kernelAlone(scratch, chunk, window, Number(flags.time) * 1000)
  const kernel = await load({ runDir: scratch, executors: [new HighThroughputExecutor({ maxWorkersPerNode: Number(flags.workers), workerMode: mode })] })
  try {
    // Saturation: `window` chunks in flight; a new chunk goes out as the oldest completes.
    const inFlight: Promise<unknown>[] = []
    let completed = 0
    const submitChunk = () => {
      const futures = new Array(chunk)
      for (let i = 0; i < chunk; i++) futures[i] = noop(i)
      inFlight.push(Promise.all(futures))
    }
    const runFor = async (ms: number) => {
      const until = performance.now() + ms
      while (performance.now() < until) {
        while (inFlight.length < window) submitChunk()
        await inFlight.shift()
        completed += chunk
      }
    }
    await runFor(Number(flags.warmup) * 1000)
    const roles = executorProcesses()
    for (const role of ROLES.slice(1)) if (roles.get(role)!.length === 0) throw new Error(`no ${role} process found under pid ${process.pid}`)
    const runs: Row['runs'] = []
    for (let run = 0; run < Number(flags.runs); run++) {
      const before = snapshot(roles)
      const startedAt = performance.now()
      const startCount = completed
      await runFor(Number(flags.time) * 1000)
      const after = snapshot(roles)
      const tasks = completed - startCount
      const seconds = (performance.now() - startedAt) / 1000
      const micros = Object.fromEntries(ROLES.map((role) => [role, Number(((after.get(role)! - before.get(role)!) / tasks).toFixed(2))])) as Record<Role, number>
      runs.push({ tasks, seconds: Number(seconds.toFixed(3)), microsPerTask: micros })
    }
    await Promise.all(inFlight)
    const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50)
    const tasks = runs.reduce((sum, r) => sum + r.tasks, 0)
    const seconds = runs.reduce((sum, r) => sum + r.seconds, 0)
    const row: Row = {
      label: flags.label!,
      workers: Number(flags.workers),
      workerMode: mode,
      inFlight: chunk * window,
      tasks,
      seconds: Number(seconds.toFixed(3)),
      tasksPerSecond: Math.round(median(runs.map((r) => r.tasks / r.seconds))),
      microsPerTask: Object.fromEntries(ROLES.map((role) => [role, median(runs.map((r) => r.microsPerTask[role]))])) as Record<Role, number>,
      runs,
      kernelMicrosPerTask: 0,
    }
    row.kernelMicrosPerTask = kernelMicros
    const m = machine()
    console.log(`machine: ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, tsflow ${m.tsflow} (${m.commit})`)
    console.log(`HTEX, 1 block, ${row.workers} ${mode} workers, ${chunk * window} no-op tasks in flight; median of ${runs.length} runs of ${flags.time} s`)
    console.log('process       µs CPU per task   ceiling if alone on a core')
    for (const role of ROLES) {
      const micros = row.microsPerTask[role]
      const ceiling = role === 'workers' ? `${Math.round((1e6 / micros) * row.workers).toLocaleString('en-US')} tasks/s (${row.workers} workers)` : `${Math.round(1e6 / micros).toLocaleString('en-US')} tasks/s`
      console.log(`${role.padEnd(12)}  ${micros.toFixed(2).padStart(15)}   ${ceiling}`)
      if (role === 'workflow') {
        console.log(`  kernel alone ${kernelMicros.toFixed(2).padStart(15)}   (the same loop on an in-process executor)`)
        console.log(`  HTEX client  ${(micros - kernelMicros).toFixed(2).padStart(15)}   (workflow minus kernel alone)`)
      }
    }
    const total = ROLES.reduce((sum, role) => sum + row.microsPerTask[role], 0)
    console.log(`${'total'.padEnd(12)}  ${total.toFixed(2).padStart(15)}`)
    console.log(`wall clock: ${row.tasksPerSecond.toLocaleString('en-US')} tasks/s (median; ${runs.map((r) => Math.round(r.tasks / r.seconds)).join(', ')})`)
    console.log(`results appended to ${appendResult('htex-cost', row as unknown as Record<string, unknown>)}; plot ${plot()}`)
  } finally {
    await kernel.cleanup()
    rmSync(scratch, { recursive: true, force: true })
  }
})
