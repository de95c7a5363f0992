import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, isAbsolute, sep } from 'node:path'

// Everything below this directory is tsflow itself; call sites inside it are skipped.
const OWN_ROOT = dirname(dirname(fileURLToPath(import.meta.url))) + sep

/**
 * The module URL of the first stack frame outside tsflow: the module that called the public
 * API. Returns undefined for code without a file (REPL, eval, `node -e`).
 */
export function callerModuleUrl(): string | undefined {
  const holder: { stack?: string } = {}
  const previousLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 30
  Error.captureStackTrace(holder, callerModuleUrl)
  Error.stackTraceLimit = previousLimit
  for (const line of (holder.stack ?? '').split('\n').slice(1)) {
    const location = frameLocation(line)
    if (location === undefined) continue
    const path = location.startsWith('file://') ? fileURLToPath(location) : location
    if (!isAbsolute(path)) continue
    if (path.startsWith(OWN_ROOT)) continue
    if (path.startsWith('node:') || path.includes(`${sep}node_modules${sep}@tapjs${sep}`)) continue
    return location.startsWith('file://') ? location : pathToFileURL(path).href
  }
  return undefined
}

// Frames look like "    at fn (file:///a/b.js:1:2)" or "    at file:///a/b.js:1:2".
function frameLocation(line: string): string | undefined {
  const match = /\((.*):\d+:\d+\)\s*$/.exec(line) ?? /^\s*at (?:async )?(.*):\d+:\d+\s*$/.exec(line)
  const location = match?.[1]
  if (!location || location.startsWith('node:') || location.includes('<anonymous>')) return undefined
  return location
}
