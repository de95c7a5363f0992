/**
 * The result record of one tsflow-perf run, and the JSON-lines file it is appended to. One line
 * per run holds everything needed to compare runs across machines: host, tsflow version, each
 * executor's description, the command-line parameters and every iteration.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { arch, availableParallelism, cpus, hostname, release, totalmem } from 'node:os'
import { join } from 'node:path'
import type { IterateMode, PerfOptions } from './args.js'

export const RESULTS_FILE = 'tsflow-perf.jsonl'
/** Bumped when a field of the record changes meaning or is removed. */
export const RECORD_VERSION = 1

export interface HostInfo {
  hostname: string
  cpuModel: string
  /** logical CPUs */
  cores: number
  /** CPUs this process may use (cgroup/affinity limits) */
  availableParallelism: number
  memoryBytes: number
  memoryGiB: number
  node: string
  platform: string
  arch: string
  osRelease: string
}

export function hostInfo(): HostInfo {
  const cpuList = cpus()
  const memoryBytes = totalmem()
  return {
    hostname: hostname(),
    cpuModel: cpuList[0]?.model.trim() || 'unknown',
    cores: cpuList.length,
    availableParallelism: availableParallelism(),
    memoryBytes,
    memoryGiB: Math.round((memoryBytes / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: process.platform,
    arch: arch(),
    osRelease: release(),
  }
}

export interface IterationResult {
  /** 1-based */
  iteration: number
  /** tasks submitted in this iteration (the planned batch, unless interrupted) */
  tasks: number
  /** tasks that finished (successfully or not) */
  completed: number
  failed: number
  /** first submit to last submit returning */
  submitSeconds: number
  /** first submit to last result */
  completeSeconds: number
  submittedPerSec: number
  completedPerSec: number
  /** true when Ctrl-C cut this iteration short */
  partial?: boolean
  /** managers / workers connected at the end of the iteration, for executors that report them */
  managers?: number
  workers?: number
}

export type RunStatus = 'finished' | 'interrupted' | 'failed'

export interface PerfRecord {
  record: 'tsflow-perf'
  recordVersion: number
  /** ISO time the run started */
  timestamp: string
  endTimestamp: string
  status: RunStatus
  error?: string
  tsflowVersion: string
  host: HostInfo
  /**
   * What ran, in the terms `tsflow-perf compare` groups by (added within record version 1;
   * older lines lack it and compare derives it from `config.executors` the same way).
   */
  setup?: RunSetup
  config: {
    /** absolute path of --config, or null for the built-in default */
    file: string | null
    summary: string
    executors: Record<string, unknown>[]
    retries?: number
    runDir?: string
  }
  parameters: {
    timeSeconds: number
    argsize: number
    iterate: 'estimate' | 'exponential' | number[]
    resources: Record<string, number> | null
    resultsDir: string
    mlflowExperiment: string | null
    /** --monitoring: the sampling period and database; null when off */
    monitoring?: { resourceIntervalMs: number | null; db: string | null } | null
  }
  /** with --monitoring: the recorder's counts after cleanup (records sent and written, the writer's lag) */
  monitoring?: { sent: number; written: number; batches: number; lagMs: number; maxLagMs: number; errors: string[] }
  iterations: IterationResult[]
  /** completed/s of the last complete iteration (parsl-perf's final "Tasks per second") */
  tasksPerSecond: number | null
  /** why the iterations stopped: 'target reached', 'list done', 'iteration limit', 'interrupted', 'failed' */
  stopReason: string
}

export function iterateParameter(iterate: IterateMode): PerfRecord['parameters']['iterate'] {
  return iterate.mode === 'list' ? [...iterate.sizes] : iterate.mode
}

export function parametersOf(options: PerfOptions): PerfRecord['parameters'] {
  return {
    timeSeconds: options.timeSeconds,
    argsize: options.argsize,
    iterate: iterateParameter(options.iterate),
    resources: options.resources ? { ...(options.resources as Record<string, number>) } : null,
    resultsDir: options.resultsDir,
    mlflowExperiment: options.mlflowUri ? options.mlflowExperiment : null,
    monitoring: options.monitoring ? { resourceIntervalMs: options.resourceIntervalMs ?? null, db: options.monitoringDb ?? null } : null,
  }
}

/** The rate a run reports: the last iteration that ran to the end. */
export function finalRate(iterations: readonly IterationResult[]): number | null {
  for (let i = iterations.length - 1; i >= 0; i--) {
    const it = iterations[i]!
    if (!it.partial && it.failed === 0) return it.completedPerSec
  }
  return null
}

/** Creates the results directory now, so a bad --results-dir fails before a long run. */
export function prepareResultsDir(dir: string): string {
  mkdirSync(dir, { recursive: true })
  return join(dir, RESULTS_FILE)
}

/** Appends the record as one line; returns the file's path. */
export function appendRecord(dir: string, record: PerfRecord): string {
  const file = prepareResultsDir(dir)
  appendFileSync(file, `${JSON.stringify(record)}\n`)
  return file
}

/** The configuration of a run in a few comparable fields. */
export interface RunSetup {
  /** executor type(s): 'htex', 'threads'; several joined with '+' */
  executor: string
  /** provider type(s) ('local', 'slurm', ...), or null for executors without one (threads) */
  provider: string | null
  /** the provider's launcher type, when it has one */
  launcher: string | null
  nodesPerBlock: number
  /** blocks the provider starts with */
  blocks: number
  /**
   * workers that ran tasks: those connected at the last complete iteration when the executor
   * reports them, else what the config asks for (threads; workersPerNode x nodes x blocks)
   */
  workers: number | null
}

/** Derives the setup from each executor's describe() (as recorded) and the iterations. */
export function setupOf(executors: readonly Record<string, unknown>[], iterations: readonly IterationResult[]): RunSetup {
  const types: string[] = []
  const providers: string[] = []
  const launchers: string[] = []
  let nodes = 0
  let blocks = 0
  let configured: number | null = 0
  for (const executor of executors) {
    types.push(String(executor.type ?? executor.class ?? 'unknown'))
    const provider = isRecord(executor.provider) ? executor.provider : undefined
    if (provider) {
      providers.push(String(provider.type ?? 'unknown'))
      if (isRecord(provider.launcher) && provider.launcher.type !== undefined) launchers.push(String(provider.launcher.type))
    }
    const perBlock = provider ? (count(provider.nodesPerBlock) ?? 1) : 1
    const started = provider ? (count(provider.initBlocks) ?? 1) : 1
    nodes = Math.max(nodes, perBlock)
    blocks += started
    const threads = count(executor.maxThreads)
    const perNode = count(executor.workersPerNode)
    const workers = threads ?? (perNode === undefined ? undefined : perNode * perBlock * started)
    configured = configured === null || workers === undefined ? null : configured + workers
  }
  const last = [...iterations].reverse().find((it) => !it.partial && typeof it.workers === 'number')
  return {
    executor: types.join('+') || 'unknown',
    provider: providers.length ? providers.join('+') : null,
    launcher: launchers.length ? launchers.join('+') : null,
    nodesPerBlock: Math.max(nodes, 1),
    blocks: Math.max(blocks, 1),
    workers: last?.workers ?? configured,
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined
}
