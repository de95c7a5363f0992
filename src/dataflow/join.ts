import { JoinError } from '../errors.js'
import type { TaskContextWire } from '../protocol/task.js'
import { setCurrentTaskContext, type TaskContext } from '../runtime/context.js'
import { ArgumentProblem, collectFutures, substituteFutures } from './dependencies.js'
import { Future } from './future.js'
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
  // A future is a thenable: Promise.resolve would adopt it and lose the JoinError and the
  // joining state, so futures (and plain values) are joined directly; only real promises
  // (an async join function) are awaited first.
  if (returned instanceof Future || typeof (returned as PromiseLike<unknown> | undefined)?.then !== 'function') {
    join(record, returned, done, onJoining)
    return
  }
  Promise.resolve(returned).then(
    (value) => join(record, value, done, onJoining),
    (error: unknown) => done(false, error),
  )
}

function join(record: TaskRecord, value: unknown, done: (ok: boolean, value: unknown) => void, onJoining: () => void): void {
  const inner: Future<unknown>[] = []
  try {
    collectFutures(value, inner)
  } catch (error) {
    // A getter in the returned value threw: the join fails with that error.
    done(false, error instanceof ArgumentProblem && error.cause !== undefined ? error.cause : error)
    return
  }
  if (inner.length === 0) {
    done(true, value)
    return
  }
  onJoining()
  let waiting = inner.length
  for (const future of inner) {
    future.onSettled(() => {
      if (--waiting > 0) return
      const failures = inner.filter((f) => !f.succeeded)
      if (failures.length > 0) {
        done(false, new JoinError(record.id, record.appName, failures.map((f) => f.taskId), failures.map((f) => f.exception())))
        return
      }
      let result: unknown
      try {
        result = substituteFutures(value)
      } catch (error) {
        done(false, error)
        return
      }
      done(true, result)
    })
  }
}
