/**
 * The command line of `tsflow-manager`. The HTEX executor builds it and providers only run it,
 * so it is strict: an unknown flag or a bad value is a usage error (exit 2) naming the flag and
 * what it expects, never silently ignored.
 */
import { randomBytes } from 'node:crypto'
import { availableParallelism, hostname, totalmem } from 'node:os'
import { UsageError } from '../errors.js'
import { LOG_LEVELS, type LogLevel } from '../util/logger.js'
import { parseAffinity, type AffinitySpec } from './affinity.js'

export type WorkerMode = 'threads' | 'processes'

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
}

export { UsageError }

export const USAGE = `usage: tsflow-manager --interchange tcp://HOST:PORT --block-id ID [options]

  --interchange URL            the interchange's manager port (tcp://host:port or ipc://path)
  --block-id ID                the block (scheduler job) this manager belongs to
  --manager-id ID              unique id (default: host-pid-random)
  --workers N                  workers (default: CPUs / cores-per-worker)
  --max-workers-per-node N     upper bound on workers
  --cores-per-worker X         CPUs per worker, may be fractional (default 1)
  --mem-per-worker MB          memory per worker; caps workers by total memory
  --prefetch P|auto            tasks held beyond one per worker; auto adapts to task length (default auto)
  --mode threads|processes     worker threads or worker processes (default threads)
  --affinity SPEC              none | block | alternating | "0,1;2,3" (one list per worker)
  --accelerators A,B,...       one accelerator per worker (caps workers)
  --accelerator-env NAME       variable naming a worker's accelerator (default CUDA_VISIBLE_DEVICES)
  --heartbeat-period MS        send a heartbeat this often (default: from the interchange, else 30000)
  --heartbeat-threshold MS     exit if the interchange is silent this long (default: from the interchange, else 120000)
  --curve-dir DIR              CurveZMQ keys: server.public, client.public, client.secret (z85)
  --log-dir DIR                write DIR/manager-<id>.log
  --log-level LEVEL            ${LOG_LEVELS.join(' | ')} (default info)
`

type Raw = Map<string, string>

const FLAGS = new Set([
  'interchange',
  'block-id',
  'manager-id',
  'workers',
  'max-workers-per-node',
  'cores-per-worker',
  'mem-per-worker',
  'prefetch',
  'mode',
  'affinity',
  'accelerators',
  'accelerator-env',
  'heartbeat-period',
  'heartbeat-threshold',
  'curve-dir',
  'log-dir',
  'log-level',
])

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

/** Parses argv (without node and script); returns 'help' for --help. Throws UsageError. */
export function parseManagerArgs(argv: readonly string[], facts: HostFacts = hostFacts()): ManagerOptions | 'help' {
  const raw: Raw = new Map()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (flags start with --; see --help)`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    if (!FLAGS.has(name)) throw new UsageError(`unknown flag --${name} (see --help for the flags tsflow-manager accepts)`)
    let value: string | undefined
    if (eq >= 0) value = arg.slice(eq + 1)
    else {
      value = argv[i + 1]
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} expects a value`)
      i++
    }
    if (raw.has(name)) throw new UsageError(`--${name} was given twice`)
    raw.set(name, value)
  }
  return resolve(raw, facts)
}

