/**
 * The data layer's errors (proxy/, and imports/ for proxy imports), part of the one error family
 * errors.ts exports.
 */
import { ErrorCode, TsflowError, UsageError, type TsflowErrorOptions } from './errors-base.js'

/** A data connector failed (I/O, a back end that does not answer); the message names the connector and where it points. */
export class ConnectorError extends TsflowError {
  static override readonly codes = [ErrorCode.CONNECTOR]
  readonly connector: string
  constructor(connector: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.CONNECTOR, `connector ${connector}: ${message}`, options)
    this.connector = connector
  }
}

/** A key that a connector or store does not hold: never put, already evicted, or written by a writer that crashed. */
export class ObjectNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.OBJECT_NOT_FOUND]
  readonly connector: string
  readonly key: string
  constructor(connector: string, key: string, detail?: string) {
    super(
      ErrorCode.OBJECT_NOT_FOUND,
      `connector ${connector} has no object ${key}${detail ? ` (${detail})` : ''}; it was never stored, was evicted, or its writer did not finish`,
    )
    this.connector = connector
    this.key = key
  }
}

/** A proxy could not resolve its target; names the store and key, and the connector's error is the `cause`. */
export class ProxyResolveError extends TsflowError {
  static override readonly codes = [ErrorCode.PROXY_RESOLVE]
  readonly store: string
  readonly key: string
  constructor(store: string, key: string, options?: TsflowErrorOptions) {
    const why = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(ErrorCode.PROXY_RESOLVE, `proxy of store '${store}' could not resolve key ${key}${why}`, options)
    this.store = store
    this.key = key
  }
}

/**
 * A value a proxy cannot stand for (null, undefined, a boolean, a proxy), refused when the proxy
 * is made; `skipNonProxiable` passes such values through instead. A kind of UsageError that keeps
 * its code (`E_USAGE`, what this refusal always was), told apart by `notProxiable`, which
 * survives the wire as an own property.
 */
export class NotProxiable extends UsageError {
  readonly notProxiable = true
  static override [Symbol.hasInstance](value: unknown): boolean {
    return super[Symbol.hasInstance](value) && (value as { notProxiable?: unknown }).notProxiable === true
  }
}

/** A proxy future's value was not set within its timeout; names the store and key. */
export class ProxyFutureTimeout extends TsflowError {
  static override readonly codes = [ErrorCode.PROXY_FUTURE_TIMEOUT]
  readonly store: string
  readonly key: string
  readonly timeoutMs: number
  constructor(store: string, key: string, timeoutMs: number) {
    super(
      ErrorCode.PROXY_FUTURE_TIMEOUT,
      `no value was set for key ${key} of store '${store}' within ${timeoutMs} ms; did its producer fail, or does it need a longer timeoutMs?`,
    )
    this.store = store
    this.key = key
    this.timeoutMs = timeoutMs
  }
}

/** Which ownership rule a BorrowError is about (docs/proxy.md, "Ownership"). */
export type BorrowRule = 'borrowed' | 'mut-borrowed' | 'moved' | 'disposed' | 'released' | 'not-owned' | 'read-only'

/**
 * An owned proxy or a borrow of it was used against the ownership rules: a second borrow next to
 * a mutable one, dispose/move/update while borrowed, use after move, dispose or release. `rule`
 * names which; the message names the store and key.
 */
export class BorrowError extends TsflowError {
  static override readonly codes = [ErrorCode.BORROW]
  readonly rule: BorrowRule
  readonly store: string
  readonly key: string
  constructor(rule: BorrowRule, store: string, key: string, message: string) {
    super(ErrorCode.BORROW, `${message} (object ${key} of store '${store}')`)
    this.rule = rule
    this.store = store
    this.key = key
  }
}

