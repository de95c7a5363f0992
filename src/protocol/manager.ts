/**
 * The manager boundary: what a block's command passes to `tsflow-manager` on each node. One
 * table: defaults, checks and flags. The HTEX client builds the command with
 * `managerSpec.encode`, the manager decodes it with `managerSpec.decode`, the HTEX options
 * reuse the same checks (so `executors[0].coresPerWorker` and `--cores-per-worker` are refused
 * for the same reasons), and tests spawn managers through the same encoder.
 */
import { availableParallelism, totalmem } from 'node:os'
import { ConfigError } from '../errors.js'
import { anyOf, arrayOf, integer, literal, nonNegativeInt, oneOf, positiveInt, positiveNumber, type Check } from '../util/schema.js'
import { checkHeartbeats, heartbeatFields, logLevelField, walltimeMarginField } from './interchange.js'
import { asList, asNumber, defineArgvSpec, nonEmptyString, type Field, type ValuesOf } from './spec.js'

export type WorkerMode = 'threads' | 'processes'

export type AffinitySpec =
  | { kind: 'none' }
  | { kind: 'block' }
  | { kind: 'alternating' }
  /** one CPU list per worker, absolute CPU numbers */
  | { kind: 'list'; cpus: number[][] }

/** Parses `none`, `block`, `alternating` or a list such as "0,1;2,3" or "0-3;4-7". */
export function parseAffinity(text: string): AffinitySpec {
  if (text === 'none' || text === 'block' || text === 'alternating') return { kind: text }
  const perWorker = text.split(';').map((part) => parseCpuSet(part))
  if (perWorker.some((cpus) => cpus === undefined)) {
    throw new Error(
      `expects none, block, alternating or one CPU list per worker separated by ';' (e.g. "0,1;2,3" or "0-3;4-7"), got '${text}'`,
    )
  }
  return { kind: 'list', cpus: perWorker as number[][] }
}

function parseCpuSet(text: string): number[] | undefined {
  const cpus = new Set<number>()
  for (const item of text.split(',')) {
    const range = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(item)
    if (!range) return undefined
    const first = Number(range[1])
    const last = range[2] === undefined ? first : Number(range[2])
    if (last < first) return undefined
    for (let cpu = first; cpu <= last; cpu++) cpus.add(cpu)
  }
  return cpus.size > 0 ? [...cpus].sort((a, b) => a - b) : undefined
}

const affinity: Check<string> = (value, path) => {
  if (typeof value !== 'string') throw new ConfigError(path, `must be 'none', 'block', 'alternating' or CPU lists per worker like "0,1;2,3" (got ${typeof value})`)
  try {
    parseAffinity(value)
  } catch (error) {
    throw new ConfigError(path, (error as Error).message)
  }
  return value
}

const endpoint: Check<string> = (value, path) => {
  if (typeof value !== 'string' || !/^(tcp:\/\/[^:/]+:\d+|ipc:\/\/.+)$/.test(value)) {
    throw new ConfigError(path, `expects tcp://HOST:PORT or ipc://PATH, got ${JSON.stringify(value)}`)
  }
  return value
}

// A ZeroMQ routing id is 1-255 bytes and may not start with a zero byte.
const routingId: Check<string> = (value, path) => {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > 255 || value.startsWith('\0')) {
    throw new ConfigError(path, 'expects 1 to 255 bytes not starting with a NUL byte')
  }
  return value
}

const accelerators: Check<string[]> = (value, path) => {
  const items = arrayOf(nonEmptyString)(value, path)
  if (new Set(items).size !== items.length) throw new ConfigError(path, `lists an accelerator twice: ${JSON.stringify(items)}`)
  return items
}

const envName: Check<string> = (value, path) => {
  if (typeof value !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    throw new ConfigError(path, `expects an environment variable name, got ${JSON.stringify(value)}`)
  }
  return value
}

// The same bounds as `monitoring.resourceIntervalMs` (protocol/monitoring.ts), plus 0 for off.
const resourceInterval: Check<number> = (value, path) => {
  if (value === 0) return 0
  return integer(10, 2 ** 31 - 1, '0 (off) or a whole number of ms from 10 to 2147483647')(value, path)
}

export const DEFAULT_ACCELERATOR_ENV = 'CUDA_VISIBLE_DEVICES'

/**
 * Set by a block's script when the job starts (ms since the epoch): the start of the block's
 * walltime. A manager starts later than its job, so its own start time would put the block's end
 * too late.
 */
