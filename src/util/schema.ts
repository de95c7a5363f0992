import { ConfigError } from '../errors.js'

/**
 * A small validator for options objects. Each check takes the raw value and the option path
 * (`executors[0].maxThreads`) and returns the typed value or throws ConfigError naming the path.
 * Kept in-house: the error wording ("must be a positive integer", "did you mean") is the
 * product here, and the needs are small.
 */
export type Check<T> = (value: unknown, path: string) => T

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  return path ? `${path}.${key}` : key
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'function') return 'a function'
  return String(value)
}

function fail(path: string, expectation: string, value: unknown): never {
  throw new ConfigError(path, `must be ${expectation} (got ${describe(value)})`)
}

export const integer =
  (min = -Infinity, max = Infinity, what?: string): Check<number> =>
  (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      fail(path, what ?? (min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer from ${min} to ${max}`), value)
    }
    return value
  }
export const positiveInt = integer(1)
export const nonNegativeInt = integer(0)

export const number =
  (min = -Infinity, max = Infinity, what?: string): Check<number> =>
  (value, path) => {
    if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
      fail(path, what ?? `a number from ${min} to ${max}`, value)
    }
    return value
  }
/** A duration or size that must be > 0 (Infinity allowed). */
export const positiveNumber: Check<number> = (value, path) => {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) fail(path, 'a positive number', value)
  return value
}

export const boolean: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean') fail(path, 'true or false', value)
  return value
}

export const string: Check<string> = (value, path) => {
  if (typeof value !== 'string' || value.length === 0) fail(path, 'a non-empty string', value)
  return value
}

export const func: Check<(...args: never[]) => unknown> = (value, path) => {
  if (typeof value !== 'function') fail(path, 'a function', value)
  return value as (...args: never[]) => unknown
}

export const oneOf =
  <T extends string>(...allowed: T[]): Check<T> =>
  (value, path) => {
    if (typeof value !== 'string' || !(allowed as string[]).includes(value)) {
      fail(path, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value)
    }
    return value as T
  }

export const arrayOf =
  <T>(item: Check<T>, { nonEmpty = false } = {}): Check<T[]> =>
  (value, path) => {
    if (!Array.isArray(value)) fail(path, 'an array', value)
    if (nonEmpty && value.length === 0) fail(path, 'a non-empty array', value)
    return value.map((element, index) => item(element, join(path, index)))
  }

export const recordOf =
  <T>(item: Check<T>): Check<Record<string, T>> =>
  (value, path) => {
    if (!isPlainObject(value)) fail(path, 'an object', value)
    const out: Record<string, T> = {}
    for (const [key, inner] of Object.entries(value)) out[key] = item(inner, join(path, key))
    return out
  }

export const anyOf =
  <T>(what: string, ...checks: Check<T>[]): Check<T> =>
  (value, path) => {
    for (const check of checks) {
      try {
        return check(value, path)
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
      }
    }
    return fail(path, what, value)
  }

export const literal =
  <T>(expected: T): Check<T> =>
  (value, path) => {
    if (value !== expected) fail(path, describe(expected), value)
    return expected
  }

export type Shape = Record<string, Check<unknown>>
export type Validated<S extends Shape> = { [K in keyof S]?: ReturnType<S[K]> }

/**
 * Validates a plain object against `shape`: every present key is checked, unknown keys are
 * rejected with a suggestion of the nearest known key. Absent keys stay absent (defaults are
 * applied by the caller, so the schema is also the documentation of what may be set).
 */
export function object<S extends Shape>(shape: S): Check<Validated<S>> {
  return (value, path) => {
    if (value === undefined) return {} as Validated<S>
    if (!isPlainObject(value)) fail(path, 'an object', value)
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value)) {
      const inner = (value as Record<string, unknown>)[key]
      const check = Object.hasOwn(shape, key) ? shape[key] : undefined
      if (!check) {
        const parsl = Object.hasOwn(PARSL_NAMES, key) ? PARSL_NAMES[key] : undefined
        const proxystore = Object.hasOwn(PROXYSTORE_NAMES, key) ? PROXYSTORE_NAMES[key] : undefined
        const hint =
          parsl && Object.hasOwn(shape, parsl[0])
            ? `; that is Parsl's name: use '${parsl[0]}'${parsl[1] ? ` (${parsl[1]})` : ''}`
            : proxystore && Object.hasOwn(shape, proxystore)
            ? `; that is ProxyStore's name: use '${proxystore}'`
            : (() => {
                const suggestion = nearest(key, Object.keys(shape))
                return suggestion ? `; did you mean '${suggestion}'?` : ''
              })()
        throw new ConfigError(join(path, key), `is not a known option${hint} (known: ${Object.keys(shape).join(', ')})`)
      }
      if (inner !== undefined) out[key] = check(inner, join(path, key))
    }
    return out as Validated<S>
  }
}

