import { AppNotFound, FunctionNotTransportable, WorkflowInWorker } from '../errors.js'
import type { ImportsWire } from '../protocol/imports.js'

/**
 * How an app's function reaches a worker.
 *
 * `ref`: by reference to the module that defined the app and the app's key in that module. The
 * worker imports the module (once), which re-runs the module's `app(...)` calls; each registers
 * its function under the same key, so even functions that are not exported are found.
 *
 * `src`: the function's source text, compiled on the worker. For self-contained functions
 * defined where no module file exists (REPL, eval, generated code).
 *
 * `im` (either kind): the packages shipped with the function (proxy imports, protocol/imports.ts),
 * made available to the worker's module loader before the function is resolved.
 */
export type FunctionDescriptor =
  | { t: 'ref'; module: string; key: string; name: string; im?: ImportsWire }
  | { t: 'src'; source: string; name: string; im?: ImportsWire }

export type TransportMode = 'auto' | 'reference' | 'source'
type AnyFunction = (...args: never[]) => unknown

interface ModuleApps {
  byKey: Map<string, AnyFunction>
  keyOf: Map<AnyFunction, string>
  nameCounts: Map<string, number>
}

// Global so that several copies of tsflow in one process (or a user module importing tsflow
// through another path) still share one registry.
const REGISTRY_KEY = Symbol.for('tsflow.appRegistry')
const registry: Map<string, ModuleApps> = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] ??= new Map()) as Map<
  string,
  ModuleApps
>

/** Records that `moduleUrl` defines an app wrapping `fn`; returns the app's key in that module. */
export function registerAppFunction(moduleUrl: string, name: string, fn: AnyFunction): string {
  let apps = registry.get(moduleUrl)
  if (!apps) {
    apps = { byKey: new Map(), keyOf: new Map(), nameCounts: new Map() }
    registry.set(moduleUrl, apps)
  }
  const existing = apps.keyOf.get(fn)
  if (existing !== undefined) return existing
  // Keys are deterministic because a module's top level runs in the same order everywhere.
  const count = (apps.nameCounts.get(name) ?? 0) + 1
  apps.nameCounts.set(name, count)
  const key = count === 1 ? name : `${name}#${count}`
  apps.byKey.set(key, fn)
  apps.keyOf.set(fn, key)
  return key
}

export function describeFunction(
  fn: AnyFunction,
  appName: string,
  transport: TransportMode,
  moduleUrl: string | undefined,
): FunctionDescriptor {
  if (transport === 'reference' || (transport === 'auto' && moduleUrl !== undefined)) {
    if (moduleUrl === undefined) {
      throw new FunctionNotTransportable(
        appName,
        'it was defined outside any module file (REPL or eval), so workers cannot import it by reference; ' +
          "use { transport: 'source' } if the function is self-contained",
      )
    }
    return { t: 'ref', module: moduleUrl, key: registerAppFunction(moduleUrl, appName, fn), name: appName }
  }
  return { t: 'src', source: checkedSource(fn, appName), name: appName }
}

function checkedSource(fn: AnyFunction, appName: string): string {
  const source = Function.prototype.toString.call(fn)
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw new FunctionNotTransportable(
      appName,
      'it is a built-in or bound function, whose source is not available; wrap the call in a function of your own',
    )
  }
  if (/^class\b/.test(source)) {
    throw new FunctionNotTransportable(appName, 'it is a class, not a function; wrap the work in a function')
  }
  try {
    compileSource(source, false)
  } catch (error) {
    throw new FunctionNotTransportable(appName, `its source does not compile on its own (${(error as Error).message})`)
  }
  return source
}

// Method shorthand (`run(x) { ... }`) is not an expression on its own; wrap it in an object.
function compileSource(source: string, evaluate: boolean): AnyFunction | undefined {
  const candidates = [`(${source})`, `({${source}})`]
  let lastError: unknown
  for (const [index, text] of candidates.entries()) {
    try {
      if (!evaluate) {
        new Function(`return ${text}`)
        return undefined
      }
      const value = (0, eval)(text) as unknown
      const fn = index === 0 ? value : Object.values(value as object)[0]
      if (typeof fn === 'function') return fn as AnyFunction
    } catch (error) {
      lastError = error
    }
  }
  throw lastError instanceof Error ? lastError : new SyntaxError('not a function expression')
}

const resolved = new Map<string, AnyFunction>()

function cacheKey(descriptor: FunctionDescriptor): string {
  return descriptor.t === 'ref' ? `${descriptor.module}\0${descriptor.key}` : descriptor.source
}

/** The function for `descriptor` if this thread has resolved it before (the per-task fast path). */
export function cachedFunction(descriptor: FunctionDescriptor): AnyFunction | undefined {
  return resolved.get(cacheKey(descriptor))
}

/** Resolves a descriptor on a worker: imports the defining module or compiles the source. */
export async function resolveFunction(descriptor: FunctionDescriptor): Promise<AnyFunction> {
  const key = cacheKey(descriptor)
  const hit = resolved.get(key)
  if (hit) return hit
  const fn = descriptor.t === 'ref' ? await resolveReference(descriptor) : resolveSource(descriptor)
  resolved.set(key, fn)
  return fn
}

async function resolveReference(descriptor: Extract<FunctionDescriptor, { t: 'ref' }>): Promise<AnyFunction> {
  let moduleExports: Record<string, unknown>
  try {
    moduleExports = (await import(descriptor.module)) as Record<string, unknown>
  } catch (error) {
    if (error instanceof WorkflowInWorker) throw error
    throw new AppNotFound(
      `the worker could not import ${descriptor.module} to find app ${descriptor.name}: ${(error as Error)?.message ?? error}` +
        (String((error as Error)?.message).includes('Unknown file extension')
          ? ' (start the workflow with a TypeScript loader such as tsx, or compile it to JavaScript; workers inherit the loader flags of the workflow process)'
          : isMissingModule(error, descriptor.module)
            ? ` (that file is not on the worker's host: workers of an endpoint or of blocks on other nodes need the workflow's files at the same path, ` +
              `or give a self-contained app { transport: 'source' })`
            : ''),
      { cause: error },
    )
  }
  const fn = registry.get(descriptor.module)?.byKey.get(descriptor.key)
  if (fn) return fn
  const exported = moduleExports[descriptor.name]
  if (typeof exported === 'function') return exported as AnyFunction
  throw new AppNotFound(
    `app ${descriptor.name} was not defined when the worker imported ${descriptor.module}. Apps sent by reference ` +
      `must be created at the top level of a module (not inside a function, a condition or after an await that ` +
      `the worker does not reach), or use { transport: 'source' } for a self-contained function.`,
  )
}

/** Whether importing `module` failed because that file itself is missing (not one of its imports). */
function isMissingModule(error: unknown, module: string): boolean {
  const err = error as NodeJS.ErrnoException & { url?: string }
  if (err?.url === module) return true
  // Loader hooks (tsx, tap) may rethrow without the code; the message still names the file.
  const path = module.startsWith('file:') ? decodeURIComponent(new URL(module).pathname) : module
  return String(err?.message).includes(`Cannot find module '${path}'`)
}

function resolveSource(descriptor: Extract<FunctionDescriptor, { t: 'src' }>): AnyFunction {
  try {
    return compileSource(descriptor.source, true)!
  } catch (error) {
    throw new FunctionNotTransportable(descriptor.name, `its source failed to compile on the worker: ${(error as Error).message}`)
  }
}
