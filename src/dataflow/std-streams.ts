import { join } from 'node:path'
import { File } from '../data/file.js'
import type { StdStreamTarget } from '../protocol/task.js'

/**
 * `stdout: AUTO_LOGNAME` (or `stderr:`) names the stream's file after the task, under the run
 * directory: see autoLogPath. It is a registered symbol, so it is the same value in every copy
 * of the package, and it hashes the same in every call's memo key (the resolved path holds the
 * task id, which must not make identical calls differ).
 */
export const AUTO_LOGNAME: unique symbol = Symbol.for('tsflow.autoLogname')
/** Short alias of AUTO_LOGNAME. */
export const AUTO: typeof AUTO_LOGNAME = AUTO_LOGNAME

/** What `stdout`/`stderr` accept in app and call options. */
export type StdStreamOption = StdStreamTarget | File | typeof AUTO_LOGNAME

export type StdStreamName = 'stdout' | 'stderr'

const TASKS_PER_DIRECTORY = 10_000

/**
 * `<runDir>/task_logs/<NNNN>/task_<id>_<app>.stdout|.stderr`, where NNNN is the task id divided
 * by 10,000 (so no directory holds more than 10,000 tasks' logs). One file per task: retries
 * append to it, so it keeps every try's output in order.
 */
export function autoLogPath(runDir: string, taskId: number, appName: string, stream: StdStreamName): string {
  const bucket = String(Math.floor(taskId / TASKS_PER_DIRECTORY)).padStart(4, '0')
  // App names may hold anything (they are user-chosen); keep the file name portable.
  const safeName = appName.replace(/[^\w.-]/g, '_') || 'app'
  return join(runDir, 'task_logs', bucket, `task_${taskId}_${safeName}.${stream}`)
}

/** The wire form of a stream option; undefined for AUTO when there is no run directory. */
export function resolveStdStream(
  option: StdStreamOption,
  stream: StdStreamName,
  taskId: number,
  appName: string,
  runDir: string | undefined,
): StdStreamTarget | undefined {
  if (option === AUTO_LOGNAME) return runDir === undefined ? undefined : autoLogPath(runDir, taskId, appName, stream)
  if (typeof option === 'string') return option
  if (Array.isArray(option)) return [String(option[0]), option[1]]
  // A File, possibly from another copy of the package: its URL is what both agree on.
  return new File((option as File).url).path
}

/** The path a resolved target names. */
export function targetPath(target: StdStreamTarget): string {
  return typeof target === 'string' ? target : target[0]
}
