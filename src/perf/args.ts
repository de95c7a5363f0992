/**
 * Command line of `tsflow-perf`. Pure: takes argv and the environment, returns the options or
 * throws UsageError naming the flag and what it expects. Every default lives here.
 */
import { UsageError } from '../errors.js'
import type { ResourceSpec } from '../protocol/resources.js'

/** How batch sizes are chosen: see plan.ts. */
export type IterateMode = { mode: 'estimate' } | { mode: 'exponential' } | { mode: 'list'; sizes: number[] }

export interface PerfOptions {
  /** Module exporting the config; undefined means the local HTEX default. */
  configFile: string | undefined
  /** Target duration of an iteration, seconds. */
  timeSeconds: number
  /** Bytes of payload each task receives. */
  argsize: number
  iterate: IterateMode
  /** Per-task resource spec, passed as the call option `resources`. */
  resources: ResourceSpec | undefined
  resultsDir: string
  /** http(s) URL of an MLflow tracking server, or undefined for no MLflow logging. */
  mlflowUri: string | undefined
  mlflowExperiment: string
  /** --monitoring: record the run into the monitoring database (docs/monitoring.md) */
  monitoring: boolean
  /** --resource-interval-ms: managers' /proc sampling period with --monitoring (default: the option's, 1000) */
  resourceIntervalMs: number | undefined
  /** --monitoring-db: the database file (default: the option's, runinfo/monitoring.db) */
  monitoringDb: string | undefined
  /** Problems that do not stop the run (a MLFLOW_TRACKING_URI the REST sink cannot use). */
  warnings: string[]
}

// A mistake on the command line (or in the --config file): exit status 2.
export { UsageError }

export const DEFAULT_TIME_SECONDS = 120
export const DEFAULT_RESULTS_DIR = './perf-results'
export const DEFAULT_MLFLOW_EXPERIMENT = 'tsflow-perf'
/** Largest --argsize accepted: 1 GiB. */
export const MAX_ARGSIZE = 2 ** 30
const RESOURCE_EXAMPLE = '{"cores":1,"memoryMb":100,"gpus":0}'

export const USAGE = `Usage: tsflow-perf [options]
       tsflow-perf compare [FILE|DIR ...]   (see tsflow-perf compare --help)

Measures how many no-op tasks per second a tsflow configuration runs: it sizes batches of
tasks to last about --time seconds, runs them, and reports submitted/s and completed/s per
iteration and the final tasks/s. Each run is appended to <results-dir>/tsflow-perf.jsonl;
tsflow-perf compare tabulates and plots those runs by host, provider, nodes and workers.

Options:
  --config FILE             module whose default export (or export named 'config') is a tsflow
                            config; default: the local HighThroughputExecutor (1 block, a worker
                            per CPU)
  --time SECONDS            target duration of an iteration (default ${DEFAULT_TIME_SECONDS}; fractions allowed)
  --argsize BYTES           payload bytes passed to each task (default 0)
  --iterate MODE            estimate (default): size each batch from the last measured rate
                            until one lasts about --time; exponential: double the batch until
                            one lasts --time; N,N,...: exactly these batch sizes
  --resources JSON          per-task resource spec, e.g. '${RESOURCE_EXAMPLE}'
  --results-dir DIR         where tsflow-perf.jsonl is appended (default ${DEFAULT_RESULTS_DIR})
  --mlflow-uri URI          also log the run to this MLflow tracking server (http or https;
                            default: $MLFLOW_TRACKING_URI if set)
  --mlflow-experiment NAME  MLflow experiment (default ${DEFAULT_MLFLOW_EXPERIMENT}; created if missing)
  --monitoring              record the run in the monitoring database (as monitoring:
                            { enabled: true } in the config; overrides the config's option)
  --resource-interval-ms MS with --monitoring: how often managers sample each task's /proc
                            (default 1000)
  --monitoring-db FILE      with --monitoring: the database (default runinfo/monitoring.db)
  --help                    show this help
  --version                 print the tsflow version

Exit status: 0 done, 1 the run failed, 2 bad arguments or config file, 130 interrupted.
See docs/perf.md.
`

type Setter = (options: PerfOptions, value: string, flag: string) => void