export const BLOCK_START_ENV = 'TSFLOW_BLOCK_START_MS'
/** Set by a block's script to the provider's walltime in seconds (when one was asked for). */
export const BLOCK_WALLTIME_ENV = 'TSFLOW_BLOCK_WALLTIME_S'

/** When the manager's block ends (ms since the epoch) and how that was learned; undefined if unknown. */
export function blockEnd(
  spec: Pick<ManagerSpec, 'blockEndMs' | 'walltimeSeconds'>,
  env: Readonly<Record<string, string | undefined>>,
  managerStartMs: number,
): { endMs: number; source: string } | undefined {
  if (spec.blockEndMs !== undefined) return { endMs: spec.blockEndMs, source: '--block-end-ms' }
  // Slurm knows the end exactly (it may also differ from the walltime asked: a partition limit).
  const slurmEnd = Number(env.SLURM_JOB_END_TIME)
  if (env.SLURM_JOB_END_TIME && Number.isFinite(slurmEnd) && slurmEnd * 1000 > managerStartMs && slurmEnd * 1000 < managerStartMs + 366 * 86_400_000) {
    return { endMs: slurmEnd * 1000, source: 'SLURM_JOB_END_TIME' }
  }
  const envWalltime = Number(env[BLOCK_WALLTIME_ENV])
  const walltime = spec.walltimeSeconds ?? (env[BLOCK_WALLTIME_ENV] && envWalltime > 0 ? envWalltime : undefined)
  if (walltime === undefined) return undefined
  const flag = spec.walltimeSeconds !== undefined ? `--walltime ${walltime}` : `$${BLOCK_WALLTIME_ENV} ${walltime}`
  const start = Number(env[BLOCK_START_ENV])
  // A start after this manager's own is not the job's start (a stale variable): ignored.
  if (env[BLOCK_START_ENV] && Number.isFinite(start) && start > 0 && start <= managerStartMs + 60_000) {
    return { endMs: Math.round(start + walltime * 1000), source: `${BLOCK_START_ENV} + ${flag}` }
  }
  return { endMs: Math.round(managerStartMs + walltime * 1000), source: `the manager's start + ${flag} (no ${BLOCK_START_ENV})` }
}

export const managerSpec = defineArgvSpec(
  'tsflow-manager',
  {
    interchange: { flag: 'interchange', arg: 'URL', check: endpoint, help: "the interchange's manager port (tcp://host:port or ipc://path)" } as Field<string>,
    blockId: { flag: 'block-id', arg: 'ID', check: nonEmptyString, help: 'the block (scheduler job) this manager belongs to' } as Field<string>,
    managerId: { flag: 'manager-id', arg: 'ID', check: routingId, help: 'unique id (default: host-pid-random)' } as Field<string>,
    workers: { flag: 'workers', arg: 'N', check: positiveInt, parse: asNumber, help: 'workers (default: CPUs / cores-per-worker)' } as Field<number>,
    maxWorkersPerNode: { flag: 'max-workers-per-node', arg: 'N', check: positiveInt, parse: asNumber, help: 'upper bound on workers' } as Field<number>,
    coresPerWorker: { flag: 'cores-per-worker', arg: 'X', check: positiveNumber, parse: asNumber, help: 'CPUs per worker, may be fractional (default 1)' } as Field<number>,
    memPerWorker: { flag: 'mem-per-worker', arg: 'MB', check: positiveNumber, parse: asNumber, help: 'memory per worker; caps workers by total memory' } as Field<number>,
    prefetchCapacity: {
      flag: 'prefetch',
      arg: 'P|auto',
      check: anyOf<number | 'auto'>("'auto' or a non-negative integer", literal('auto'), nonNegativeInt),
      parse: (text) => (text === 'auto' ? text : asNumber(text)),
      help: 'tasks held beyond one per worker; auto adapts to task length (default auto)',
    } as Field<number | 'auto'>,
    workerMode: { flag: 'mode', arg: 'threads|processes', check: oneOf('threads', 'processes'), help: 'worker threads or worker processes (default processes)' } as Field<WorkerMode>,
    cpuAffinity: { flag: 'affinity', arg: 'SPEC', check: affinity, help: 'none | block | alternating | "0,1;2,3" (one list per worker)' } as Field<string>,
    accelerators: {
      flag: 'accelerators',
      arg: 'A,B,...',
      check: accelerators,
      parse: asList,
      format: (list) => list.join(','),
      help: 'one accelerator per worker (caps workers)',
    } as Field<string[]>,
    acceleratorEnv: { flag: 'accelerator-env', arg: 'NAME', check: envName, help: `variable naming a worker's accelerator (default ${DEFAULT_ACCELERATOR_ENV})` } as Field<string>,
    ...heartbeatFields,
    walltimeSeconds: {
      flag: 'walltime',
      arg: 'S',
      check: positiveNumber,
      parse: asNumber,
      help: `the block's walltime in s (default $${BLOCK_WALLTIME_ENV}); its end = $${BLOCK_START_ENV} (or this manager's start) + S`,
    } as Field<number>,
    blockEndMs: {
      flag: 'block-end-ms',
      arg: 'MS',
      check: positiveNumber,
      parse: asNumber,
      help: "when the block ends, ms since the epoch (wins over --walltime and $SLURM_JOB_END_TIME)",
    } as Field<number>,
    walltimeMarginMs: walltimeMarginField,
    resourceIntervalMs: {
      flag: 'resource-interval-ms',
      arg: 'MS',
      check: resourceInterval,
      parse: asNumber,
      help: "sample each running task's CPU, memory and I/O from /proc every MS ms for monitoring (0: off, the default)",
    } as Field<number>,
    curveDir: { flag: 'curve-dir', arg: 'DIR', check: nonEmptyString, help: 'CurveZMQ keys: server.public, client.public, client.secret (z85)' } as Field<string>,
    logDir: { flag: 'log-dir', arg: 'DIR', check: nonEmptyString, help: 'write DIR/manager-<id>.log' } as Field<string>,
    logLevel: logLevelField,
  },
  (values, at) => {
    for (const key of ['interchange', 'blockId'] as const) {
      if (values[key] === undefined) throw new ConfigError(at(key), 'is required (see --help)')
    }
    // Unset heartbeats follow the interchange (sent in `registered`), so only a pair given here is checked.
    if (values.heartbeatPeriodMs !== undefined && values.heartbeatThresholdMs !== undefined) checkHeartbeats(values, at)
  },
)

