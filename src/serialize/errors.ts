import { inspect } from 'node:util'
import { brandAsTsflowError, ErrorCode } from '../errors.js'

/**
 * Errors as they cross a thread or process boundary. Keeps what a user needs to debug a remote
 * failure: class name, message, remote stack, `code`, `cause` chain, AggregateError members and
 * plain own properties (exitCode, errno, ...).
 */
export interface EncodedError {
  name: string
  message: string
  stack?: string
  code?: string | number
  tsflow?: boolean
  props?: Record<string, unknown>
  cause?: EncodedError | { value: unknown }
  errors?: EncodedError[]
}

const BUILTINS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
}
const BRAND = Symbol.for('tsflow.error')
const SKIPPED_PROPS = new Set(['name', 'message', 'stack', 'cause', 'code', 'errors'])
const MAX_DEPTH = 8

export function encodeError(error: unknown, depth = 0): EncodedError {
  if (!(error instanceof Error)) {
    return { name: 'NonErrorThrown', message: `a non-Error value was thrown: ${describe(error)}`, props: { value: plain(error) } }
  }
  const encoded: EncodedError = { name: error.name, message: error.message }
  if (error.stack) encoded.stack = error.stack
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' || typeof code === 'number') encoded.code = code
  // A proxy-imports failure thrown on Node's loader thread arrives without its brand (imports/hooks.ts).
  if ((error as unknown as Record<symbol, unknown>)[BRAND] || code === ErrorCode.PROXY_IMPORT) encoded.tsflow = true
  const props: Record<string, unknown> = {}
  let hasProps = false
  for (const key of Object.keys(error)) {
    if (SKIPPED_PROPS.has(key)) continue
    const value = plain((error as unknown as Record<string, unknown>)[key])
    if (value !== undefined) {
      props[key] = value
      hasProps = true
    }
  }
  if (hasProps) encoded.props = props
  if (error.cause !== undefined && depth < MAX_DEPTH) {
    encoded.cause = error.cause instanceof Error ? encodeError(error.cause, depth + 1) : { value: plain(error.cause) }
  }
  if (error instanceof AggregateError && depth < MAX_DEPTH) {
    encoded.errors = error.errors.map((inner) => encodeError(inner, depth + 1))
  }
  return encoded
}

export function decodeError(encoded: EncodedError): Error {
  const Ctor = BUILTINS[encoded.name] ?? Error
  const cause =
    encoded.cause === undefined ? undefined : 'value' in encoded.cause ? encoded.cause.value : decodeError(encoded.cause)
  const error: Error = encoded.errors
    ? new AggregateError(encoded.errors.map(decodeError), encoded.message)
    : new Ctor(encoded.message)
  if (cause !== undefined) Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true })
  if (!(encoded.name in BUILTINS)) {
    Object.defineProperty(error, 'name', { value: encoded.name, writable: true, configurable: true })
  }
  if (encoded.stack) error.stack = encoded.stack
  if (encoded.code !== undefined) Object.assign(error, { code: encoded.code })
  if (encoded.props) Object.assign(error, encoded.props)
  if (encoded.tsflow) brandAsTsflowError(error)
  return error
}

// Only data that survives any codec goes into props: primitives, arrays and plain objects.
function plain(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value === 'bigint') return value.toString()
  if (depth > 4) return undefined
  if (Array.isArray(value)) return value.slice(0, 100).map((item) => plain(item, depth + 1))
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {}
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      const converted = plain(inner, depth + 1)
      if (converted !== undefined) out[key] = converted
    }
    return out
  }
  return undefined
}

function describe(value: unknown): string {
  try {
    const text = typeof value === 'string' ? JSON.stringify(value) : inspect(value, { depth: 2, breakLength: Infinity })
    return text.length > 200 ? `${text.slice(0, 199)}…` : text
  } catch {
    return typeof value
  }
}
