import type { File } from '../data/file.js'
import type { StdStreamTarget } from '../protocol/task.js'

/**
 * What a running task can know about itself. The function receives it as `this` (for
 * `function` declarations) and can call `taskContext()` (valid until its first `await`).
 */
export interface TaskContext {
  readonly taskId: number
  readonly tryNumber: number
  /** The resolved `inputs` of the call (futures replaced by their results). */
  readonly inputs: readonly unknown[]
  /** The declared `outputs` of the call. */
  readonly outputs: readonly File[]
  readonly stdout: StdStreamTarget | undefined
  readonly stderr: StdStreamTarget | undefined
}

const WORKER_FLAG = Symbol.for('tsflow.workerKind')
const globals = globalThis as Record<symbol, unknown>

/** Called once by each worker runtime (thread or process) when it starts. */
export function markWorker(kind: string): void {
  globals[WORKER_FLAG] = kind
}

/** True inside a tsflow worker, where starting a workflow is a mistake. */
export function inWorker(): boolean {
  return globals[WORKER_FLAG] !== undefined
}

let current: TaskContext | undefined

export function setCurrentTaskContext(context: TaskContext | undefined): void {
  current = context
}

/** The context of the task running now; throws outside a task. */
export function taskContext(): TaskContext {
  if (current === undefined) {
    throw new Error(
      'taskContext() was called outside a running task (or after the task\'s first await); ' +
        'in a `function` app, use `this` instead, which stays valid for the whole task',
    )
  }
  return current
}
