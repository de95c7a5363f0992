/**
 * The command line of `tsflow-manager`. The HTEX executor builds it with the manager spec
 * (src/protocol/manager.ts) and providers only run it, so it is strict: an unknown flag or a bad
 * value is a usage error (exit 2) naming the flag and what it expects, never silently ignored.
 * This module turns the decoded spec into the manager's resolved options (worker count from
 * this node's CPUs and memory, parsed affinity).
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { UsageError } from '../errors.js'
import { blockEnd, hostFacts, managerSpec, MANAGER_DEFAULTS, parseAffinity, workerCount, type AffinitySpec, type HostFacts, type ManagerSpec, type WorkerMode } from '../protocol/manager.js'
import type { LogLevel } from '../util/logger.js'

export { hostFacts, type HostFacts, type WorkerMode }

export interface ManagerOptions {
  interchange: string
  blockId: string
  managerId: string
  /** the resolved worker count */
  workers: number
  /** why `workers` is what it is, for the log */
  workerNotes: string[]
  coresPerWorker: number
  /** tasks held beyond one per worker, or 'auto': adapted to measured task length */
  prefetch: number | 'auto'
  mode: WorkerMode
  affinity: AffinitySpec
  accelerators: string[]
  acceleratorEnv: string
  /** set only when given on the command line; otherwise the interchange's values apply */
  heartbeatPeriodMs?: number
  heartbeatThresholdMs?: number
  curveDir?: string
  logDir?: string
  logLevel: LogLevel
  /** when the block reaches its walltime (ms since the epoch), if known, and how that was learned */
  blockEnd?: { endMs: number; source: string }
  /** within this many ms of the block's end, losses are the walltime's doing */
  walltimeMarginMs?: number
  /** sample running tasks' /proc every this many ms; 0: no sampler at all */
  resourceIntervalMs: number
}

export { UsageError }

export const USAGE = `usage: tsflow-manager --interchange tcp://HOST:PORT --block-id ID [options]

${managerSpec.usage()}
  --help
  --version                          print the tsflow version and exit (alone)

Heartbeat period and threshold default to the interchange's (sent when the manager registers).
`

/** Parses argv (without node and script); returns 'help' for --help. Throws UsageError. */
export function parseManagerArgs(argv: readonly string[], facts: HostFacts = hostFacts()): ManagerOptions | 'help' {
  const spec = managerSpec.decode(argv)
  return spec === 'help' ? spec : resolveManagerSpec(spec, facts)
}

/** The manager's options from its spec and this node's facts. Throws UsageError naming the flag. */
export function resolveManagerSpec(
  spec: ManagerSpec,
  facts: HostFacts = hostFacts(),
  env: Readonly<Record<string, string | undefined>> = process.env,
  startMs: number = performance.timeOrigin,
): ManagerOptions {
  const { workers, notes } = workerCount(spec, facts)
  // The spec check already accepted the text, so this parse cannot fail.
  const affinity: AffinitySpec = parseAffinity(spec.cpuAffinity ?? MANAGER_DEFAULTS.cpuAffinity)
  if (affinity.kind === 'list' && affinity.cpus.length < workers) {
    throw new UsageError(`--affinity lists CPUs for ${affinity.cpus.length} workers but there are ${workers}; give one list per worker`)
  }
  const options: ManagerOptions = {
    interchange: spec.interchange!,
    blockId: spec.blockId!,
    managerId: spec.managerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    workers,
    workerNotes: notes,
    coresPerWorker: spec.coresPerWorker ?? MANAGER_DEFAULTS.coresPerWorker,
    prefetch: spec.prefetchCapacity ?? MANAGER_DEFAULTS.prefetchCapacity,
    mode: spec.workerMode ?? MANAGER_DEFAULTS.workerMode,
    affinity,
    accelerators: spec.accelerators ?? [],
    acceleratorEnv: spec.acceleratorEnv ?? MANAGER_DEFAULTS.acceleratorEnv,
    logLevel: spec.logLevel ?? ('info' as LogLevel),
    resourceIntervalMs: spec.resourceIntervalMs ?? MANAGER_DEFAULTS.resourceIntervalMs,
  }
  if (spec.heartbeatPeriodMs !== undefined) options.heartbeatPeriodMs = spec.heartbeatPeriodMs
  if (spec.heartbeatThresholdMs !== undefined) options.heartbeatThresholdMs = spec.heartbeatThresholdMs
  if (spec.curveDir !== undefined) options.curveDir = spec.curveDir
  if (spec.logDir !== undefined) options.logDir = spec.logDir
  const end = blockEnd(spec, env, startMs)
  if (end) options.blockEnd = end
  if (spec.walltimeMarginMs !== undefined) options.walltimeMarginMs = spec.walltimeMarginMs
  return options
}
