import { ExecutorError } from '../errors.js'
import type { ExecutorHost, ExecutorTask, TaskOutcome } from './base.js'

/**
 * Hands one task's outcome to the kernel from an executor's receive loop. Whatever the kernel
 * runs when a future settles (dependents, memo and checkpoint bookkeeping, callbacks) runs inside
 * this call: if it throws, the error is logged naming the task and the task is reported failed
 * with that error, and the caller's loop goes on to the next outcome. One throwing handler must
 * never end the loop that reports every other task.
 */
export function deliverOutcome(
  host: ExecutorHost,
  label: string,
  task: Pick<ExecutorTask, 'id' | 'try' | 'appName'>,
  outcome: TaskOutcome,
): void {
  try {
    host.taskDone(task.id, task.try, outcome)
    return
  } catch (error) {
    const failure = new ExecutorError(
      label,
      `handling the ${outcome.ok ? 'result' : 'failure'} of task #${task.id} (${task.appName}) failed in the workflow process: ` +
        `${(error as Error)?.message ?? String(error)}; the task is reported failed`,
      { cause: error },
    )
    host.logger.error(failure.message, error)
    try {
      // Ignored by the kernel if the task already reached a final state before the throw.
      host.taskDone(task.id, task.try, { ok: false, error: failure })
    } catch (again) {
      host.logger.error(`reporting task #${task.id} (${task.appName}) as failed threw as well`, again)
    }
  }
}
