import { availableParallelism } from 'node:os'
import { ConfigError } from '../../errors.js'
import { arrayOf, anyOf, boolean, integer, literal, nonNegativeInt, object, oneOf, optional, positiveInt, positiveNumber, string, type Check } from '../../util/schema.js'
import { LOG_LEVELS, type LogLevel } from '../../util/logger.js'
import { providerOption } from '../../providers/index.js'
import type { ExecutionProvider } from '../../providers/base.js'
import { LocalProvider } from '../../providers/local/provider.js'
import { strategyOptionShape } from '../../scaling/index.js'
import { DEFAULT_MAX_IDLE_TIME_MS, DEFAULT_STRATEGY, DEFAULT_STRATEGY_PERIOD_MS } from '../../scaling/strategy.js'
import type { StrategyName } from '../../scaling/decide.js'
import { isLoopback } from '../../transport/sockets.js'

export interface HighThroughputExecutorOptions {
  /** Name used to pick this executor in an app's `executors` option. Default 'htex'. */
  label?: string
  /** Where blocks (manager jobs) run. Default: a LocalProvider with one block. */
  provider?: ExecutionProvider | { type: string; [option: string]: unknown }
  /** Address the interchange listens on for managers. Default 127.0.0.1 (this host only). */
  address?: string
  /**
   * Workers as child processes (default: a crashing task takes down one worker only, and
   * measured fastest here) or as threads of the manager (quickest to start).
   */
  workerMode?: 'threads' | 'processes'
  /** Most workers per node. Default: CPUs / coresPerWorker. */
  maxWorkersPerNode?: number
  /** CPUs each worker needs (may be fractional). Default 1. */
  coresPerWorker?: number
  /** Memory each worker needs, MB; caps workers by the node's memory. */
  memPerWorker?: number
  /**
   * Tasks a manager holds beyond one per worker, to hide the round trip to the interchange.
   * 'auto' (default) adapts to measured task length: deep for short tasks, none for long ones.
   */
  prefetchCapacity?: number | 'auto'
  /** CPU affinity of workers: 'none', 'block', 'alternating', or explicit lists "0,1;2,3". Default 'none'. */
  cpuAffinity?: string
  /** Accelerator ids handed out one per worker (or a count, meaning 0..n-1). */
  availableAccelerators?: string[] | number
  /** Variable that names a worker's accelerator. Default CUDA_VISIBLE_DEVICES. */
  acceleratorEnv?: string
  /** Heartbeat period between interchange and managers, ms. Default 2000. */
  heartbeatPeriodMs?: number
  /** Silence after which a manager (or the interchange) is declared lost, ms. Default 10000. */
  heartbeatThresholdMs?: number
  /** CurveZMQ encryption. Default: on when `address` is not a loopback address. */
  encrypted?: boolean
  /** Scaling strategy: 'none', 'simple' or 'htex_auto_scale'. Default 'simple'. */
  strategy?: StrategyName
  strategyPeriodMs?: number
  /** Idle time after which htex_auto_scale releases a block, ms. */
  maxIdleTimeMs?: number
  /** Words put before the manager command, e.g. "apptainer exec image.sif". */
  managerLaunchPrefix?: string
  /** Most tasks in one message to the interchange. Default 2048. */
  maxBatchSize?: number
  /** Log level of the interchange and managers. Default: the kernel's. */
  logLevel?: LogLevel
}

export interface ResolvedHtexOptions {
  label: string
  provider: ExecutionProvider
  address: string
  workerMode: 'threads' | 'processes'
  maxWorkersPerNode: number | undefined
  coresPerWorker: number
  memPerWorker: number | undefined
  prefetchCapacity: number | 'auto'
  cpuAffinity: string
  accelerators: string[]
  acceleratorEnv: string
  heartbeatPeriodMs: number
  heartbeatThresholdMs: number
  encrypted: boolean
  strategy: StrategyName
  strategyPeriodMs: number
  maxIdleTimeMs: number
  managerLaunchPrefix: string | undefined
  maxBatchSize: number
  logLevel: LogLevel | undefined
}

