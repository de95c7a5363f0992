/**
 * The base of tsflow's one error family (errors.ts re-exports all of it): the stable codes, the
 * branded TsflowError whose `instanceof` works across package copies and boundaries, and
 * UsageError, which other modules' errors extend.
 */

const BRAND = Symbol.for('tsflow.error')

export const ErrorCode = {
  CONFIG: 'E_CONFIG',
  DEPENDENCY: 'E_DEPENDENCY',
  WALLTIME: 'E_WALLTIME',
  BASH_EXIT: 'E_BASH_EXIT',
  BAD_STD_STREAM: 'E_BAD_STD_STREAM',
  RESULT_TIMEOUT: 'E_RESULT_TIMEOUT',
  CANCELLED: 'E_CANCELLED',
  SERIALIZATION: 'E_SERIALIZATION',
  FUNCTION_TRANSPORT: 'E_FUNCTION_TRANSPORT',
  APP_NOT_FOUND: 'E_APP_NOT_FOUND',
  WORKFLOW_IN_WORKER: 'E_WORKFLOW_IN_WORKER',
  NATIVE_UNAVAILABLE: 'E_NATIVE_UNAVAILABLE',
  NATIVE: 'E_NATIVE',
  EXECUTOR: 'E_EXECUTOR',
  NO_EXECUTOR: 'E_NO_EXECUTOR',
  SHUTDOWN: 'E_SHUTDOWN',
  CHECKPOINT: 'E_CHECKPOINT',
  TASK_NOT_FOUND: 'E_TASK_NOT_FOUND',
  WORKER_LOST: 'E_WORKER_LOST',
  MANAGER_LOST: 'E_MANAGER_LOST',
  BLOCK_WALLTIME: 'E_BLOCK_WALLTIME',
  WALLTIME_EXCEEDS_BLOCK: 'E_WALLTIME_EXCEEDS_BLOCK',
  PROTOCOL: 'E_PROTOCOL',
  VERSION_MISMATCH: 'E_VERSION_MISMATCH',
  INTERCHANGE_LOST: 'E_INTERCHANGE_LOST',
  PROVIDER: 'E_PROVIDER',
  JOIN: 'E_JOIN',
  USAGE: 'E_USAGE',
  CONNECTOR: 'E_CONNECTOR',
  OBJECT_NOT_FOUND: 'E_OBJECT_NOT_FOUND',
  PROXY_RESOLVE: 'E_PROXY_RESOLVE',
  PROXY_FUTURE_TIMEOUT: 'E_PROXY_FUTURE_TIMEOUT',
  BORROW: 'E_BORROW',
  LIFETIME_ENDED: 'E_LIFETIME_ENDED',
  PACKAGE_NOT_FOUND: 'E_PACKAGE_NOT_FOUND',
  PACKAGE_PACK: 'E_PACKAGE_PACK',
  PROXY_IMPORT: 'E_PROXY_IMPORT',
  PACKAGE_UNPACK: 'E_PACKAGE_UNPACK',
  PACKAGE_UNPACK_TIMEOUT: 'E_PACKAGE_UNPACK_TIMEOUT',
  ENDPOINT_NOT_FOUND: 'E_ENDPOINT_NOT_FOUND',
  ENDPOINT_UNREACHABLE: 'E_ENDPOINT_UNREACHABLE',
  ENDPOINT_REFUSED: 'E_ENDPOINT_REFUSED',
  ENDPOINT_STOPPED: 'E_ENDPOINT_STOPPED',
  DDICT_FULL: 'E_DDICT_FULL',
  DDICT_KEY_NOT_FOUND: 'E_DDICT_KEY_NOT_FOUND',
  DDICT_TIMEOUT: 'E_DDICT_TIMEOUT',
  DDICT_UNREACHABLE: 'E_DDICT_UNREACHABLE',
  DDICT_DESTROYED: 'E_DDICT_DESTROYED',
  DDICT_FROZEN: 'E_DDICT_FROZEN',
  DDICT_START: 'E_DDICT_START',
} as const
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode]

export interface TsflowErrorOptions {
  cause?: unknown
}

export class TsflowError extends Error {
  /** Codes this class (and its subclasses) stand for; empty means "any tsflow error". */
  static readonly codes: readonly string[] = []
  readonly code: string

  constructor(code: string, message: string, options?: TsflowErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    Object.defineProperty(this, BRAND, { value: true, enumerable: false })
    Object.defineProperty(this, 'name', {
      value: new.target.name,
      enumerable: false,
      writable: true,
      configurable: true,
    })
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false
    if (!(value as Record<symbol, unknown>)[BRAND]) return false
    const codes = (this as unknown as typeof TsflowError).codes
    return codes.length === 0 || codes.includes((value as { code: string }).code)
  }
}

/** Marks an object (for example an error rebuilt from the wire) as a tsflow error. */
export function brandAsTsflowError(error: Error): void {
  Object.defineProperty(error, BRAND, { value: true, enumerable: false })
}

/**
 * A bad command line (unknown flag, bad value) or a call the API does not allow. Command-line
 * entry points print the message with their usage text and exit with code 2.
 */
export class UsageError extends TsflowError {
  static override readonly codes = [ErrorCode.USAGE]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.USAGE, message, options)
  }
}
