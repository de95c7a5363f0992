/**
 * What the scaling, fault-tolerance, prefetching and memoization experiments share: the config
 * they run on (the embedded local default, HTEX on the LocalProvider, or --config), a kernel, and
 * waiting until the managers are connected.
 *
 * --config FILE: the module's default export (or `config`) is a tsflow config, or a function
 * returning one. A function is called with the experiment's settings for this measurement (a
 * `Sweep`: workers, managers, prefetch capacity, heartbeats), so a Slurm or endpoint config can
 * follow the sweep; a plain object is used as it is for every point of the sweep.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, type Config, type Executor, type HighThroughputExecutorOptions } from 'tsflow'
import { BenchUsage } from '../lib/args.js'
import { onCleanup } from '../lib/cleanup.js'

/** The settings of one measurement, handed to a --config function. */
export interface Sweep {
  experiment: string
  /** workers in all, over `managers` managers (blocks of one node) */
  workers?: number
  managers?: number
  workerMode?: 'threads' | 'processes'
  prefetchCapacity?: number | 'auto'
  heartbeatPeriodMs?: number
  heartbeatThresholdMs?: number
  strategyPeriodMs?: number
  retries?: number
}

/** A manager as HTEX reports it (ManagerInfo); executors without managers (threads) have none. */
interface ManagerView {
  managerId: string
  blockId: string
  workers: number
  pid: number
}

export interface Prepared {
  config: Config
  /** the executor the experiment's apps run on (the config's first) */
  executor: Executor
  /** describe() of every executor, for the result lines */
  described: Record<string, unknown>[]
  /** where the config came from: 'default' or the file */
  source: string
}

/** The embedded default for a sweep point: HTEX, LocalProvider, `managers` blocks of one node. */
export function defaultConfig(sweep: Sweep): Config {
  const managers = sweep.managers ?? 1
  const options: HighThroughputExecutorOptions = {
    label: 'htex',
    // Blocks are managers here: the strategy keeps exactly `managers` of them (and replaces a lost one).
    provider: new LocalProvider({ initBlocks: managers, minBlocks: managers, maxBlocks: managers }),
    // Past the cores, workers get a share of a core each (coresPerWorker would otherwise cap them at the CPU count).
    ...(sweep.workers !== undefined ? { maxWorkersPerNode: Math.ceil(sweep.workers / managers), coresPerWorker: Math.min(1, cpus().length / Math.ceil(sweep.workers / managers)) } : {}),
    ...(sweep.workerMode ? { workerMode: sweep.workerMode } : {}),
    ...(sweep.prefetchCapacity !== undefined ? { prefetchCapacity: sweep.prefetchCapacity } : {}),
    ...(sweep.heartbeatPeriodMs !== undefined ? { heartbeatPeriodMs: sweep.heartbeatPeriodMs } : {}),
    ...(sweep.heartbeatThresholdMs !== undefined ? { heartbeatThresholdMs: sweep.heartbeatThresholdMs } : {}),
    ...(sweep.strategyPeriodMs !== undefined ? { strategyPeriodMs: sweep.strategyPeriodMs } : {}),
  }
  return { executors: [new HighThroughputExecutor(options)], ...(sweep.retries !== undefined ? { retries: sweep.retries } : {}) }
}

/** Builds the config of one sweep point from --config (or the default), in a private run directory. */
export async function prepare(configFile: string, sweep: Sweep): Promise<Prepared> {
  const config = configFile ? await loadSweepConfig(configFile, sweep) : defaultConfig(sweep)
  if (!config.runDir) {
    const runDir = mkdtempSync(join(tmpdir(), `tsflow-funcx-${sweep.experiment}-`))
    onCleanup(() => rmSync(runDir, { recursive: true, force: true }))
    config.runDir = runDir
  }
  if (sweep.retries !== undefined && config.retries === undefined) config.retries = sweep.retries
  const first = config.executors?.[0]
  if (!first || typeof (first as Executor).describe !== 'function') {
    throw new BenchUsage(`--config ${configFile}: the config needs executors given as instances (new HighThroughputExecutor(...)), the first one runs the experiment`)
  }
  const executors = config.executors as Executor[]
  return { config, executor: executors[0]!, described: executors.map((e) => e.describe()), source: configFile ? resolve(configFile) : 'default' }
}

async function loadSweepConfig(file: string, sweep: Sweep): Promise<Config> {
  const path = resolve(file)
  if (/\.(?:ts|mts|cts)$/.test(path)) {
    const { register } = await import('tsx/esm/api')
    register()
  }
  let module: Record<string, unknown>
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>
  } catch (error) {
    throw new BenchUsage(`--config ${file}: cannot load it: ${(error as Error).message}`)
  }
  let value = module.default ?? module.config
  if (typeof value === 'function') value = await (value as (sweep: Sweep) => unknown)({ ...sweep })
  if (typeof value !== 'object' || value === null || !Array.isArray((value as Config).executors)) {
    throw new BenchUsage(`--config ${file}: the default export (or 'config') must be a tsflow config { executors: [...] } or a function of the sweep returning one`)
  }
  return value as Config
}

export async function startKernel(prepared: Prepared): Promise<DataFlowKernel> {
  const kernel = await new DataFlowKernel(prepared.config).start()
  onCleanup(() => kernel.cleanup())
  return kernel
}

/** The executor's connected managers, if it has any (HTEX); undefined for executors without. */
export function managersOf(executor: Executor): ManagerView[] | undefined {
  const managers = (executor as { managers?: () => ManagerView[] }).managers
  return typeof managers === 'function' ? managers.call(executor) : undefined
}

/**
 * Waits until `managers` managers are connected (HTEX), and returns the workers they bring.
 * Executors without managers: returns `fallbackWorkers` at once.
 */
export async function waitForManagers(executor: Executor, managers: number, fallbackWorkers: number, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const connected = managersOf(executor)
    if (connected === undefined) return fallbackWorkers
    if (connected.length >= managers) return connected.reduce((sum, m) => sum + m.workers, 0)
    if (Date.now() > deadline) throw new Error(`only ${connected.length} of ${managers} manager(s) connected within ${timeoutMs / 1000} s; see the block logs in the run directory`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5)
}

/** Linear-interpolated quantile of unsorted values (NaN if empty). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const at = (sorted.length - 1) * q
  const low = Math.floor(at)
  return sorted[low]! + (sorted[Math.min(low + 1, sorted.length - 1)]! - sorted[low]!) * (at - low)
}

export const round = (value: number, digits = 3): number => Number(value.toFixed(digits))

/** Submits `count` calls without holding the event loop (a chunk per turn, as tsflow-perf does). */
export async function submitAll<T>(count: number, submit: (i: number) => PromiseLike<T>, chunk = 1024): Promise<PromiseLike<T>[]> {
  const futures: PromiseLike<T>[] = new Array(count)
  for (let i = 0; i < count; i++) {
    futures[i] = submit(i)
    if (i % chunk === chunk - 1) await new Promise((resolve) => setImmediate(resolve))
  }
  return futures
}
