import { existsSync, readFileSync } from 'node:fs'
import { findSourceMap } from 'node:module'
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
  return callerSite()?.moduleUrl
}

/** The caller's frame outside tsflow: its module URL and position (1-based line and column). */
interface CallerSite {
  readonly moduleUrl: string | undefined
  readonly path: string | undefined
  readonly line: number | null
  readonly column: number | null
}

function callerSite(): CallerSite | undefined {
  const previousPrepare = Error.prepareStackTrace
  const previousLimit = Error.stackTraceLimit
  let sites: NodeJS.CallSite[] = []
  try {
    Error.stackTraceLimit = 30
    Error.prepareStackTrace = (_error, callSites) => callSites
    const holder: { stack?: unknown } = {}
    Error.captureStackTrace(holder, callerSite)
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
    if (!isAbsolute(path) || !existsSync(path)) return { moduleUrl: undefined, path: undefined, line: null, column: null }
    return { moduleUrl: location.startsWith('file://') ? location : pathToFileURL(path).href, path, line: site.getLineNumber(), column: site.getColumnNumber() }
  }
  return undefined
}

const sourceLines = new Map<string, string[] | undefined>()

/**
 * The variable the caller assigns a call of `apiName` to, read from its source line:
 * `const simulate = app((seed) => ...)` names the app `simulate`, as Python's `def` names a Parsl
 * app. An arrow function passed straight to app() has no name of its own, so without this every
 * such app would be "anonymous" in logs, errors and the monitoring dashboard. Undefined when the
 * line does not read that way (the name then stays the function's own, or "anonymous"). Kernel
 * and workers load the same file, so both sides infer the same name (it is part of the app's key).
 */
export function callerAssignedName(apiName: string): string | undefined {
  const site = callerSite()
  if (!site?.path || site.line === null) return undefined
  // Under a TypeScript loader (tsx) the frame's line is the compiled code's: map it back.
  let line = site.line
  try {
    const entry = findSourceMap(site.path)?.findEntry(site.line - 1, (site.column ?? 1) - 1) as { originalLine?: number } | undefined
    if (entry && typeof entry.originalLine === 'number') line = entry.originalLine + 1
  } catch {
    // no usable source map: the line as reported
  }
  let lines = sourceLines.get(site.path)
  if (!sourceLines.has(site.path)) {
    try {
      lines = readFileSync(site.path, 'utf8').split('\n')
    } catch {
      lines = undefined
    }
    sourceLines.set(site.path, lines)
  }
  const text = lines?.[line - 1]
  if (text === undefined) return undefined
  const pattern = new RegExp(`(?:^|[\\s;(])(?:export\\s+)?(?:const|let|var)\\s+([A-Za-z_$][\\w$]*)\\s*(?::[^=]+)?=\\s*(?:[\\w$]+\\.)?${apiName}\\s*[(<]`)
  return pattern.exec(text)?.[1]
}