function resolve(raw: Raw, facts: HostFacts): ManagerOptions {
  const interchange = required(raw, 'interchange')
  if (!/^(tcp:\/\/[^:/]+:\d+|ipc:\/\/.+)$/.test(interchange)) {
    throw new UsageError(`--interchange expects tcp://HOST:PORT or ipc://PATH, got '${interchange}'`)
  }
  const blockId = required(raw, 'block-id')
  const managerId = raw.get('manager-id') ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  // A ZeroMQ routing id is 1-255 bytes and may not start with a zero byte.
  if (managerId.length === 0 || Buffer.byteLength(managerId) > 255 || managerId.startsWith('\0')) {
    throw new UsageError(`--manager-id expects 1 to 255 bytes not starting with a NUL byte`)
  }
  const coresPerWorker = number(raw, 'cores-per-worker', 'a positive number of CPUs (e.g. 1 or 0.5)', (n) => n > 0) ?? 1
  const accelerators = list(raw, 'accelerators')
  const acceleratorEnv = raw.get('accelerator-env') ?? 'CUDA_VISIBLE_DEVICES'
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(acceleratorEnv)) {
    throw new UsageError(`--accelerator-env expects an environment variable name, got '${acceleratorEnv}'`)
  }
  const { workers, notes } = workerCount(raw, facts, coresPerWorker, accelerators)
  const mode = raw.get('mode') ?? 'threads'
  if (mode !== 'threads' && mode !== 'processes') throw new UsageError(`--mode expects threads or processes, got '${mode}'`)
  let affinity: AffinitySpec = { kind: 'none' }
  if (raw.has('affinity')) {
    try {
      affinity = parseAffinity(raw.get('affinity')!)
    } catch (error) {
      throw new UsageError(`--affinity ${(error as Error).message}`)
    }
  }
  if (affinity.kind === 'list' && affinity.cpus.length < workers) {
    throw new UsageError(`--affinity lists CPUs for ${affinity.cpus.length} workers but there are ${workers}; give one list per worker`)
  }
  const logLevel = raw.get('log-level') ?? 'info'
  if (!(LOG_LEVELS as string[]).includes(logLevel)) throw new UsageError(`--log-level expects one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`)
  const options: ManagerOptions = {
    interchange,
    blockId,
    managerId,
    workers,
    workerNotes: notes,
    coresPerWorker,
    prefetch: raw.get('prefetch') === 'auto' || !raw.has('prefetch') ? 'auto' : (integer(raw, 'prefetch', 0) ?? 0),
    mode,
    affinity,
    accelerators,
    acceleratorEnv,
    logLevel: logLevel as LogLevel,
  }
  const period = integer(raw, 'heartbeat-period', 1)
  const threshold = integer(raw, 'heartbeat-threshold', 1)
  if (period !== undefined) options.heartbeatPeriodMs = period
  if (threshold !== undefined) options.heartbeatThresholdMs = threshold
  if (raw.has('curve-dir')) options.curveDir = nonEmpty(raw, 'curve-dir')
  if (raw.has('log-dir')) options.logDir = nonEmpty(raw, 'log-dir')
  return options
}

function workerCount(raw: Raw, facts: HostFacts, coresPerWorker: number, accelerators: string[]): { workers: number; notes: string[] } {
  const notes: string[] = []
  const explicit = integer(raw, 'workers', 1)
  let workers = explicit ?? Math.max(1, Math.floor(facts.cpus / coresPerWorker))
  notes.push(explicit !== undefined ? `${explicit} requested` : `${workers} from ${facts.cpus} CPUs / ${coresPerWorker} cores per worker`)
  const maxPerNode = integer(raw, 'max-workers-per-node', 1)
  if (maxPerNode !== undefined && workers > maxPerNode) {
    workers = maxPerNode
    notes.push(`capped at ${maxPerNode} by --max-workers-per-node`)
  }
  const memPerWorker = number(raw, 'mem-per-worker', 'a positive number of megabytes', (n) => n > 0)
  if (memPerWorker !== undefined) {
    const fit = Math.max(1, Math.floor(facts.memoryMb / memPerWorker))
    if (workers > fit) {
      workers = fit
      notes.push(`capped at ${fit} by ${facts.memoryMb} MB of memory / ${memPerWorker} MB per worker`)
    }
  }
  if (accelerators.length > 0 && workers > accelerators.length) {
    workers = accelerators.length
    notes.push(`capped at ${workers} by one accelerator per worker`)
  }
  return { workers, notes }
}

function required(raw: Raw, name: string): string {
  if (!raw.has(name)) throw new UsageError(`--${name} is required (see --help)`)
  return nonEmpty(raw, name)
}

function nonEmpty(raw: Raw, name: string): string {
  const value = raw.get(name)!
  if (value.trim() === '') throw new UsageError(`--${name} expects a non-empty value`)
  return value
}

function integer(raw: Raw, name: string, min: number): number | undefined {
  const text = raw.get(name)
  if (text === undefined) return undefined
  const value = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`--${name} expects ${min === 0 ? 'a non-negative' : 'a positive'} integer, got '${text}'`)
  }
  return value
}

function number(raw: Raw, name: string, expects: string, ok: (n: number) => boolean): number | undefined {
  const text = raw.get(name)
  if (text === undefined) return undefined
  const value = text.trim() === '' ? NaN : Number(text)
  if (!Number.isFinite(value) || !ok(value)) throw new UsageError(`--${name} expects ${expects}, got '${text}'`)
  return value
}

function list(raw: Raw, name: string): string[] {
  const text = raw.get(name)
  if (text === undefined) return []
  const items = text.split(',').map((item) => item.trim())
  if (items.some((item) => item === '')) throw new UsageError(`--${name} expects a comma-separated list without empty items, got '${text}'`)
  if (new Set(items).size !== items.length) throw new UsageError(`--${name} lists an accelerator twice: '${text}'`)
  return items
}
