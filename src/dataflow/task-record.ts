import type { AppDefinition, CallOptions } from './app-definition.js'
import type { AppFuture, FutureTask } from './future.js'
import { TaskState, type TaskStateValue } from './states.js'

/** The kernel's bookkeeping for one app call. */
export class TaskRecord implements FutureTask {
  state: TaskStateValue = TaskState.unsched
  /** tries started so far; the current try's number is tries - 1 */
  tries = 0
  failCost = 0
  executor: string | undefined
  /** futures not yet settled among the arguments and inputs */
  waitingOn = 0
  memoKey: string | undefined
  readonly submittedAt = Date.now()
  finishedAt: number | undefined
  future!: AppFuture<unknown>

  constructor(
    readonly id: number,
    readonly app: AppDefinition,
    public args: unknown[],
    readonly callOptions: CallOptions,
    private readonly cancelFn: (record: TaskRecord) => boolean,
  ) {}

  get appName(): string {
    return this.app.name
  }

  cancel(): boolean {
    return this.cancelFn(this)
  }
}
