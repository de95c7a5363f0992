/**
 * The executor option `proxyImports` (docs/proxy-imports.md "The executor option"), the caller's
 * side: for each function an executor sees, the npm packages its app needs are traced, packed and
 * put into the option's store once, and a copy of the function's descriptor carrying the manifest
 * (`im`, protocol/imports.ts) travels instead of the original. Workers hand the manifest to their
 * module loader before they resolve the function (runtime/execute.ts).
 *
 * Tracing and packing are loaded on first use, so an executor without the option loads neither.
 */
import { readdirSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { hostname } from 'node:os'
import { basename, isAbsolute, join as joinPath } from 'node:path'
import { ConfigError, ExecutorError, TsflowError } from '../errors.js'
import type { ImportsWire, ShippedPackageWire } from '../protocol/imports.js'
import { CACHE_DIR_PLACEHOLDERS } from '../protocol/imports.js'
import type { TracedImports } from '../imports/trace.js'
import type { PackMemo } from '../imports/pack.js'
import { Store, type StoreConfig } from '../proxy/store.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'
import { settledWithin } from '../util/deferred.js'
import type { Logger } from '../util/logger.js'
import { anyOf, arrayOf, boolean, join, literal, object, oneOf, string, type Check } from '../util/schema.js'
import type { ExecutorTask } from './base.js'
import { executorStoreOption, openExecutorStore, type ExecutorProxyOptions } from './proxying.js'

/** The executor option `proxyImports` (thread and high-throughput executors). */
export interface ExecutorImportsOptions {
  /**
   * Where the packed packages go: a Store, or a store config the executor builds when it starts and
   * closes at shutdown. Its connector must be one the workers reach (not `local`).
   */
  store: ExecutorProxyOptions['store']
  /**
   * 'trace' (default): each app's defining module, and the workflow's files it imports, are read
   * and the packages they import are shipped, with their dependencies. A list: exactly these
   * packages (and their dependencies), no tracing.
   */
  packages?: 'trace' | string[]
  /** Packages shipped with every app besides those traced (e.g. ones loaded by `import(variable)`). */
  modules?: string[]
  /**
   * The node-local directory packages are unpacked into, on the node where tasks run; `{block}` and
   * `{host}` are replaced there. Default: under /dev/shm when present, else the temporary directory.
   */
  cacheDir?: string
  /** Compress the packed packages (smaller transfers, slower packing). Default false. */
  compress?: boolean
  /**
   * Where the packed packages are kept on the workflow's host across runs, so an unchanged package
   * is not packed again: a directory, or false for no such cache. Default `~/.cache/tsflow/packs`.
   */
  packCacheDir?: string | false
  /**
   * 'never' (default): the packed packages stay in the store and the unpacked copies in the node
   * cache, for later runs to reuse. 'shutdown': at shutdown the executor evicts what it put and
   * removes the unpacked copies from this host's cache.
   */
  cleanup?: 'never' | 'shutdown'
}

export interface ResolvedImportsOption {
  store: Store | StoreConfig
  packages: 'trace' | string[]
  modules: string[]
  cacheDir: string | undefined
  compress: boolean
  packCacheDir: string | false | undefined
  cleanup: 'never' | 'shutdown'
}

/** Packages never shipped: the workers run tsflow already, and it must be the same copy. */
export const NEVER_SHIPPED = ['tsflow'] as const

/**
 * A package name (or a specifier inside one, 'lodash/fp'), as `packages` and `modules` take them:
 * not a path, not a URL, not a built-in.
 */
export const packageName: Check<string> = (value, path) => {
  const text = string(value, path)
  if (text.startsWith('.') || text.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(text)) {
    throw new ConfigError(path, `must be a package name such as 'mathjs' or '@scope/name', not a path or URL (got ${JSON.stringify(text)})`)
  }
  if (isBuiltin(text)) throw new ConfigError(path, `is ${JSON.stringify(text)}, a Node built-in, which every worker has; leave it out`)
  if (text.startsWith('@') && !/^@[^/]+\/[^/]+/.test(text)) throw new ConfigError(path, `is ${JSON.stringify(text)}: a scoped package is named '@scope/name'`)
  return text
}

const cacheDirOption: Check<string> = (value, path) => {
  const text = string(value, path)
  const unknown = text.match(/\{[^}]*\}/g)?.filter((p) => !(CACHE_DIR_PLACEHOLDERS as readonly string[]).includes(p))
  if (unknown?.length) throw new ConfigError(path, `holds ${unknown.join(', ')}; the placeholders are ${CACHE_DIR_PLACEHOLDERS.join(' and ')}`)
  if (!isAbsolute(text)) throw new ConfigError(path, `must be an absolute path (got ${JSON.stringify(text)}): it is used on every node, whatever a worker's directory`)
  return text
}

