import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { inWorker } from '../runtime/context.js'

/**
 * True when the module with this `import.meta` is the script node was started with, and this
 * is not a tsflow worker. (A worker imports the workflow module to find its apps.)
 */
export function isMainModule(meta: ImportMeta): boolean {
  if (inWorker()) return false
  const entry = process.argv[1]
  if (!entry) return false
  try {
    const self = realpathSync(fileURLToPath(meta.url))
    const started = realpathSync(entry)
    return self === started || self.replace(/\.[cm]?[jt]s$/, '') === started
  } catch {
    return false
  }
}

/**
 * Runs the workflow body only when this module is the entry point, never when a worker imports
 * the module for its apps: the one-line guard for workflow scripts that define apps.
 * A failure is printed and sets a non-zero exit code.
 */
export function main(meta: ImportMeta, body: () => unknown): Promise<void> | undefined {
  if (!isMainModule(meta)) return undefined
  return Promise.resolve()
    .then(body)
    .then(
      () => undefined,
      (error: unknown) => {
        console.error(error)
        process.exitCode = 1
      },
    )
}
