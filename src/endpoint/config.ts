/**
 * An endpoint's `config.json`: plain JSON, validated once at start into frozen options. The
 * fields that shape its managers and blocks are the HTEX executor's (executors/htex/options.ts
 * checks them, so both refuse the same values for the same reasons); the rest are the endpoint's
 * own (its client port, result retention). Errors are ConfigError naming `<file>: field.path`.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { ConfigError } from '../errors.js'
import { ENDPOINT_DEFAULTS, type EndpointPaths } from '../protocol/endpoint.js'
import { LOG_LEVELS, type LogLevel } from '../util/logger.js'
import { integer, isPlainObject, nearest, number, object, oneOf, positiveInt, type Check } from '../util/schema.js'
import { hostAddress, resolveHtexOptions, type HighThroughputExecutorOptions, type ResolvedHtexOptions } from '../executors/htex/options.js'

/** The HTEX options an endpoint takes from config.json (the others belong to a client: proxy, batching). */
export const HTEX_FIELDS = [
  'provider',
  'address',
  'workerMode',
  'maxWorkersPerNode',
  'coresPerWorker',
  'memPerWorker',
  'prefetchCapacity',
  'cpuAffinity',
  'availableAccelerators',
  'acceleratorEnv',
  'heartbeatPeriodMs',
  'heartbeatThresholdMs',
  'strategy',
  'strategyPeriodMs',
  'maxIdleTimeMs',
  'drainLeadMs',
  'managerSelector',
  'walltimeMarginMs',
  'managerLaunchPrefix',
  'managerCommand',
  'managerConnectTimeoutMs',
  'metricsPort',
  'metricsAddress',
] as const

const endpointShape = {
  clientAddress: hostAddress,
  clientPort: integer(0, 65535, 'a port number from 0 to 65535 (0: chosen by the OS)'),
  resultTtlMs: number(1, Infinity, 'a positive number of ms') as Check<number>,
  maxRetainedBytesPerSession: positiveInt,
  sessionIdleMs: number(1, Infinity, 'a positive number of ms') as Check<number>,
  logLevel: oneOf(...LOG_LEVELS),
}
const endpointFields = object(endpointShape)

const KNOWN = [...HTEX_FIELDS, ...Object.keys(endpointShape)]
/** HTEX options that make no sense in an endpoint, with why. */
const CLIENT_ONLY: Record<string, string> = {
  label: 'an endpoint is named by its directory',
  type: 'config.json always describes an endpoint',
  encrypted: 'an endpoint always encrypts (CURVE) on both ports',
  proxy: 'it is a client option: set it on the EndpointExecutor',
  proxyImports: 'it is a client option: set it on the EndpointExecutor',
  maxBatchSize: 'it is a client option: set it on the EndpointExecutor',
}

export interface EndpointConfig {
  /** the file it came from (for messages) */
  file: string
  /** the managers' and blocks' options, as an HTEX executor resolves them (encrypted always on) */
  htex: ResolvedHtexOptions
  clientAddress: string
  clientPort: number
  resultTtlMs: number
  maxRetainedBytesPerSession: number
  sessionIdleMs: number
  logLevel: LogLevel
}

/** The defaults `writeDefaultEndpointConfig` writes: one local block, kept warm. */
export const DEFAULT_ENDPOINT_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  provider: { type: 'local', initBlocks: 1, minBlocks: 1, maxBlocks: 1 },
  workerMode: 'processes',
  prefetchCapacity: 'auto',
  strategy: 'simple',
  clientAddress: ENDPOINT_DEFAULTS.clientAddress,
  clientPort: ENDPOINT_DEFAULTS.clientPort,
  resultTtlMs: ENDPOINT_DEFAULTS.resultTtlMs,
  logLevel: 'info',
})

/**
 * Validates a parsed config.json (`raw`) into frozen options. `file` names it in errors. Each
 * call builds a fresh provider (a provider instance serves one start).
 */
export function resolveEndpointConfig(raw: unknown, file: string): EndpointConfig {
  return relabel(file, () => {
    if (!isPlainObject(raw)) throw new ConfigError('', `must hold a JSON object (got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw})`)
    const htexRaw: Record<string, unknown> = {}
    const ownRaw: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(raw)) {
      if (Object.hasOwn(CLIENT_ONLY, key)) throw new ConfigError(key, `is not an endpoint option: ${CLIENT_ONLY[key]}`)
      if ((HTEX_FIELDS as readonly string[]).includes(key)) htexRaw[key] = value
      else if (Object.hasOwn(endpointShape, key)) ownRaw[key] = value
      else {
        const suggestion = nearest(key, KNOWN)
        throw new ConfigError(key, `is not a known option${suggestion ? `; did you mean '${suggestion}'?` : ''} (known: ${KNOWN.join(', ')})`)
      }
    }
    const own = endpointFields(ownRaw, '')
    const logLevel = own.logLevel ?? 'info'
    const htex = resolveHtexOptions({ ...(htexRaw as HighThroughputExecutorOptions), encrypted: true, logLevel }, '')
    return Object.freeze({
      file,
      htex,
      clientAddress: own.clientAddress ?? ENDPOINT_DEFAULTS.clientAddress,
      clientPort: own.clientPort ?? ENDPOINT_DEFAULTS.clientPort,
      resultTtlMs: own.resultTtlMs ?? ENDPOINT_DEFAULTS.resultTtlMs,
      maxRetainedBytesPerSession: own.maxRetainedBytesPerSession ?? ENDPOINT_DEFAULTS.maxRetainedBytesPerSession,
      sessionIdleMs: own.sessionIdleMs ?? ENDPOINT_DEFAULTS.sessionIdleMs,
      logLevel,
    })
  })
}

/** Reads and validates `paths.config`. A missing file names the command that writes one. */
export function loadEndpointConfig(paths: Pick<EndpointPaths, 'config'>, name?: string): EndpointConfig {
  let text: string
  try {
    text = readFileSync(paths.config, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      throw new ConfigError(paths.config, `does not exist; run 'npx tsflow endpoint configure${name ? ` ${name}` : ''}' to write a default one`)
    }
    throw new ConfigError(paths.config, `cannot be read (${code ?? String(error)})`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`${paths.config}:`, `is not valid JSON: ${(error as Error).message}`)
  }
  return resolveEndpointConfig(raw, paths.config)
}

/**
 * Writes a default config.json (the defaults above, with `overrides` on top, validated first so
 * a bad override never lands in the file), atomically. Returns what was written.
 */
export function writeDefaultEndpointConfig(paths: Pick<EndpointPaths, 'config'>, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const config: Record<string, unknown> = { ...structuredClone(DEFAULT_ENDPOINT_CONFIG), ...overrides }
  for (const [key, value] of Object.entries(config)) if (value === undefined) delete config[key]
  resolveEndpointConfig(config, paths.config)
  mkdirSync(dirname(paths.config), { recursive: true })
  const temp = join(dirname(paths.config), `.${basename(paths.config)}.${process.pid}.tmp`)
  writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`)
  renameSync(temp, paths.config)
  return config
}

/** Runs `fn`, re-reporting its ConfigErrors as `<file>: <field path> <problem>`. */
function relabel<T>(file: string, fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const problem = error.path ? error.message.slice(error.path.length + 1) : error.message
    throw new ConfigError(`${file}:${error.path ? ` ${error.path}` : ''}`, problem, { cause: error })
  }
}
