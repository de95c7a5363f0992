import { ConfigError } from '../errors.js'
import { monitoringOption, type MonitoringOptions, type ResolvedMonitoring } from '../protocol/monitoring.js'
import type { Executor } from '../executors/base.js'
import { ThreadPoolExecutor } from '../executors/threads/executor.js'
import { HighThroughputExecutor } from '../executors/htex/executor.js'
import { EndpointExecutor } from '../executors/endpoint/executor.js'
import type { EndpointExecutorOptions } from '../executors/endpoint/options.js'
import { LOG_LEVELS, type LogLevel } from '../util/logger.js'
import { arrayOf, boolean, func, integer, isPlainObject, nonNegativeInt, object, oneOf, positiveNumber, string, type Check } from '../util/schema.js'
import { PluginRegistry } from '../util/registry.js'

/** When results of cached tasks are written to the run's checkpoint file. */
export type CheckpointMode = 'none' | 'task_exit' | 'periodic' | 'dfk_exit' | 'manual'
export const CHECKPOINT_MODES: CheckpointMode[] = ['none', 'task_exit', 'periodic', 'dfk_exit', 'manual']

/** The error passed to a retry handler, and what it may know about the task. */
export interface RetryTaskInfo {
  readonly id: number
  readonly appName: string
  /** tries made so far, including the one that just failed */
  readonly tries: number
  /** cost accumulated by earlier failures */
  readonly failCost: number
  readonly executor: string | undefined
}

/** Returns how much this failure costs; the task is retried while the total stays <= retries. */
export type RetryHandler = (error: unknown, task: RetryTaskInfo) => number

/** Where the terminal progress view writes (default `process.stderr`). */
export interface ProgressStream {
  write(text: string): unknown
  /** a terminal gets one live line redrawn in place; anything else, plain periodic lines */
  readonly isTTY?: boolean
  /** the terminal's width; the live line is cut to it so that it never wraps */
  readonly columns?: number
}

/** The `progress` option's object form (docs/monitoring.md "Terminal progress"). */
export interface ProgressOptions {
  /** ms between plain lines when the stream is not a terminal (default 10000) */
  intervalMs?: number
  stream?: ProgressStream
}

/** A plain-object executor description: `{ type: 'threads', maxThreads: 4 }`. */
export interface ExecutorSpec {
  type: string
  [option: string]: unknown
}

export interface Config {
  /** Executors tasks can run on. Default: one ThreadPoolExecutor with a thread per CPU. */
  executors?: (Executor | ExecutorSpec)[]
  /** How many times a failed task is retried (default 0). */
  retries?: number
  retryHandler?: RetryHandler
  /** Where numbered run directories go (default 'runinfo'). */
  runDir?: string
  /** Master switch for memoization of apps with `cache: true` (default true). */
  appCache?: boolean
  /** When results of cached tasks are written to the run's checkpoint file (default 'none'). */
  checkpointMode?: CheckpointMode
  /** Period of 'periodic' checkpointing, ms (default 30000). */
  checkpointPeriodMs?: number
  /** Checkpoint files or run directories whose results seed the memo table. */
  checkpointFiles?: string[]
  /** Log level of the run's log files (default 'info'; nothing per task below 'debug'). */
  logLevel?: LogLevel
  /**
   * A progress view on stderr (submitted, running, done, failed, tasks/s, ETA): a live line on a
   * terminal, plain lines every `intervalMs` otherwise. Default off; `TSFLOW_PROGRESS=1` turns it
   * on and `TSFLOW_PROGRESS=0` off whatever the config says.
   */
  progress?: boolean | ProgressOptions
  /**
   * Record the run into a SQLite database (docs/monitoring.md "Storage"): `true` or
   * `{ enabled: true, resourceIntervalMs, db, retention: { maxAgeDays, maxRuns } }`. Default off.
   */
  monitoring?: boolean | MonitoringOptions
}

export interface ResolvedConfig {
  readonly executors: readonly Executor[]
  readonly retries: number
  readonly retryHandler: RetryHandler | undefined
  readonly runDir: string
  readonly appCache: boolean
  readonly checkpointMode: CheckpointMode
  readonly checkpointPeriodMs: number
  readonly checkpointFiles: readonly string[]
  readonly logLevel: LogLevel
  /** undefined when off; the stream undefined means process.stderr, looked up at start */
  readonly progress: Readonly<{ intervalMs: number; stream: ProgressStream | undefined }> | undefined
  /** undefined when off */
  readonly monitoring: ResolvedMonitoring | undefined
}