const FLAGS: Record<string, Setter> = {
  '--config': (o, v, f) => (o.configFile = nonEmpty(v, f, 'a path to a config module')),
  '--time': (o, v, f) => (o.timeSeconds = parseTime(v, f)),
  '--argsize': (o, v, f) => (o.argsize = parseArgsize(v, f)),
  '--iterate': (o, v, f) => (o.iterate = parseIterate(v, f)),
  '--resources': (o, v, f) => (o.resources = parseResources(v, f)),
  '--results-dir': (o, v, f) => (o.resultsDir = nonEmpty(v, f, 'a directory')),
  '--mlflow-uri': (o, v, f) => (o.mlflowUri = parseMlflowUri(v, f)),
  '--mlflow-experiment': (o, v, f) => (o.mlflowExperiment = nonEmpty(v, f, 'an MLflow experiment name')),
  '--resource-interval-ms': (o, v, f) => (o.resourceIntervalMs = parseInterval(v, f)),
  '--monitoring-db': (o, v, f) => (o.monitoringDb = nonEmpty(v, f, 'a database file path')),
}
/** Flags that take no value. */
const SWITCHES: Record<string, (options: PerfOptions) => void> = {
  '--monitoring': (o) => (o.monitoring = true),
}

/** Parses argv (without node and the script); 'help' / 'version' for those flags. */
export function parsePerfArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): PerfOptions | 'help' | 'version' {
  const options: PerfOptions = {
    configFile: undefined,
    timeSeconds: DEFAULT_TIME_SECONDS,
    argsize: 0,
    iterate: { mode: 'estimate' },
    resources: undefined,
    resultsDir: DEFAULT_RESULTS_DIR,
    mlflowUri: undefined,
    mlflowExperiment: DEFAULT_MLFLOW_EXPERIMENT,
    monitoring: false,
    resourceIntervalMs: undefined,
    monitoringDb: undefined,
    warnings: [],
  }
  let uriFromFlag = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (arg === '--version') return 'version'
    if (!arg.startsWith('--')) {
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}; all options are flags (--time 30, --config FILE, ...)`)
    }
    const equals = arg.indexOf('=')
    const flag = equals === -1 ? arg : arg.slice(0, equals)
    const toggle = SWITCHES[flag]
    if (toggle) {
      if (equals !== -1) throw new UsageError(`${flag} takes no value (got ${JSON.stringify(arg)})`)
      toggle(options)
      continue
    }
    const setter = FLAGS[flag]
    if (!setter) throw new UsageError(`unknown flag ${flag}${suggest(flag)}; known flags: ${[...Object.keys(FLAGS), ...Object.keys(SWITCHES), '--help', '--version'].join(' ')}`)
    let value: string
    if (equals !== -1) value = arg.slice(equals + 1)
    else {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value (${EXPECTS[flag]})`)
      value = next
      i++
    }
    setter(options, value, flag)
    if (flag === '--mlflow-uri') uriFromFlag = true
  }
  for (const flag of ['--resource-interval-ms', '--monitoring-db'] as const) {
    const given = flag === '--resource-interval-ms' ? options.resourceIntervalMs : options.monitoringDb
    if (given !== undefined && !options.monitoring) throw new UsageError(`${flag} needs --monitoring (it only applies to a monitored run)`)
  }
  if (!uriFromFlag && env.MLFLOW_TRACKING_URI) {
    try {
      options.mlflowUri = parseMlflowUri(env.MLFLOW_TRACKING_URI, 'MLFLOW_TRACKING_URI')
    } catch (error) {
      options.warnings.push(`${(error as Error).message}; not logging to MLflow`)
    }
  }
  return options
}

const EXPECTS: Record<string, string> = {
  '--config': 'a path to a config module',
  '--time': 'a number of seconds > 0, e.g. 120 or 0.5',
  '--argsize': 'a whole number of bytes >= 0',
  '--iterate': 'estimate, exponential or a comma-separated list of task counts like 100,1000',
  '--resources': `a JSON object like '${RESOURCE_EXAMPLE}'`,
  '--results-dir': 'a directory',
  '--mlflow-uri': 'an http(s) URL of an MLflow tracking server',
  '--mlflow-experiment': 'an MLflow experiment name',
  '--resource-interval-ms': 'a whole number of ms from 10 to 2147483647',
  '--monitoring-db': 'a database file path',
}

function nonEmpty(value: string, flag: string, what: string): string {
  if (value.trim() === '') throw new UsageError(`${flag} expects ${what} (got an empty value)`)
  return value
}

/** A plain decimal number: no units, no hex, no Infinity. */
const DECIMAL = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/

