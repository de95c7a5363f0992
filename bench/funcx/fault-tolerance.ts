/**
 * fault-tolerance: heartbeat period 1 s and threshold 2 s, 2 managers x 4
 * workers (2 blocks of one node, which the strategy keeps: initBlocks = minBlocks = maxBlocks),
 * retries 2. Every --interval s it submits --batch tasks that sleep --sleep s, for --duration s.
 * Once --kill-after tasks were submitted it SIGKILLs one manager (its pid from
 * executor.managers()) and lets the strategy replace it. It records each task's submit and end
 * time and try, and:
 *  - detection: from the kill to the manager leaving executor.managers() (the interchange
 *    declared it lost: its block's end seen by the strategy's poll, or the heartbeat threshold);
 *  - replacement: from the kill to a new manager registering;
 *  - recovery: from the replacement registering to the first batch (after the kill) from which a
 *    whole second of batches had normal latency (normal: up to max(1.5 x p95, p95 + 50 ms) of the
 *    tasks submitted before the kill); 0 when latency was normal as soon as it registered;
 *  - no task lost: every future settled, all succeeded (after retries).
 * Targets (issue 10): detection <= threshold + 0.5 s, recovery <= 1 s, no task lost.
 *
 *   node out/bench/funcx.js fault-tolerance                      # the paper's setup, 10 s
 *   node out/bench/funcx.js fault-tolerance --duration 30 --kill-after 300 --repeat 3
 */
import { hostname } from 'node:os'
import type { Config } from 'tsflow'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { BenchUsage, loadKernel, parseNumber, round, type Experiment, type FlagSpec, type Row } from './common.js'
import { firstExecutor, htexDefaults, managersOf, median, quantile, waitForManagers } from './kernel.js'
import { sleepTry } from './tasks.js'

const flags = {
  duration: { default: '10', help: 'seconds of submission' },
  interval: { default: '0.15', help: 'seconds between batches' },
  batch: { default: '8', help: 'tasks per batch (one app.map)' },
  sleep: { default: '0.1', help: 'seconds each task sleeps' },
  'kill-after': { default: '100', help: 'SIGKILL one manager once this many tasks were submitted' },
  managers: { default: '2', help: 'managers (blocks of one node)' },
  'workers-per-manager': { default: '4', help: 'workers of each manager' },
  'heartbeat-period': { default: '1', help: 'heartbeat period, s' },
  'heartbeat-threshold': { default: '2', help: 'silence after which a manager is lost, s' },
  'strategy-period': { default: '1', help: 'seconds between scaling strategy ticks (it also acts at once when the provider sees a block end)' },
  retries: { default: '2', help: 'retries of a task (those on the killed manager fail once)' },
  'worker-mode': { default: 'processes', choices: ['threads', 'processes'], help: 'workers as processes (the HTEX default) or threads' },
  'drain-timeout': { default: '60', help: 'seconds to wait after the last submit for every task to settle before counting the rest as lost' },
} satisfies Record<string, FlagSpec>

/** Seconds of batches that must all have normal latency to call the latency recovered. */
const RECOVERY_WINDOW_S = 1

interface TaskTrace {
  task: number
  submit: number
  end: number | null
  latency: number | null
  ok: boolean | null
  tryNumber: number | null
  error?: string
}

interface ManagerSeen {
  managerId: string
  pid: number
  blockId: string
  host: string
  firstSeen: number
  goneAt?: number
}

export interface FaultRun {
  repetition: number
  submitted: number
  succeeded: number
  failed: number
  lost: number
  retried: number
  killAt: number | null
  killedManager: string | null
  detectedAt: number | null
  replacedAt: number | null
  detectionSeconds: number | null
  replacementSeconds: number | null
  recoverySeconds: number | null
  normalLatencySeconds: number
  baselineMedianLatency: number
  peakLatency: number
  targets: { detection: boolean; recovery: boolean; noTaskLost: boolean }
}