type ExecutorFactory = (options: Record<string, unknown>) => Executor

function isExecutor(value: unknown): value is Executor {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Executor).submit === 'function' &&
    typeof (value as Executor).start === 'function'
  )
}

/** Executor types for plain-object configs; each validates its options in `validate(path)`. */
export const executors = new PluginRegistry<Executor>({
  what: 'an executor (e.g. new ThreadPoolExecutor())',
  isInstance: isExecutor,
  validate: (executor, path) => executor.validate(path),
})
executors.register('threads', (options) => new ThreadPoolExecutor(options))
executors.register('htex', (options) => new HighThroughputExecutor(options))
executors.register('endpoint', (options) => new EndpointExecutor(options as unknown as EndpointExecutorOptions))

/** Lets plain-object configs name an executor type (`{ type: 'htex', ... }`). */
export function registerExecutorType(type: string, factory: ExecutorFactory): void {
  executors.register(type, factory)
}

const executorEntry = executors.option

const progressObject = object({
  intervalMs: integer(1, 2 ** 31 - 1, 'a whole number of ms from 1 to 2147483647'),
  stream: ((value, path) => {
    if (typeof value !== 'object' || value === null || typeof (value as ProgressStream).write !== 'function') {
      throw new ConfigError(path, 'must be a writable stream (an object with write(text)), such as process.stdout')
    }
    return value as ProgressStream
  }) as Check<ProgressStream>,
})
const progressOption: Check<boolean | ProgressOptions> = (value, path) => {
  if (typeof value === 'boolean') return value
  if (isPlainObject(value)) return progressObject(value, path)
  throw new ConfigError(path, `must be true, false or { intervalMs, stream } (got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value})`)
}

/** The progress setting: TSFLOW_PROGRESS (1 on, 0 off) over the config's option. */
function resolveProgress(option: boolean | ProgressOptions | undefined, env: string | undefined): ResolvedConfig['progress'] {
  let on = option !== undefined && option !== false
  if (env !== undefined && env !== '') {
    if (env === '1' || env === 'true') on = true
    else if (env === '0' || env === 'false') on = false
    else throw new ConfigError('TSFLOW_PROGRESS', `(environment) must be 1 or 0 (got ${JSON.stringify(env)})`)
  }
  if (!on) return undefined
  const options = typeof option === 'object' ? option : {}
  return Object.freeze({ intervalMs: options.intervalMs ?? 10_000, stream: options.stream })
}

const schema = object({
  executors: arrayOf(executorEntry, { nonEmpty: true }),
  retries: nonNegativeInt,
  retryHandler: func,
  runDir: string,
  appCache: boolean,
  checkpointMode: oneOf(...CHECKPOINT_MODES),
  checkpointPeriodMs: positiveNumber,
  checkpointFiles: arrayOf(string),
  logLevel: oneOf(...LOG_LEVELS),
  progress: progressOption,
  monitoring: monitoringOption,
})

/** Validates a user config once, applies defaults and freezes it. Errors name the option path. */
export function resolveConfig(config: Config = {}): ResolvedConfig {
  if (!isPlainObject(config)) {
    throw new ConfigError('', `the config must be a plain object such as { executors: [...] } (got ${config === null ? 'null' : typeof config})`)
  }
  const options = schema(config, '')
  const executors = options.executors ?? [new ThreadPoolExecutor()]
  if (!options.executors) executors[0]!.validate('executors[0]')
  const seen = new Map<string, number>()
  executors.forEach((executor, index) => {
    const earlier = seen.get(executor.label)
    if (earlier !== undefined) {
      throw new ConfigError(`executors[${index}].label`, `'${executor.label}' is already used by executors[${earlier}]; labels must be unique`)
    }
    seen.set(executor.label, index)
  })
  return Object.freeze({
    executors: Object.freeze(executors),
    retries: options.retries ?? 0,
    retryHandler: options.retryHandler as RetryHandler | undefined,
    runDir: options.runDir ?? 'runinfo',
    appCache: options.appCache ?? true,
    checkpointMode: options.checkpointMode ?? 'none',
    checkpointPeriodMs: options.checkpointPeriodMs ?? 30_000,
    checkpointFiles: Object.freeze(options.checkpointFiles ?? []),
    logLevel: options.logLevel ?? 'info',
    progress: resolveProgress(options.progress, process.env.TSFLOW_PROGRESS),
    monitoring: options.monitoring as ResolvedMonitoring | undefined,
  })
}
