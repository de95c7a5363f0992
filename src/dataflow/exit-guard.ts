/**
 * A process must never end quietly with futures unsettled. Node ends a process when its event
 * loop has nothing left to wait for, even while a kernel still counts outstanding tasks (a join
 * app awaiting a promise nothing will settle, an executor that lost track of a task): the
 * workflow's `await` simply never resumes and the exit code is 0. On 'beforeExit' with such
 * tasks, this fails them with an error saying why, prints the reason and sets exit code 1.
 */
import { ShutdownError } from '../errors.js'

export interface Stranded {
  readonly outstanding: number
  /** Fails every outstanding task with the error `errorFor` gives; returns how many. */
  failStranded(errorFor: (taskId: number, appName: string, state: string) => Error): number
}

const kernels = new Set<Stranded>()

function onBeforeExit(): void {
  for (const kernel of kernels) {
    const outstanding = kernel.outstanding
    if (outstanding === 0) continue
    const failed = kernel.failStranded(
      (taskId, appName, state) =>
        new ShutdownError(
          `task #${taskId} (${appName}) was still ${state} when the process ran out of work: nothing left in the ` +
            `event loop could finish it (for a join app: the promise it awaits never settles). The process exits with code 1`,
        ),
    )
    process.stderr.write(
      `tsflow: the event loop emptied with ${outstanding} task(s) unsettled; ${failed} failed with ShutdownError, ` +
        `exit code set to 1 (call cleanup() or use main() to end a workflow deliberately)\n`,
    )
    if (!process.exitCode) process.exitCode = 1
  }
}

/** Watches `kernel` until unguardExit(kernel). */
export function guardExit(kernel: Stranded): void {
  if (kernels.size === 0) process.on('beforeExit', onBeforeExit)
  kernels.add(kernel)
}

export function unguardExit(kernel: Stranded): void {
  if (!kernels.delete(kernel)) return
  if (kernels.size === 0) process.off('beforeExit', onBeforeExit)
}