export const faultTolerance: Experiment<typeof flags> = {
  name: 'fault-tolerance',
  summary: `Heartbeat period 1 s, threshold 2 s, 2 managers x 4 workers (2 LocalProvider blocks the strategy
keeps), retries 2; a batch of 8 sleep(0.1 s) tasks every 0.15 s for 10 s; after 100 tasks one manager is
SIGKILLed and the strategy replaces it. Per-task latency over time (plot), the detection time (kill ->
the manager declared lost), the replacement time, the recovery time (replacement registered -> latency
normal again) and a count of tasks lost. --repeat runs. Paper: latency 0.1-0.2 s, a spike to ~2.1 s at
the loss, recovered within ~1 s, no task lost. Targets: detection <= threshold + 0.5 s, recovery <= 1 s, none lost.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    const num = (name: keyof typeof flags, opts?: { min?: number; integer?: boolean }) => parseNumber(f[name], `--${name}`, opts)
    const settings: Settings = {
      durationMs: num('duration') * 1000,
      intervalMs: num('interval', { min: 0.001 }) * 1000,
      batch: num('batch', { min: 1, integer: true }),
      sleepMs: num('sleep') * 1000,
      killAfter: num('kill-after', { integer: true }),
      managers: num('managers', { min: 2, integer: true }),
      perManager: num('workers-per-manager', { min: 1, integer: true }),
      heartbeatThresholdMs: num('heartbeat-threshold', { min: 0.02 }) * 1000,
      drainMs: num('drain-timeout', { min: 1 }) * 1000,
    }
    const retries = num('retries', { integer: true })
    for (let r = 0; r < ctx.repeat; r++) {
      const config = await ctx.config.make(
        htexDefaults({
          workers: settings.managers * settings.perManager,
          managers: settings.managers,
          workerMode: f['worker-mode'] as 'threads' | 'processes',
          heartbeatPeriodMs: num('heartbeat-period', { min: 0.01 }) * 1000,
          heartbeatThresholdMs: settings.heartbeatThresholdMs,
          strategyPeriodMs: num('strategy-period', { min: 0.01 }) * 1000,
        }),
      )
      // The frame's default has no retries; a --config keeps its own unless it has none.
      config.retries ??= retries
      const { tasks, run } = await runOnce(config, settings, r, ctx.log)
      ctx.record({ ...run, settings, tasks }, config)
      for (const line of report(run, settings.heartbeatThresholdMs)) ctx.log(line)
    }
  },
  async plot(rows, svg) {
    const last = rows[rows.length - 1]! as unknown as FaultRun & { tasks: TaskTrace[] }
    const recoverySeconds = last.killAt !== null && last.replacedAt !== null ? recoveryOf(last.tasks, last.killAt, last.replacedAt, last.normalLatencySeconds) : null
    await writeVegaLiteSvg(svg, plotSpec(last.tasks, { ...last, recoverySeconds }))
  },
  summarize(rows) {
    // Recovery recomputed from each run's tasks, so `plot <dir>` applies this definition to old runs too.
    const runs = (rows as unknown as (FaultRun & { tasks?: TaskTrace[] })[]).map((run) =>
      run.tasks && run.killAt !== null && run.replacedAt !== null ? { ...run, recoverySeconds: recoveryOf(run.tasks, run.killAt, run.replacedAt, run.normalLatencySeconds) } : run,
    )
    for (const run of runs) run.targets = { ...run.targets, recovery: run.recoverySeconds !== null && run.recoverySeconds <= 1 }
    const pick = (f: (run: FaultRun) => number | null) => {
      const values = runs.map(f).filter((v): v is number => v !== null)
      return values.length ? round(median(values), 3) : null
    }
    const sum = (f: (run: FaultRun) => number) => runs.reduce((a, x) => a + f(x), 0)
    const figures: Row = {
      repetitions: runs.length,
      detection_s: pick((x) => x.detectionSeconds),
      replacement_s: pick((x) => x.replacementSeconds),
      recovery_s: pick((x) => x.recoverySeconds),
      baseline_median_latency_s: pick((x) => x.baselineMedianLatency),
      peak_latency_s: pick((x) => x.peakLatency),
      submitted: sum((x) => x.submitted),
      succeeded: sum((x) => x.succeeded),
      failed: sum((x) => x.failed),
      lost: sum((x) => x.lost),
      retried: sum((x) => x.retried),
      targets_met: runs.every((x) => x.targets.detection && x.targets.recovery && x.targets.noTaskLost),
    }
    const lines = [
      `fault-tolerance (median of ${runs.length} run(s)): detection ${figures.detection_s} s, replacement registered ${figures.replacement_s} s after the kill, recovery ${figures.recovery_s} s after that; ` +
        `latency ${figures.baseline_median_latency_s} s before, peak ${figures.peak_latency_s} s; ${figures.succeeded}/${figures.submitted} succeeded, ${figures.failed} failed, ${figures.lost} lost, ${figures.retried} retried; ` +
        `targets (detection <= threshold + 0.5 s, recovery <= 1 s, none lost) ${figures.targets_met ? 'met' : 'NOT all met'}; paper: a spike to ~2.1 s, recovered within ~1 s, no task lost`,
    ]
    return { lines, figures }
  },
}

function report(run: FaultRun, thresholdMs: number): string[] {
  const s = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(3)} s`)
  const ok = (b: boolean) => (b ? 'met' : 'MISSED')
  return [
    `run ${run.repetition}: ${run.submitted} tasks submitted, ${run.succeeded} succeeded, ${run.failed} failed, ${run.lost} lost, ${run.retried} retried; ` +
      `killed manager ${run.killedManager ?? '-'} at ${s(run.killAt)}`,
    `  detection ${s(run.detectionSeconds)} (target <= ${(thresholdMs + 500) / 1000} s: ${ok(run.targets.detection)}), replacement registered ${s(run.replacementSeconds)} after the kill, ` +
      `recovery ${s(run.recoverySeconds)} after it (target <= 1 s: ${ok(run.targets.recovery)}); latency median ${s(run.baselineMedianLatency)} before the kill, ` +
      `normal up to ${s(run.normalLatencySeconds)}, peak ${s(run.peakLatency)}; no task lost: ${ok(run.targets.noTaskLost)}`,
  ]
}