function parseTime(value: string, flag: string): number {
  const seconds = DECIMAL.test(value.trim()) ? Number(value) : NaN
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`${flag} expects ${EXPECTS[flag]} (got ${JSON.stringify(value)})`)
  return seconds
}

function parseInterval(value: string, flag: string): number {
  const ms = /^\d+$/.test(value.trim()) ? Number(value) : NaN
  if (!Number.isSafeInteger(ms) || ms < 10 || ms > 2 ** 31 - 1) throw new UsageError(`${flag} expects ${EXPECTS[flag]} (got ${JSON.stringify(value)})`)
  return ms
}

function parseArgsize(value: string, flag: string): number {
  const bytes = DECIMAL.test(value.trim()) ? Number(value) : NaN
  if (!Number.isInteger(bytes) || bytes < 0) throw new UsageError(`${flag} expects ${EXPECTS[flag]} (got ${JSON.stringify(value)})`)
  if (bytes > MAX_ARGSIZE) throw new UsageError(`${flag} must be at most ${MAX_ARGSIZE} (1 GiB) (got ${value})`)
  return bytes
}

function parseIterate(value: string, flag: string): IterateMode {
  const text = value.trim()
  if (text === 'estimate' || text === 'exponential') return { mode: text }
  const parts = text.split(',').map((part) => part.trim())
  const sizes = parts.map((part) => (/^\d+$/.test(part) ? Number(part) : NaN))
  const bad = parts.find((part, index) => !Number.isSafeInteger(sizes[index]) || sizes[index]! < 1)
  if (bad !== undefined) {
    const detail = parts.length > 1 ? `; ${JSON.stringify(bad)} is not a positive whole number` : ''
    throw new UsageError(`${flag} expects ${EXPECTS[flag]} (got ${JSON.stringify(value)}${detail})`)
  }
  return { mode: 'list', sizes }
}

const RESOURCE_KEYS: Record<keyof ResourceSpec, { check: (v: unknown) => boolean; expects: string }> = {
  cores: { check: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0, expects: 'a number > 0' },
  memoryMb: { check: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0, expects: 'a number of MB > 0' },
  gpus: { check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0, expects: 'a whole number >= 0' },
}
/** Parsl's resource keys, and what they are called here. */
const RESOURCE_ALIASES: Record<string, string> = { memory: 'memoryMb', mem: 'memoryMb', memory_mb: 'memoryMb', gpu: 'gpus', cpus: 'cores', cpu: 'cores' }

function parseResources(value: string, flag: string): ResourceSpec {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (error) {
    throw new UsageError(`${flag} expects ${EXPECTS[flag]}; ${JSON.stringify(value)} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`${flag} expects ${EXPECTS[flag]} (got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)})`)
  }
  const spec: Record<string, number> = {}
  for (const [key, inner] of Object.entries(parsed)) {
    const rule = Object.hasOwn(RESOURCE_KEYS, key) ? RESOURCE_KEYS[key as keyof ResourceSpec] : undefined
    if (!rule) {
      const alias = RESOURCE_ALIASES[key] ?? RESOURCE_ALIASES[key.toLowerCase()]
      throw new UsageError(
        `${flag}: unknown key ${JSON.stringify(key)}${alias ? ` (did you mean "${alias}"?)` : ''}; known keys: ${Object.keys(RESOURCE_KEYS).join(', ')}`,
      )
    }
    if (!rule.check(inner)) throw new UsageError(`${flag}: "${key}" must be ${rule.expects} (got ${JSON.stringify(inner)})`)
    spec[key] = inner as number
  }
  return spec as ResourceSpec
}

function parseMlflowUri(value: string, flag: string): string {
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    throw new UsageError(`${flag} expects ${EXPECTS['--mlflow-uri']}, e.g. http://127.0.0.1:5000 (got ${JSON.stringify(value)})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${flag} expects ${EXPECTS['--mlflow-uri']}; ${JSON.stringify(value)} is a ${url.protocol.replace(/:$/, '')} URI, which the REST sink cannot use`)
  }
  return url.href.replace(/\/+$/, '')
}

function suggest(flag: string): string {
  const known = Object.keys(FLAGS)
  const stem = flag.replace(/^-+/, '').toLowerCase()
  const hit = known.find((k) => k.slice(2).startsWith(stem.slice(0, 4)) && stem.length >= 3) ?? known.find((k) => k.slice(2).includes(stem) && stem.length >= 3)
  return hit ? ` (did you mean ${hit}?)` : ''
}
