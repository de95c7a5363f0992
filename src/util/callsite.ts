import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, isAbsolute, join, sep } from 'node:path'

// tsflow's API layer (app wrappers, this finder): frames there are how the user's call reached
// us, not the user's module. Other tsflow modules that define apps (perf, benchmarks) are
// ordinary app-defining modules.
const DIST = dirname(dirname(fileURLToPath(import.meta.url))) + sep
const API_LAYER = [join(DIST, 'app') + sep, join(DIST, 'util') + sep, join(DIST, 'dataflow') + sep]

/**
 * The module URL of the first stack frame outside tsflow: the module that called the public
 * API. Returns undefined for code without a file (REPL, eval, `node -e`).
 *
 * Reads V8's structured call sites rather than the stack text: with --enable-source-maps the
 * text names the original .ts sources, while call sites name the files actually loaded.
 */
export function callerModuleUrl(): string | undefined {
  const previousPrepare = Error.prepareStackTrace
  const previousLimit = Error.stackTraceLimit
  let sites: NodeJS.CallSite[] = []
  try {
    Error.stackTraceLimit = 30
    Error.prepareStackTrace = (_error, callSites) => callSites
    const holder: { stack?: unknown } = {}
    Error.captureStackTrace(holder, callerModuleUrl)
    sites = (holder.stack as NodeJS.CallSite[] | undefined) ?? []
  } finally {
    Error.prepareStackTrace = previousPrepare
    Error.stackTraceLimit = previousLimit
  }
  for (const site of sites) {
    const location = site.getFileName()
    if (!location || location.startsWith('node:')) continue
    let path: string
    try {
      path = location.startsWith('file://') ? fileURLToPath(location) : location
    } catch {
      continue
    }
    if (isAbsolute(path) && API_LAYER.some((dir) => path.startsWith(dir))) continue
    // The caller's frame: only a real file can be imported by a worker (`node -e` code is
    // named like a file, "[eval1]", but is not one).
    if (!isAbsolute(path) || !existsSync(path)) return undefined
    return location.startsWith('file://') ? location : pathToFileURL(path).href
  }
  return undefined
}