interface Settings {
  durationMs: number
  intervalMs: number
  batch: number
  sleepMs: number
  killAfter: number
  managers: number
  perManager: number
  heartbeatThresholdMs: number
  drainMs: number
}

async function runOnce(config: Config, settings: Settings, repetition: number, log: (line: string) => void): Promise<{ tasks: TaskTrace[]; run: FaultRun }> {
  const kernel = await loadKernel(config)
  const executor = firstExecutor(config)
  if (managersOf(executor) === undefined) {
    await kernel.cleanup()
    throw new BenchUsage(`fault-tolerance kills a manager: it needs an executor with managers (HTEX) as the config's first; ${executor?.label ?? 'the config'} has none`)
  }
  const seen = new Map<string, ManagerSeen>()
  let t0 = performance.now()
  const now = () => (performance.now() - t0) / 1000
  const watch = () => {
    const current = managersOf(executor) ?? []
    const ids = new Set(current.map((m) => m.managerId))
    for (const m of current) if (!seen.has(m.managerId)) seen.set(m.managerId, { managerId: m.managerId, pid: m.pid, blockId: m.blockId, host: m.host ?? '', firstSeen: now() })
    for (const m of seen.values()) if (m.goneAt === undefined && !ids.has(m.managerId)) m.goneAt = now()
  }
  // Polled every 5 ms: the manager events reach executor.managers() as the interchange sends them.
  const watcher = setInterval(watch, 5)
  try {
    await waitForManagers(executor, settings.managers, settings.managers * settings.perManager)
    const opts = { dfk: kernel }
    // Warm-up: every worker used, so the first batches do not pay for starting workers.
    await Promise.all(sleepTry.map(Array.from({ length: settings.managers * settings.perManager * 2 }, () => [10] as [number]), opts))
    t0 = performance.now()
    for (const m of seen.values()) m.firstSeen = 0
    const tasks: TaskTrace[] = []
    const settled: Promise<void>[] = []
    let killAt: number | null = null
    let killed: ManagerSeen | undefined
    for (let k = 0; k * settings.intervalMs < settings.durationMs; k++) {
      const due = k * settings.intervalMs - (performance.now() - t0)
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
      const submittedAt = now()
      const futures = sleepTry.map(Array.from({ length: settings.batch }, () => [settings.sleepMs] as [number]), opts)
      for (const future of futures) {
        const trace: TaskTrace = { task: tasks.length, submit: submittedAt, end: null, latency: null, ok: null, tryNumber: null }
        tasks.push(trace)
        settled.push(
          future.then(
            (tryNumber) => {
              trace.end = now()
              trace.ok = true
              trace.tryNumber = tryNumber
            },
            (error: unknown) => {
              trace.end = now()
              trace.ok = false
              trace.error = (error as Error)?.message ?? String(error)
            },
          ),
        )
      }
      if (killAt === null && tasks.length >= settings.killAfter) {
        watch()
        const victims = [...seen.values()].filter((m) => m.goneAt === undefined).sort((a, b) => (a.blockId < b.blockId ? -1 : 1))
        killed = victims[0]
        if (!killed) throw new Error('no manager connected to kill')
        if (killed.host && killed.host !== hostname()) throw new BenchUsage(`manager ${killed.managerId} runs on ${killed.host}: this experiment kills managers by pid and needs them on this host`)
        process.kill(killed.pid, 'SIGKILL')
        killAt = now()
        log(`killed manager ${killed.managerId} (pid ${killed.pid}, block ${killed.blockId}) at ${killAt.toFixed(3)} s, after ${tasks.length} tasks`)
      }
    }
    const drained = await Promise.race([Promise.all(settled).then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), settings.drainMs).unref())])
    if (!drained) log(`${tasks.filter((x) => x.ok === null).length} task(s) unsettled ${settings.drainMs / 1000} s after the last submit: counted as lost`)
    watch()
    for (const x of tasks) if (x.end !== null) x.latency = round(x.end - x.submit, 4)
    return { tasks: tasks.map((x) => ({ ...x, submit: round(x.submit, 4), end: x.end === null ? null : round(x.end, 4) })), run: analyse(tasks, seen, killed, killAt, settings, repetition) }
  } finally {
    clearInterval(watcher)
    await kernel.cleanup()
  }
}

