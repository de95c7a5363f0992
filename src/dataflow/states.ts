/**
 * The life of a task. A task moves forward through these states; `pending` is revisited when a
 * failed try is retried. Once in a final state it never changes again.
 *
 * - unsched:   created, not yet examined by the kernel
 * - pending:   waiting for futures in its arguments/inputs (or for a retry)
 * - launched:  handed to an executor, waiting in its queue
 * - running:   the executor reports it started on a worker
 * - joining:   a join app's function returned; waiting for the futures it returned
 * - exec_done: finished successfully                      (final)
 * - memo_done: answered from the memo table or a checkpoint (final)
 * - failed:    failed, and no retries were left             (final)
 * - dep_fail:  not run because a dependency failed         (final)
 * - cancelled: cancelled by the user or by shutdown        (final)
 */
export const TaskState = {
  unsched: 'unsched',
  pending: 'pending',
  launched: 'launched',
  running: 'running',
  joining: 'joining',
  exec_done: 'exec_done',
  memo_done: 'memo_done',
  failed: 'failed',
  dep_fail: 'dep_fail',
  cancelled: 'cancelled',
} as const
export type TaskStateValue = (typeof TaskState)[keyof typeof TaskState]

export const FINAL_STATES: ReadonlySet<TaskStateValue> = new Set([
  TaskState.exec_done,
  TaskState.memo_done,
  TaskState.failed,
  TaskState.dep_fail,
  TaskState.cancelled,
])

export function isFinal(state: TaskStateValue): boolean {
  return FINAL_STATES.has(state)
}