/** A lifetime that has ended (closed, or its lease expired) was given a new object. */
export class LifetimeEnded extends TsflowError {
  static override readonly codes = [ErrorCode.LIFETIME_ENDED]
  readonly lifetime: string
  constructor(lifetime: string, detail = '') {
    super(ErrorCode.LIFETIME_ENDED, `lifetime ${lifetime} has ended${detail ? ` (${detail})` : ''}; it takes no new objects, make a new lifetime`)
    this.lifetime = lifetime
  }
}

/** A package an app imports (or a package it depends on) that Node's resolution cannot find. */
export class PackageNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.PACKAGE_NOT_FOUND]
  readonly packageName: string
  readonly importer: string
  constructor(packageName: string, importer: string, searched: string) {
    super(
      ErrorCode.PACKAGE_NOT_FOUND,
      `package '${packageName}' imported by ${importer} is not installed (looked in node_modules from ${searched} up); ` +
        `install it where the workflow runs (npm install ${packageName}) or list the packages by hand with modules: [...]`,
    )
    this.packageName = packageName
    this.importer = importer
  }
}

/** A traced package could not be packed for shipping (proxy imports): its directory could not be read. */
export class PackagePackError extends TsflowError {
  static override readonly codes = [ErrorCode.PACKAGE_PACK]
  readonly packageName: string
  readonly directory: string
  constructor(packageName: string, directory: string, reason: string, options?: TsflowErrorOptions) {
    super(
      ErrorCode.PACKAGE_PACK,
      `cannot pack package '${packageName}' from ${directory}: ${reason}; make its files readable, ` +
        `or leave it out of proxy imports (list the packages to ship by hand with modules: [...])`,
      options,
    )
    this.packageName = packageName
    this.directory = directory
  }
}

/**
 * A package shipped with an app's tasks (proxy imports) could not be made available where the
 * task runs: fetching or unpacking it failed, so importing it fails with this error.
 */
export class ProxyImportFailed extends TsflowError {
  static override readonly codes = [ErrorCode.PROXY_IMPORT]
  readonly packageName: string
  readonly importer: string
  constructor(packageName: string, importer: string, detail: string, options?: TsflowErrorOptions) {
    super(
      ErrorCode.PROXY_IMPORT,
      `shipped package '${packageName}' imported by ${importer} is not available on this node: ${detail}; ` +
        `check that the proxyImports store is reachable from the workers and still holds the package, and that the node cache directory is writable`,
      options,
    )
    this.packageName = packageName
    this.importer = importer
  }
}

/**
 * A shipped package could not be fetched from its store or unpacked into a node's cache
 * (imports/unpack.ts). Nothing half-written is left behind: the next task tries again.
 */
export class PackageUnpackError extends TsflowError {
  static override readonly codes = [ErrorCode.PACKAGE_UNPACK]
  readonly packageName: string
  readonly directory: string
  constructor(packageName: string, key: string, directory: string, reason: string, options?: TsflowErrorOptions) {
    super(ErrorCode.PACKAGE_UNPACK, `cannot unpack package '${packageName}' (store key ${key}) into ${directory}: ${reason}`, options)
    this.packageName = packageName
    this.directory = directory
  }
}

/**
 * Waited too long for a package to appear unpacked in a node's cache: another process held its
 * lock (and kept refreshing it) the whole time, or nobody was unpacking it.
 */
export class PackageUnpackTimeout extends TsflowError {
  static override readonly codes = [ErrorCode.PACKAGE_UNPACK_TIMEOUT]
  readonly packageName: string
  readonly lockPath: string
  constructor(packageName: string, directory: string, lockPath: string, timeoutMs: number, state: string) {
    super(
      ErrorCode.PACKAGE_UNPACK_TIMEOUT,
      `package '${packageName}' was not unpacked into ${directory} within ${timeoutMs} ms: ${state}. ` +
        `If that process is gone for good, remove the lock ${lockPath} (or call cleanImportsCache); otherwise raise the timeout`,
    )
    this.packageName = packageName
    this.lockPath = lockPath
  }
}