const optionShape = object({
  store: executorStoreOption,
  packages: anyOf<'trace' | string[]>("'trace' or a list of package names", literal('trace') as Check<'trace' | string[]>, arrayOf(packageName)),
  modules: arrayOf(packageName),
  cacheDir: cacheDirOption,
  compress: boolean,
  packCacheDir: anyOf<string | false>('a directory or false', string as Check<string | false>, literal(false)),
  cleanup: oneOf('never', 'shutdown'),
})

/** The config check of the `proxyImports` option; errors name `executors[0].proxyImports.store` and so on. */
export const proxyImportsOption: Check<ResolvedImportsOption> = (value, path) => {
  if (value instanceof Store) throw new ConfigError(path, `must be { store, packages?, ... }, not a Store itself: write proxyImports: { store } (got the Store '${value.name}')`)
  const checked = optionShape(value, path)
  if (checked.store === undefined) throw new ConfigError(join(path, 'store'), 'is required: a Store, or a store config { name, connector }, that the workers reach')
  if (Array.isArray(checked.packages) && checked.packages.length === 0) {
    throw new ConfigError(join(path, 'packages'), "is an empty list, which ships nothing; leave it out to trace each app's imports")
  }
  return {
    store: checked.store,
    packages: checked.packages ?? 'trace',
    modules: checked.modules ?? [],
    cacheDir: checked.cacheDir,
    compress: checked.compress ?? false,
    packCacheDir: checked.packCacheDir,
    cleanup: checked.cleanup ?? 'never',
  }
}

/** A task waiting for the manifest of its function. */
interface Waiting {
  task: ExecutorTask
  ready: (task: ExecutorTask) => void
  failed: (error: Error) => void
}

/**
 * The caller's side of the option, one per executor. `submit` hands a task on synchronously when
 * its function was shipped before; the first task of a function (and those that come while its
 * packages are packed) wait for the manifest, and fail with the build's error (PackageNotFound
 * names the package and the module that imports it). Builds run one at a time, so a package two
 * apps share is packed and put once.
 */
export class ExecutorImports {
  readonly store: Store
  private readonly owned: boolean
  /** the descriptor that travels, by the kernel's descriptor: the same object for every task of an app */
  private readonly shipped = new WeakMap<FunctionDescriptor, FunctionDescriptor>()
  private readonly building = new Map<FunctionDescriptor, Map<number, Waiting>>()
  /** the manifests built, for cleanup */
  private readonly manifests: ImportsWire[] = []
  /** the last build: the next one starts after it */
  private chain: Promise<unknown> = Promise.resolve()
  private closed = false
  private memo: PackMemo | undefined

  constructor(
    private readonly option: ResolvedImportsOption,
    /** names the executor in errors */
    private readonly label: string,
    /** where a failed cleanup is reported (shutdown goes on) */
    private readonly logger: Pick<Logger, 'warn'> | undefined,
  ) {
    ;({ store: this.store, owned: this.owned } = openExecutorStore(option.store))
  }

  describe(): Record<string, unknown> {
    return {
      store: this.store.name,
      connector: this.store.connector.label,
      packages: this.option.packages,
      ...(this.option.cacheDir ? { cacheDir: this.option.cacheDir } : {}),
    }
  }

  /** Hands `task` to `ready` with the descriptor that carries its manifest: at once when it was built, else once it is. */
  submit(task: ExecutorTask, ready: (task: ExecutorTask) => void, failed: (error: Error) => void): void {
    const shipped = this.shipped.get(task.fn)
    if (shipped !== undefined) return ready(shipped === task.fn ? task : { ...task, fn: shipped })
    let waiting = this.building.get(task.fn)
    if (waiting === undefined) {
      waiting = new Map()
      this.building.set(task.fn, waiting)
      this.build(task.fn, task.modules, waiting)
    }
    waiting.set(task.id, { task, ready, failed })
  }

  private build(fn: FunctionDescriptor, appModules: readonly string[] | undefined, waiting: Map<number, Waiting>): void {
    const built = this.chain.then(() => this.manifest(fn, appModules))
    this.chain = built.catch(() => {})
    built.then(
      (im) => {
        const travelling: FunctionDescriptor = im ? { ...fn, im } : fn
        if (im) this.manifests.push(im)
        this.shipped.set(fn, travelling)
        this.building.delete(fn)
        for (const { task, ready } of waiting.values()) ready(travelling === task.fn ? task : { ...task, fn: travelling })
      },
      (error: unknown) => {
        // Not remembered: a later task of the app tries again (the package may be installed by then).
        this.building.delete(fn)
        const failure =
          // PackageNotFound, a packing or store error: each names what is wrong already.
          error instanceof TsflowError
            ? error
            : new ExecutorError(this.label, `the packages app ${fn.name} imports could not be shipped (proxyImports): ${(error as Error)?.message ?? error}`, { cause: error })
        for (const { failed } of waiting.values()) failed(failure)
      },
    )
  }