export function analyse(tasks: TaskTrace[], seen: Map<string, ManagerSeen>, killed: ManagerSeen | undefined, killAt: number | null, settings: Settings, repetition: number): FaultRun {
  const latency = (x: TaskTrace) => (x.end === null ? null : x.end - x.submit)
  const before = tasks.filter((x) => killAt !== null && x.submit < killAt && latency(x) !== null && (x.end ?? Infinity) < killAt)
  const baseline = before.map((x) => latency(x)!)
  const p95 = baseline.length ? quantile(baseline, 0.95) : settings.sleepMs / 1000
  const normal = Math.max(1.5 * p95, p95 + 0.05)
  const detectedAt = killed?.goneAt ?? null
  const replacement = killAt === null ? undefined : [...seen.values()].filter((m) => m.firstSeen > killAt).sort((a, b) => a.firstSeen - b.firstSeen)[0]
  const replacedAt = replacement?.firstSeen ?? null
  const recovery = replacedAt === null || killAt === null ? null : recoveryOf(tasks, killAt, replacedAt, normal)
  const succeeded = tasks.filter((x) => x.ok === true).length
  const failed = tasks.filter((x) => x.ok === false).length
  const lost = tasks.filter((x) => x.ok === null).length
  const detection = detectedAt !== null && killAt !== null ? detectedAt - killAt : null
  const ended = tasks.map(latency).filter((v): v is number => v !== null)
  return {
    repetition,
    submitted: tasks.length,
    succeeded,
    failed,
    lost,
    retried: tasks.filter((x) => (x.tryNumber ?? 0) > 0).length,
    killAt: killAt === null ? null : round(killAt, 3),
    killedManager: killed?.managerId ?? null,
    detectedAt: detectedAt === null ? null : round(detectedAt, 3),
    replacedAt: replacedAt === null ? null : round(replacedAt, 3),
    detectionSeconds: detection === null ? null : round(detection, 3),
    replacementSeconds: replacedAt === null || killAt === null ? null : round(replacedAt - killAt, 3),
    recoverySeconds: recovery === null ? null : round(recovery, 3),
    normalLatencySeconds: round(normal, 3),
    baselineMedianLatency: round(baseline.length ? median(baseline) : NaN, 3),
    peakLatency: round(ended.length ? Math.max(...ended) : NaN, 3),
    targets: {
      detection: detection !== null && detection * 1000 <= settings.heartbeatThresholdMs + 500,
      recovery: recovery !== null && recovery <= 1,
      noTaskLost: lost === 0 && failed === 0 && succeeded === tasks.length,
    },
  }
}

