import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, isAbsolute, sep } from 'node:path'

// Everything below this directory is tsflow itself; call sites inside it are skipped.
const OWN_ROOT = dirname(dirname(fileURLToPath(import.meta.url))) + sep

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
    if (isAbsolute(path) && path.startsWith(OWN_ROOT)) continue
    // The caller's frame: only a real file can be imported by a worker (`node -e` code is
    // named like a file, "[eval1]", but is not one).
    if (!isAbsolute(path) || !existsSync(path)) return undefined
    return location.startsWith('file://') ? location : pathToFileURL(path).href
  }
  return undefined
}