  /** The manifest of one function's packages; undefined when it needs none. */
  private async manifest(fn: FunctionDescriptor, appModules: readonly string[] | undefined): Promise<ImportsWire | undefined> {
    if (this.closed) throw new ExecutorError(this.label, `shut down before the packages of app ${fn.name} were shipped`)
    const { packages, modules, compress, cacheDir, packCacheDir } = this.option
    const listed = [...(packages === 'trace' ? [] : packages), ...modules, ...(appModules ?? [])]
    const exclude = NEVER_SHIPPED
    const [{ traceImports }, { shipPackages, createPackMemo }] = await Promise.all([import('../imports/trace.js'), import('../imports/pack.js')])
    let traced: TracedImports
    if (fn.t === 'ref' && fn.module.startsWith('file:')) {
      traced = await traceImports(fn.module, { modules: listed, only: packages !== 'trace', exclude })
      // Not errors (the workflow's own files exist where it runs), but what a task may miss on a worker.
      for (const { specifier, importer, reason } of traced.untraced ?? []) {
        this.logger?.warn(`${this.label}: proxyImports of app ${fn.name}: '${specifier}' imported by ${importer} is not traced: ${reason}`)
      }
    } else {
      // No module file to read (source-transported apps): only the listed packages, found from the workflow's directory.
      if (listed.length === 0) return undefined
      traced = await traceImports(joinPath(process.cwd(), `[app ${fn.name}]`), { modules: listed, only: true, exclude })
    }
    if (traced.packages.length === 0) return undefined
    // This executor's own memo: what it put is known put until its shutdown (which may evict it), not beyond.
    this.memo ??= createPackMemo()
    return shipPackages(traced, this.store, {
      compress,
      memo: this.memo,
      ...(packCacheDir !== undefined ? { packCacheDir } : {}),
      ...(cacheDir !== undefined ? { cacheDir } : {}),
    })
  }

  /** Drops a task waiting for its manifest (cancelled); it is returned when it was one. */
  drop(taskId: number): ExecutorTask | undefined {
    for (const waiting of this.building.values()) {
      const entry = waiting.get(taskId)
      if (entry) {
        waiting.delete(taskId)
        return entry.task
      }
    }
    return undefined
  }

  /** The tasks still waiting for manifests, dropped (shutdown). */
  dropAll(): ExecutorTask[] {
    const tasks: ExecutorTask[] = []
    for (const waiting of this.building.values()) {
      for (const { task } of waiting.values()) tasks.push(task)
      waiting.clear()
    }
    return tasks
  }

  /** Waits (up to `deadlineMs`) for a build under way, cleans up as the option says, closes the store if the executor built it. */
  async close(deadlineMs: number): Promise<void> {
    this.closed = true
    await settledWithin(this.chain, deadlineMs)
    if (this.option.cleanup === 'shutdown') await this.cleanup().catch((error: unknown) => this.logger?.warn((error as Error).message))
    if (this.owned) await this.store.close()
  }

  /**
   * cleanup: 'shutdown': what was put is evicted, and the unpacked copies of the packages shipped
   * are removed from this host's node cache (the one the thread executor's workers, and HTEX's on
   * this host, use); other packages in that cache (other runs, other workflows) are kept.
   */
  private async cleanup(): Promise<void> {
    const shipped = new Map<string, ShippedPackageWire>()
    for (const manifest of this.manifests) for (const pkg of manifest.packages) shipped.set(pkg.hash, pkg)
    if (shipped.size === 0) return
    await Promise.all([...shipped.values()].map((pkg) => this.store.evict(pkg.key as never).catch(() => {})))
    const { cleanImportsCache, defaultCacheDir, expandCacheDir, packageDir } = await import('../imports/unpack.js')
    const cacheDir = expandCacheDir(this.option.cacheDir ?? defaultCacheDir(), { block: process.env.TSFLOW_BLOCK_ID ?? 'local', host: hostname() })
    const ours = new Set([...shipped.values()].map((pkg) => basename(packageDir(cacheDir, pkg))))
    let entries: string[]
    try {
      entries = readdirSync(cacheDir)
    } catch {
      return // nothing was unpacked on this host
    }
    // Package entries end in '-<16 hex digits of the hash>' (packageDir), with suffixes for markers and locks.
    const keep = new Set<string>()
    for (const entry of entries) {
      const match = /^(.+-([0-9a-f]{16}))(?:\..*)?$/.exec(entry)
      if (match && !ours.has(match[1]!)) keep.add(match[2]!)
    }
    try {
      cleanImportsCache(cacheDir, { keep: [...keep] })
    } catch (error) {
      throw new ExecutorError(this.label, `could not clean the proxy-imports cache ${cacheDir}: ${(error as Error).message}`, { cause: error })
    }
  }
}