/** What a block's command passes to a manager. */
export type ManagerSpec = ValuesOf<typeof managerSpec.fields>

export const MANAGER_DEFAULTS = {
  coresPerWorker: 1,
  prefetchCapacity: 'auto' as number | 'auto',
  workerMode: 'processes' as WorkerMode,
  cpuAffinity: 'none',
  acceleratorEnv: DEFAULT_ACCELERATOR_ENV,
  /** resource sampling off: a manager samples only when the executor's monitoring asks */
  resourceIntervalMs: 0,
} as const

/** Machine facts the worker count depends on; injectable so tests need not match this host. */
export interface HostFacts {
  cpus: number
  memoryMb: number
}

export function hostFacts(): HostFacts {
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0
  const bytes = constrained > 0 && constrained < totalmem() ? constrained : totalmem()
  return { cpus: availableParallelism(), memoryMb: Math.floor(bytes / 2 ** 20) }
}

/**
 * The workers a manager starts on a node with these facts, and why. The manager uses it with
 * its own node's facts; the HTEX client uses it with the workflow host's facts only as an
 * estimate until managers register and report their real counts.
 */
export function workerCount(
  spec: Pick<ManagerSpec, 'workers' | 'maxWorkersPerNode' | 'coresPerWorker' | 'memPerWorker' | 'accelerators'>,
  facts: HostFacts,
): { workers: number; notes: string[] } {
  const notes: string[] = []
  const coresPerWorker = spec.coresPerWorker ?? MANAGER_DEFAULTS.coresPerWorker
  let workers = spec.workers ?? Math.max(1, Math.floor(facts.cpus / coresPerWorker))
  notes.push(spec.workers !== undefined ? `${spec.workers} requested` : `${workers} from ${facts.cpus} CPUs / ${coresPerWorker} cores per worker`)
  if (spec.maxWorkersPerNode !== undefined && workers > spec.maxWorkersPerNode) {
    workers = spec.maxWorkersPerNode
    notes.push(`capped at ${workers} by --max-workers-per-node`)
  }
  if (spec.memPerWorker !== undefined) {
    const fit = Math.max(1, Math.floor(facts.memoryMb / spec.memPerWorker))
    if (workers > fit) {
      workers = fit
      notes.push(`capped at ${fit} by ${facts.memoryMb} MB of memory / ${spec.memPerWorker} MB per worker`)
    }
  }
  const accelerators = spec.accelerators ?? []
  if (accelerators.length > 0 && workers > accelerators.length) {
    workers = accelerators.length
    notes.push(`capped at ${workers} by one accelerator per worker`)
  }
  return { workers, notes }
}
