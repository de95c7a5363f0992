import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { inWorker } from '../runtime/context.js'
import { dfk, type DataFlowKernel } from '../dataflow/kernel.js'
import { openStores } from '../proxy/store.js'

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
 *
 * However the body ends, the kernel it loaded (or started) is cleaned up afterwards, so a body
 * that forgets `cleanup()` still ends its process: after a normal return, tasks still outstanding
 * are waited for first (as the thread executor's workers would keep the process running for
 * them); after a throw, the error is printed, outstanding tasks are cancelled and the exit code
 * is 1.
 */
export function main(meta: ImportMeta, body: () => unknown): Promise<void> | undefined {
  if (!isMainModule(meta)) return undefined
  return Promise.resolve()
    .then(body)
    .then(
      async () => {
        const kernel = activeKernel()
        if (kernel) {
          await kernel.waitForCurrentTasks()
          await kernel.cleanup()
        }
        warnOpenStores()
      },
      async (error: unknown) => {
        console.error(error)
        process.exitCode = 1
        await activeKernel()?.cleanup({ deadlineMs: 0 })
      },
    )
    .catch((error: unknown) => {
      console.error('tsflow: cleaning up after the workflow body failed:', error)
      process.exitCode = 1
    })
}

/** The kernel the body loaded, or the only one it started; undefined once cleaned up. */
function activeKernel(): DataFlowKernel | undefined {
  try {
    return dfk()
  } catch {
    return undefined
  }
}

/**
 * A store whose connector holds the process open (zmq serving its objects) and was never closed
 * would make the script hang after its body returned, silently: say which and what to do.
 */
function warnOpenStores(): void {
  for (const store of openStores()) {
    if (store.connector.keepsProcessAlive !== true) continue
    console.error(
      `tsflow: the workflow body returned, but store '${store.name}' is still open and its connector ${store.connector.label} ` +
        'keeps this process running (it serves its objects until closed); await store.close() at the end of the body',
    )
  }
}
