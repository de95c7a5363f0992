import type { AppDefinition, CallOptions } from './app-definition.js'
import type { AppFuture, Dependent, Future, FutureTask } from './future.js'
import { TaskState, type TaskStateValue } from './states.js'
import { resolveStdStream, targetPath, type StdStreamName } from './std-streams.js'
import type { StdStreamTarget } from '../protocol/task.js'

/** What a record needs from its kernel (the kernel itself; no closure per task). */
export interface TaskHost {
  cancelTask(record: TaskRecord): boolean
  dependencySettled(record: TaskRecord, dependency: Future<unknown>): void
  /** The run directory once started, where AUTO_LOGNAME streams go. */
  readonly startedRunDir: string | undefined
}

/**
 * The kernel's bookkeeping for one app call. Kept small: a workflow may hold a million of
 * them outstanding (bench/outstanding-memory).
 */
export class TaskRecord implements FutureTask, Dependent {
  state: TaskStateValue = TaskState.unsched
  /** tries started so far; the current try's number is tries - 1 */
  tries = 0
  failCost = 0
  /** tries ended by their block's walltime and retried without counting against retries */
  freeRetries = 0
  executor: string | undefined
  /** futures not yet settled among the arguments and inputs */
  waitingOn = 0
  memoKey: string | undefined
  future!: AppFuture<unknown>
  /**
   * The monitoring recorder's bookkeeping (monitoring/recorder.ts), so that a task's launch and
   * start wait on the task itself until its end is known, instead of going to the writer one by
   * one: its mode, its latest try's launch and start (ms after the recorder's epoch: small
   * integers), and the state code its last snapshot sent.
   */
  monitorMode = 0
  monitorLaunchedMs = 0
  monitorRunningMs = 0
  monitorSentCode = -1

  constructor(
    readonly id: number,
    readonly app: AppDefinition,
    public args: unknown[],
    readonly callOptions: CallOptions,
    private readonly host: TaskHost,
  ) {}

  get appName(): string {
    return this.app.name
  }

  cancel(): boolean {
    return this.host.cancelTask(this)
  }

  dependencySettled(dependency: Future<unknown>): void {
    this.host.dependencySettled(this, dependency)
  }

  /** Where the task's stream goes (the call's option, else the app's), resolved; undefined if not redirected. */
  stdStreamTarget(stream: StdStreamName): StdStreamTarget | undefined {
    const option = this.callOptions[stream] ?? this.app.options[stream]
    return option === undefined ? undefined : resolveStdStream(option, stream, this.id, this.app.name, this.host.startedRunDir)
  }

  stdStream(stream: StdStreamName): string | undefined {
    const target = this.stdStreamTarget(stream)
    return target === undefined ? undefined : targetPath(target)
  }
}
