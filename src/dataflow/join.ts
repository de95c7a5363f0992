import { JoinError } from '../errors.js'
import type { TaskContextWire } from '../protocol/task.js'
import { setCurrentTaskContext, type TaskContext } from '../runtime/context.js'
import { collectFutures, substituteFutures } from './dependencies.js'
import type { Future } from './future.js'
import type { TaskRecord } from './task-record.js'

/**
 * Runs a join app in the workflow process: its function returns futures (directly, or inside
 * arrays and plain objects); the task completes with their results once all have settled.
 */
export function runJoinApp(
  record: TaskRecord,
  ctx: TaskContextWire | undefined,
  done: (ok: boolean, value: unknown) => void,
  onJoining: () => void,
): void {
  const context: TaskContext = {
    taskId: record.id,
    tryNumber: record.tries - 1,
    inputs: ctx?.inputs ?? [],
    outputs: ctx?.outputs ?? [],
    stdout: ctx?.stdout,
    stderr: ctx?.stderr,
  }
  let returned: unknown
  setCurrentTaskContext(context)
  try {
    returned = (record.app.fn as (this: TaskContext, ...args: unknown[]) => unknown).apply(context, record.args)
  } catch (error) {
    done(false, error)
    return
  } finally {
    setCurrentTaskContext(undefined)
  }
  Promise.resolve(returned).then(
    (value) => {
      const inner: Future<unknown>[] = []
      collectFutures(value, inner)
      if (inner.length === 0) return done(true, value)
      onJoining()
      let waiting = inner.length
      for (const future of inner) {
        future.onSettled(() => {
          if (--waiting > 0) return
          const failures = inner.filter((f) => !f.succeeded)
          if (failures.length === 0) done(true, substituteFutures(value))
          else done(false, new JoinError(record.id, record.appName, failures.map((f) => f.taskId), failures.map((f) => f.exception())))
        })
      }
    },
    (error: unknown) => done(false, error),
  )
}
