/**
 * What the kernel tells the diagnostics channels of channels.ts: the messages, built here, out of
 * the kernel's hot path. The per-state call site tests `taskStateChannel.hasSubscribers` itself, so
 * a run nobody listens to makes no call at all; the rarer events test it here.
 */
import { channels } from './channels.js'
import type { ExecutorMonitor } from '../protocol/monitoring.js'
import { TaskState, type TaskStateValue } from './states.js'
import type { TaskRecord } from './task-record.js'

/** Read once per state change; a module constant saves the property lookups on the hot path. */
export const taskStateChannel = channels.taskState

/**
 * `runId` is the kernel's (a string it holds, so passing it costs a pointer); `error` is given for
 * `failed` and `dep_fail` only. Every message has the same fields, so subscribers' reads stay
 * monomorphic.
 */
export function publishState(runId: string, record: TaskRecord, from: TaskStateValue, to: TaskStateValue, error?: unknown): void {
  // Before the first try, and in a retry's `pending`, the state belongs to the next try.
  const tryNumber = to === TaskState.pending || to === TaskState.unsched || record.tries === 0 ? record.tries : record.tries - 1
  taskStateChannel.publish({
    runId,
    taskId: record.id,
    appName: record.appName,
    executor: record.executor,
    tryNumber,
    from,
    to,
    timeMs: Date.now(),
    waitingOn: to === TaskState.pending && from === TaskState.unsched ? record.waitingOn : 0,
    error,
  })
}

export function publishRetry(runId: string, record: TaskRecord, cause: unknown, free: boolean): void {
  if (!channels.taskRetry.hasSubscribers) return
  channels.taskRetry.publish({
    runId,
    taskId: record.id,
    appName: record.appName,
    executor: record.executor,
    tryNumber: record.tries - 1,
    cause,
    free,
    failCost: record.failCost,
    timeMs: Date.now(),
  })
}

export function publishWorkflowStart(runId: string, runDir: string, executors: string[]): void {
  if (channels.workflowStart.hasSubscribers) channels.workflowStart.publish({ runId, runDir, executors, timeMs: Date.now() })
}

export function publishWorkflowEnd(runId: string, runDir: string, counts: Readonly<Record<TaskStateValue, number>>): void {
  if (channels.workflowEnd.hasSubscribers) channels.workflowEnd.publish({ runId, runDir, counts: { ...counts }, timeMs: Date.now() })
}

/**
 * The `ExecutorHost.monitor` of a run: executors' block, manager and resource events go out on
 * the channels with the run's id. A throwing subscriber must not break an executor's loop, so
 * each publication is guarded (Node already reports a listener's throw on the next tick).
 */
export function executorMonitor(runId: () => string, resourceIntervalMs: number): ExecutorMonitor {
  return {
    resourceIntervalMs,
    block(event) {
      if (channels.block.hasSubscribers) channels.block.publish({ ...event, runId: runId() })
    },
    manager(event) {
      if (channels.manager.hasSubscribers) channels.manager.publish({ ...event, runId: runId() })
    },
    resources(executor, samples) {
      if (samples.length > 0 && channels.taskResource.hasSubscribers) channels.taskResource.publish({ runId: runId(), executor, samples })
    },
  }
}
