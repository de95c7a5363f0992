/**
 * Every `node:diagnostics_channel` channel tsflow publishes in the workflow process, declared in
 * this one module so that users and tools (a monitoring writer, a progress view, a tracer) can
 * find them all and subscribe without tsflow knowing about them:
 *
 *   import { channels } from 'tsflow'
 *   channels.taskState.subscribe((message) => console.log(message.taskId, message.from, '->', message.to))
 *
 * or by name with `diagnostics_channel.subscribe('tsflow:task:state', listener)`.
 *
 * Publishers check `hasSubscribers` first, so a run nobody listens to builds no message objects:
 * the per-task path stays as cheap as without channels. Messages are plain objects made for each
 * publication; a subscriber may keep them. Listeners run synchronously inside the kernel, so a
 * slow one slows the run, and one that throws is reported by Node on the next tick (an
 * uncaughtException), not to the kernel.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import type { TaskStateValue } from './states.js'
import type { BlockEvent, ManagerEvent, ResourceSample } from '../protocol/monitoring.js'

/** `tsflow:task:state`: a task moved from one state to another (docs/monitoring.md). */
export interface TaskStateMessage {
  /** the kernel's run (`WorkflowStartMessage.runId`): tells apart the tasks of kernels sharing a process */
  readonly runId: string
  readonly taskId: number
  readonly appName: string
  /** the executor's label, once one was chosen for the task (undefined before, and for join apps) */
  readonly executor: string | undefined
  /**
   * The try this state belongs to: 0 until the first try starts; after a failed try, the retry's
   * `pending` already carries the next number.
   */
  readonly tryNumber: number
  /** a task's first message comes from `unsched`, the state it is created in */
  readonly from: TaskStateValue
  readonly to: TaskStateValue
  /** when the change happened, ms since the epoch */
  readonly timeMs: number
  /**
   * On `pending` from `unsched`: how many futures among the arguments and inputs the task waits
   * for (0 when it waits for none and launches at once); 0 in other changes.
   */
  readonly waitingOn: number
  /**
   * On `failed` and `dep_fail`: what the task failed with (as its future's exception: a remote
   * error keeps the stack from where it ran); undefined in other changes.
   */
  readonly error: unknown
}

/** `tsflow:task:retry`: a failed try is retried (published before the retry's `pending` state). */
export interface TaskRetryMessage {
  readonly runId: string
  readonly taskId: number
  readonly appName: string
  readonly executor: string | undefined
  /** the try that failed */
  readonly tryNumber: number
  /** what the failed try threw or was failed with */
  readonly cause: unknown
  /**
   * true for a try stopped by its block's walltime, retried without counting against `retries`
   * (BLOCK_WALLTIME_FREE_RETRIES)
   */
  readonly free: boolean
  /** the retry cost accumulated so far, compared with `retries` */
  readonly failCost: number
  readonly timeMs: number
}

/**
 * `tsflow:workflow:start`: a kernel started (its executors are up; tasks may be submitted). Block
 * events of its executors' first blocks, published while they start, come before it.
 */
export interface WorkflowStartMessage {
  /** unique per kernel start; the same in the end message */
  readonly runId: string
  readonly runDir: string
  /** executor labels */
  readonly executors: readonly string[]
  readonly timeMs: number
}

/** `tsflow:workflow:end`: a kernel's cleanup() finished (every task final, executors stopped). */
export interface WorkflowEndMessage {
  readonly runId: string
  readonly runDir: string
  /** how many tasks ended in each state (live states are 0 by then) */
  readonly counts: Readonly<Record<TaskStateValue, number>>
  readonly timeMs: number
}

/** `tsflow:block`: a provider block of one of the run's executors changed state. */
export interface BlockMessage extends BlockEvent {
  readonly runId: string
}

/** `tsflow:manager`: a manager (a node's worker pool) registered with an executor, or was lost. */
export interface ManagerMessage extends ManagerEvent {
  readonly runId: string
}

/** `tsflow:task:resource`: resource samples of running tasks, in batches as managers send them. */
export interface ResourceMessage {
  readonly runId: string
  readonly executor: string
  readonly samples: readonly ResourceSample[]
}

/** A diagnostics channel with its message type (Node's own typing says `unknown`). */
export interface TypedChannel<M> {
  readonly name: string | symbol
  readonly hasSubscribers: boolean
  publish(message: M): void
  subscribe(listener: (message: M, name: string | symbol) => void): void
  unsubscribe(listener: (message: M, name: string | symbol) => void): boolean
}

/** The channel names, for `diagnostics_channel.subscribe(name, ...)` and for tools that list them. */
export const CHANNEL_NAMES = {
  taskState: 'tsflow:task:state',
  taskRetry: 'tsflow:task:retry',
  workflowStart: 'tsflow:workflow:start',
  workflowEnd: 'tsflow:workflow:end',
  block: 'tsflow:block',
  manager: 'tsflow:manager',
  taskResource: 'tsflow:task:resource',
} as const

// Held here for the life of the process: Node keeps a channel's subscribers only while someone
// holds the channel object, and these are what the kernel publishes on.
const typed = <M>(name: string) => diagnosticsChannel.channel(name) as unknown as TypedChannel<M>

/** Every channel tsflow publishes on, by role. */
export const channels = Object.freeze({
  taskState: typed<TaskStateMessage>(CHANNEL_NAMES.taskState),
  taskRetry: typed<TaskRetryMessage>(CHANNEL_NAMES.taskRetry),
  workflowStart: typed<WorkflowStartMessage>(CHANNEL_NAMES.workflowStart),
  workflowEnd: typed<WorkflowEndMessage>(CHANNEL_NAMES.workflowEnd),
  block: typed<BlockMessage>(CHANNEL_NAMES.block),
  manager: typed<ManagerMessage>(CHANNEL_NAMES.manager),
  taskResource: typed<ResourceMessage>(CHANNEL_NAMES.taskResource),
})