/**
 * Seconds from the replacement registering to the first batch (after the kill) from which a whole
 * window of batches (RECOVERY_WINDOW_S) had latency up to `normal`; 0 if that was before it
 * registered; null if latency never settled. A window, not "after the last slow task", so a load
 * spike seconds later (the machine is shared) is not counted as the failure's.
 */
export function recoveryOf(tasks: readonly TaskTrace[], killAt: number, replacedAt: number, normal: number): number | null {
  const latency = (x: TaskTrace) => (x.end === null ? null : x.end - x.submit)
  const normalTask = (x: TaskTrace) => latency(x) !== null && latency(x)! <= normal + 1e-9
  const starts = [...new Set(tasks.filter((x) => x.submit >= killAt).map((x) => x.submit))]
  const lastSubmit = tasks.length ? tasks[tasks.length - 1]!.submit : 0
  const recoveredAt = starts.find((start) => tasks.every((x) => x.submit < start || x.submit > Math.min(start + RECOVERY_WINDOW_S, lastSubmit) || normalTask(x)))
  return recoveredAt === undefined ? null : round(Math.max(0, recoveredAt - replacedAt), 3)
}

function plotSpec(tasks: TaskTrace[], run: FaultRun): Record<string, unknown> {
  const points = tasks.filter((x) => x.latency !== null).map((x) => ({ submit: x.submit, latency: x.latency, task: (x.tryNumber ?? 0) > 0 ? 'retried after the kill' : x.ok ? 'first try' : 'failed' }))
  const events = [
    { at: run.killAt, event: 'manager killed' },
    { at: run.detectedAt, event: 'declared lost' },
    { at: run.replacedAt, event: 'replacement registered' },
    { at: run.replacedAt !== null && run.recoverySeconds !== null ? round(run.replacedAt + run.recoverySeconds, 3) : null, event: 'latency normal again (for 1 s)' },
  ].filter((e) => e.at !== null)
  return {
    title: {
      text: 'Fault tolerance: latency while a manager is killed and replaced',
      subtitle: `2 managers, one SIGKILLed (gray: the normal bound); detection ${run.detectionSeconds ?? '-'} s, replacement ${run.replacementSeconds ?? '-'} s, recovery ${run.recoverySeconds ?? '-'} s; ${run.succeeded}/${run.submitted} succeeded, ${run.lost} lost`,
    },
    width: 640,
    height: 300,
    layer: [
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 18 },
        encoding: { x: { field: 'submit', type: 'quantitative', title: 'submitted at (s)' }, y: { field: 'latency', type: 'quantitative', title: 'latency (s)' }, color: { field: 'task', type: 'nominal', title: 'task' } },
      },
      { data: { values: [{ y: run.normalLatencySeconds }] }, mark: { type: 'rule', color: 'gray', strokeDash: [2, 2] }, encoding: { y: { field: 'y', type: 'quantitative' } } },
      { data: { values: events }, mark: { type: 'rule', strokeDash: [4, 3] }, encoding: { x: { field: 'at', type: 'quantitative' }, color: { field: 'event', type: 'nominal', title: 'event', scale: { scheme: 'set1' } } } },
    ],
    resolve: { scale: { color: 'independent' } },
    config: { legend: { labelLimit: 300 } },
  }
}