const affinity: Check<string> = (value, path) => {
  const text = string(value, path)
  if (text === 'none' || text === 'block' || text === 'alternating' || /^\d+(-\d+)?(,\d+(-\d+)?)*(;\d+(-\d+)?(,\d+(-\d+)?)*)*$/.test(text)) return text
  throw new ConfigError(path, `must be 'none', 'block', 'alternating' or CPU lists per worker like "0,1;2,3" (got ${JSON.stringify(text)})`)
}

const schema = object({
  type: optional(string),
  label: string,
  provider: providerOption,
  address: string,
  workerMode: oneOf('threads', 'processes'),
  maxWorkersPerNode: positiveInt,
  coresPerWorker: positiveNumber,
  memPerWorker: positiveNumber,
  prefetchCapacity: anyOf<number | 'auto'>("'auto' or a non-negative integer", literal('auto'), nonNegativeInt),
  cpuAffinity: affinity,
  availableAccelerators: anyOf<string[] | number>('a list of accelerator ids or a count', arrayOf(string), nonNegativeInt),
  acceleratorEnv: string,
  heartbeatPeriodMs: integer(10, 3_600_000, 'a whole number of ms from 10 to 3600000'),
  heartbeatThresholdMs: integer(20, 86_400_000, 'a whole number of ms from 20 to 86400000'),
  encrypted: boolean,
  ...strategyOptionShape,
  managerLaunchPrefix: string,
  maxBatchSize: positiveInt,
  logLevel: oneOf(...LOG_LEVELS),
})

export function resolveHtexOptions(raw: HighThroughputExecutorOptions, path: string): ResolvedHtexOptions {
  const o = schema(raw, path)
  const address = o.address ?? '127.0.0.1'
  const period = o.heartbeatPeriodMs ?? 2000
  const threshold = o.heartbeatThresholdMs ?? 10_000
  if (threshold <= period) {
    throw new ConfigError(`${path ? `${path}.` : ''}heartbeatThresholdMs`, `must be larger than heartbeatPeriodMs (${period}); use at least twice the period`)
  }
  const accelerators =
    typeof o.availableAccelerators === 'number'
      ? Array.from({ length: o.availableAccelerators }, (_, i) => String(i))
      : (o.availableAccelerators ?? [])
  return {
    label: o.label ?? 'htex',
    provider: o.provider ?? new LocalProvider({}),
    address,
    workerMode: o.workerMode ?? 'processes',
    maxWorkersPerNode: o.maxWorkersPerNode,
    coresPerWorker: o.coresPerWorker ?? 1,
    memPerWorker: o.memPerWorker,
    prefetchCapacity: o.prefetchCapacity ?? 'auto',
    cpuAffinity: o.cpuAffinity ?? 'none',
    accelerators,
    acceleratorEnv: o.acceleratorEnv ?? 'CUDA_VISIBLE_DEVICES',
    heartbeatPeriodMs: period,
    heartbeatThresholdMs: threshold,
    encrypted: o.encrypted ?? !isLoopback(address),
    strategy: (o.strategy as StrategyName | undefined) ?? DEFAULT_STRATEGY,
    strategyPeriodMs: (o.strategyPeriodMs as number | undefined) ?? DEFAULT_STRATEGY_PERIOD_MS,
    maxIdleTimeMs: (o.maxIdleTimeMs as number | undefined) ?? DEFAULT_MAX_IDLE_TIME_MS,
    managerLaunchPrefix: o.managerLaunchPrefix,
    maxBatchSize: o.maxBatchSize ?? 2048,
    logLevel: o.logLevel,
  }
}

/** Workers a manager will start on a node like this one (for scaling estimates). */
export function workersPerNode(options: ResolvedHtexOptions): number {
  let workers = Math.max(1, Math.floor(availableParallelism() / options.coresPerWorker))
  if (options.maxWorkersPerNode !== undefined) workers = Math.min(workers, options.maxWorkersPerNode)
  if (options.accelerators.length > 0) workers = Math.min(workers, options.accelerators.length)
  return workers
}
