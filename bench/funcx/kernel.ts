/**
 * What the scaling, fault-tolerance, prefetching and memoization experiments share beyond the
 * frame (common.ts): the HTEX options of a sweep point on the local default, waiting until the
 * managers are connected, and small statistics.
 *
 * On the local default each point of a sweep (worker count, prefetch capacity, heartbeats) gets a
 * fresh executor with those options. A --config file is taken as written (the frame's rule), so
 * its executor runs every point the same way; the rows record its describe() and the workers its
 * managers actually brought.
 */
import { cpus } from 'node:os'
import { LocalProvider, type Config, type Executor, type HighThroughputExecutorOptions } from 'tsflow'

/** The settings of one measurement on the local default. */
export interface Sweep {
  /** workers in all, over `managers` managers (blocks of one node) */
  workers?: number
  managers?: number
  workerMode?: 'threads' | 'processes'
  prefetchCapacity?: number | 'auto'
  heartbeatPeriodMs?: number
  heartbeatThresholdMs?: number
  strategyPeriodMs?: number
}

/** HTEX options for a sweep point: `managers` blocks of one node on the LocalProvider, kept (and replaced) by the strategy. */
export function htexDefaults(sweep: Sweep): Partial<HighThroughputExecutorOptions> {
  const managers = sweep.managers ?? 1
  const perManager = sweep.workers === undefined ? undefined : Math.ceil(sweep.workers / managers)
  return {
    provider: new LocalProvider({ initBlocks: managers, minBlocks: managers, maxBlocks: managers }),
    // Past the cores, workers get a share of a core each (coresPerWorker would otherwise cap them at the CPU count).
    ...(perManager !== undefined ? { maxWorkersPerNode: perManager, coresPerWorker: Math.min(1, cpus().length / perManager) } : {}),
    ...(sweep.workerMode ? { workerMode: sweep.workerMode } : {}),
    ...(sweep.prefetchCapacity !== undefined ? { prefetchCapacity: sweep.prefetchCapacity } : {}),
    ...(sweep.heartbeatPeriodMs !== undefined ? { heartbeatPeriodMs: sweep.heartbeatPeriodMs } : {}),
    ...(sweep.heartbeatThresholdMs !== undefined ? { heartbeatThresholdMs: sweep.heartbeatThresholdMs } : {}),
    ...(sweep.strategyPeriodMs !== undefined ? { strategyPeriodMs: sweep.strategyPeriodMs } : {}),
  }
}

/** A manager as HTEX reports it (ManagerInfo). */
export interface ManagerView {
  managerId: string
  blockId: string
  host: string
  workers: number
  pid: number
}

/** The config's first executor (the one the experiments' apps run on), as the kernel started it. */
export function firstExecutor(config: Config): Executor | undefined {
  const first = config.executors?.[0]
  return first && typeof (first as Executor).describe === 'function' ? (first as Executor) : undefined
}

/** The executor's connected managers if it has managers (HTEX); undefined otherwise. */
export function managersOf(executor: Executor | undefined): ManagerView[] | undefined {
  const managers = (executor as { managers?: () => ManagerView[] } | undefined)?.managers
  return typeof managers === 'function' ? managers.call(executor) : undefined
}

/**
 * Waits until `managers` managers are connected (HTEX) and returns the workers they bring. For an
 * executor without managers (an endpoint, threads), returns `fallbackWorkers` at once.
 */
export async function waitForManagers(executor: Executor | undefined, managers: number, fallbackWorkers: number, timeoutMs = 120_000): Promise<number> {
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
