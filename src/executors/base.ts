import type { Logger } from '../util/logger.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'
import type { TaskContextWire, TaskKindValue } from '../protocol/task.js'
import type { ResourceSpec } from '../protocol/resources.js'
import type { ExecutorMonitor } from '../protocol/monitoring.js'

/** A task as the kernel hands it to an executor: arguments already resolved. */
export interface ExecutorTask {
  id: number
  try: number
  appName: string
  fn: FunctionDescriptor
  kind: TaskKindValue
  args: unknown[]
  ctx?: TaskContextWire
  /** seconds; the executor stops the task when it runs longer */
  walltime?: number
  /** higher runs first among queued tasks */
  priority: number
  resources?: ResourceSpec
  /** the app's `modules` option: packages shipped with it by an executor's `proxyImports` (the same array for every task of the app) */
  modules?: readonly string[]
}

export type { ResourceSpec }

export type TaskOutcome = { ok: true; value: unknown } | { ok: false; error: Error }

/** What the kernel gives an executor when starting it. */
export interface ExecutorHost {
  /** This executor's directory inside the run directory, for logs and scratch files. */
  readonly runDir: string
  readonly logger: Logger
  /** Report a task's final outcome for one try. Reports for stale tries are ignored. */
  taskDone(taskId: number, tryNumber: number, outcome: TaskOutcome): void
  /** Optional: the task started running (left the executor's queue). */
  taskRunning(taskId: number, tryNumber: number): void
  /**
   * Monitoring events only the executor sees: block lifecycle, manager registrations and losses,
   * per-task resource samples (docs/monitoring.md). Always present when the kernel starts an
   * executor (optional for executors started by other hosts, such as an endpoint).
   */
  readonly monitor?: ExecutorMonitor
}

/**
 * The executor plug-in interface. An executor must report every submitted task exactly once
 * through `host.taskDone` (success, failure, cancellation or shutdown): the kernel relies on it
 * to never leave a future unresolved.
 */
export interface Executor {
  readonly label: string
  /** A short type name, as used in plain-object configs (`{ type: 'threads' }`). */
  readonly type: string
  /** Validates options, naming problems relative to `path` (e.g. `executors[0]`). */
  validate(path: string): void
  start(host: ExecutorHost): Promise<void>
  /** Takes a task; never throws for task-level problems (those are reported via taskDone). */
  submit(task: ExecutorTask): void
  /** Tries to stop a submitted task; true if it will be reported as cancelled. */
  cancel(taskId: number): boolean
  /** Tasks submitted and not yet reported. */
  readonly outstanding: number
  /** Stops the executor: waits up to `deadlineMs` for running tasks, then stops them. */
  shutdown(deadlineMs: number): Promise<void>
  /** Settings worth recording next to a benchmark result. */
  describe(): Record<string, unknown>
}