export function optional<T>(check: Check<T>): Check<T | undefined> {
  return (value, path) => (value === undefined ? undefined : check(value, path))
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

// The closest known key, if close enough to be a likely typo: a small edit distance, or a
// shared start of at least four letters ('retry' -> 'retries').
/**
 * Parsl option names whose tsflow name is not a plain camelCase spelling of them, or whose unit
 * differs (Parsl counts seconds where tsflow counts ms): [tsflow option, note]. Users switching
 * from Parsl copy their configs; edit distance alone would suggest the wrong option or unit.
 */
const PARSL_NAMES: Record<string, readonly [string, string?]> = {
  max_workers: ['maxWorkersPerNode'],
  max_workers_per_node: ['maxWorkersPerNode'],
  worker_debug: ['logLevel', "logLevel: 'debug'"],
  heartbeat_threshold: ['heartbeatThresholdMs', "milliseconds; Parsl's is in seconds"],
  heartbeat_period: ['heartbeatPeriodMs', "milliseconds; Parsl's is in seconds"],
  cmd_timeout: ['cmdTimeoutMs', "milliseconds; Parsl's is in seconds"],
  max_idletime: ['maxIdleTimeMs', "milliseconds; Parsl's is in seconds"],
  strategy_period: ['strategyPeriodMs', "milliseconds; Parsl's is in seconds"],
  mem_per_node: ['memPerNode', 'GB, as in Parsl'],
}

/** The same for ProxyStore's names (its users bring its connector options along). */
const PROXYSTORE_NAMES: Record<string, string> = {
  store_dir: 'directory',
  hostname: 'host',
  cache_size: 'cacheSize',
  key_prefix: 'keyPrefix',
}

/** The candidate closest to `word` (a typo, or a Parsl snake_case name), if one is close enough. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  // Parsl's snake_case names: compare without the underscores (nodes_per_block -> nodesPerBlock).
  word = word.replace(/_/g, '')
  const lower = word.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const other = candidate.toLowerCase()
    const distance = editDistance(lower, other)
    let shared = 0
    while (shared < lower.length && lower[shared] === other[shared]) shared++
    const eligible = distance <= Math.max(2, Math.floor(word.length / 3)) || shared >= Math.min(4, lower.length)
    if (eligible && distance < bestDistance) {
      bestDistance = distance
      best = candidate
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = saved
    }
  }
  return row[b.length]!
}

/** What `pluginOption` needs to know about a kind of plug-in (executor, provider, launcher). */
export interface PluginKind<T> {
  /** the kind with an example, for messages: "an executor (e.g. new ThreadPoolExecutor())" */
  what: string
  isInstance(value: unknown): value is T
  /** the registered type names */
  types(): readonly string[]
  create(type: string, options: Record<string, unknown>): T
  validate(instance: T, path: string): void
  /** whether a bare type name (`'srun'`) is accepted as well as `{ type: 'srun' }` */
  acceptsName?: boolean
}

/**
 * An option that takes a plug-in: an instance, or a plain object `{ type, ...options }` naming a
 * registered type. Either way it is validated with the option's path, so its own errors read
 * `executors[0].provider.maxBlocks ...`.
 */
export function pluginOption<T>(kind: PluginKind<T>): Check<T> {
  return (value, path) => {
    const types = kind.types()
    const known = types.map((type) => `'${type}'`).join(', ')
    let instance: T
    if (kind.isInstance(value)) {
      instance = value
    } else if (kind.acceptsName && typeof value === 'string' && types.includes(value)) {
      instance = kind.create(value, {})
    } else if (isPlainObject(value)) {
      if (typeof value.type !== 'string' || !types.includes(value.type)) {
        const suggestion = typeof value.type === 'string' ? nearest(value.type, types) : undefined
        throw new ConfigError(join(path, 'type'), `must be one of ${known} (got ${JSON.stringify(value.type)})${suggestion ? `; did you mean '${suggestion}'?` : ''}`)
      }
      instance = kind.create(value.type, value)
    } else {
      throw new ConfigError(
        path,
        kind.acceptsName
          ? `must be ${kind.what}, one of ${known}, or { type, ...options }`
          : `must be ${kind.what} or { type: ${types.map((type) => `'${type}'`).join(' | ')}, ... }`,
      )
    }
    kind.validate(instance, path)
    return instance
  }
}
