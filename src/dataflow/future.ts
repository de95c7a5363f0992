import { inspect } from 'node:util'
import { ResultTimeout } from '../errors.js'
import type { File } from '../data/file.js'
import type { TaskStateValue } from './states.js'

/**
 * @internal A task waiting on futures: told which one settled. An object rather than a closure
 * per dependency edge keeps an outstanding task small (bench/outstanding-memory).
 */
export interface Dependent {
  dependencySettled(future: Future<unknown>): void
}
type Listener = (() => void) | Dependent

// Settling a future runs its listeners, which may settle other futures (a failure cascading
// down a chain of 100,000 dependents). They go through one work queue, drained by whoever
// settled first, so the stack stays flat however long the chain is. Entries are pairs:
// listener, then the future that settled.
const queue: (Listener | Future<unknown> | undefined)[] = []
let draining = false

function drain(): void {
  draining = true
  let failed = false
  let firstError: unknown
  let head = 0
  try {
    while (head < queue.length) {
      const listener = queue[head] as Listener
      const future = queue[head + 1] as Future<unknown>
      queue[head] = queue[head + 1] = undefined
      head += 2
      try {
        if (typeof listener === 'function') listener()
        else listener.dependencySettled(future)
      } catch (error) {
        // One throwing listener must not strand the others; the first error still surfaces.
        if (!failed) firstError = error
        failed = true
      }
    }
  } finally {
    queue.length = 0
    draining = false
  }
  if (failed) throw firstError
}

/**
 * The settle-once core shared by AppFuture and DataFuture. The kernel listens with plain
 * callbacks (cheap, no promise per task); a Promise is only created when user code awaits, so a
 * failed task nobody awaits raises no unhandled-rejection warning.
 */
export abstract class Future<T> implements PromiseLike<T> {
  private outcome: 0 | 1 | 2 = 0 // 0 pending, 1 resolved, 2 rejected
  private settledValue: unknown
  private listeners: Listener[] | Listener | undefined
  private promise: Promise<T> | undefined

  get done(): boolean {
    return this.outcome !== 0
  }

  // With then/catch/finally this makes a future usable wherever a Promise is expected.
  get [Symbol.toStringTag](): string {
    return this.constructor.name
  }

  /** The failure, once the future failed; undefined while pending or on success. */
  exception(): unknown {
    return this.outcome === 2 ? this.settledValue : undefined
  }

  /** True once settled successfully. */
  get succeeded(): boolean {
    return this.outcome === 1
  }

  /** The value of a settled future (throws its error if it failed). For kernel internals. */
  settledResult(): T {
    if (this.outcome === 2) throw this.settledValue
    return this.settledValue as T
  }

  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.asPromise().then(onFulfilled, onRejected)
  }

  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.asPromise().catch(onRejected)
  }

  finally(onFinally?: (() => void) | null): Promise<T> {
    return this.asPromise().finally(onFinally)
  }

  /** Waits for the result; rejects with ResultTimeout after `timeoutMs` (the task goes on). */
  result(options: { timeoutMs?: number } = {}): Promise<T> {
    const { timeoutMs } = options
    if (timeoutMs === undefined || this.outcome !== 0) return this.asPromise()
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ResultTimeout(this.taskId, timeoutMs, this.state)), timeoutMs)
      this.asPromise().then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }

  abstract get taskId(): number
  abstract get state(): TaskStateValue

  /** @internal Called once by the kernel. */
  settle(ok: boolean, value: unknown): void {
    if (this.outcome !== 0) return
    this.outcome = ok ? 1 : 2
    this.settledValue = value
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners === undefined) return
    if (Array.isArray(listeners)) for (const listener of listeners) queue.push(listener, this)
    else queue.push(listeners, this)
    if (!draining) drain()
  }

  /**
   * @internal Runs `listener` (a function, or a Dependent told which future settled) once
   * settled; at once if already settled.
   */
  onSettled(listener: Listener): void {
    if (this.outcome !== 0) {
      queue.push(listener, this)
      if (!draining) drain()
      return
    }
    if (this.listeners === undefined) this.listeners = listener
    else if (Array.isArray(this.listeners)) this.listeners.push(listener)
    else this.listeners = [this.listeners, listener]
  }

  private asPromise(): Promise<T> {
    if (this.promise) return this.promise
    if (this.outcome === 1) this.promise = Promise.resolve(this.settledValue as T)
    else if (this.outcome === 2) this.promise = Promise.reject(this.settledValue)
    else {
      this.promise = new Promise<T>((resolve, reject) => {
        this.onSettled(() => (this.outcome === 1 ? resolve(this.settledValue as T) : reject(this.settledValue)))
      })
    }
    return this.promise
  }
}

/** What the future needs to know about its task; the kernel's TaskRecord satisfies it. */
export interface FutureTask {
  readonly id: number
  readonly appName: string
  readonly state: TaskStateValue
  cancel(): boolean
  /** The path the task's stdout/stderr is sent to, if any. */
  stdStream?(stream: 'stdout' | 'stderr'): string | undefined
}

/** The future of an app call: awaitable, with the task's id, state and control. */
export class AppFuture<T = unknown> extends Future<T> {
  // Allocated only for calls that declare outputs: most futures share the empty list.
  private outputList: DataFuture[] | undefined

  constructor(private readonly task: FutureTask) {
    super()
  }

  /** One DataFuture per declared output File, in order. */
  get outputs(): readonly DataFuture[] {
    return this.outputList ?? NO_OUTPUTS
  }

  /** @internal Adds the DataFuture of a declared output. */
  addOutput(output: DataFuture): void {
    ;(this.outputList ??= []).push(output)
  }

  get taskId(): number {
    return this.task.id
  }

  get appName(): string {
    return this.task.appName
  }

  get state(): TaskStateValue {
    return this.task.state
  }

  /**
   * Cancels the task if it has not finished: a task still waiting (for dependencies or in an
   * executor queue) is cancelled at once; a running task only where the executor can stop it.
   * Returns true if the task will end in state `cancelled`.
   */
  cancel(): boolean {
    return this.task.cancel()
  }

  /**
   * The file the task's stdout goes to (AUTO_LOGNAME resolved), as given by the call or the app;
   * undefined when it is not redirected. Only bash apps redirect: other apps see it as `this.stdout`.
   */
  get stdout(): string | undefined {
    return this.task.stdStream?.('stdout')
  }

  /** The file the task's stderr goes to; undefined when it is not redirected. */
  get stderr(): string | undefined {
    return this.task.stdStream?.('stderr')
  }

  [inspect.custom](): string {
    return `AppFuture<task #${this.taskId} ${this.appName}: ${this.state}>`
  }
}

const NO_OUTPUTS: readonly DataFuture[] = Object.freeze([])

/** A File produced by a task; resolves to the File when the task succeeds. */
export class DataFuture extends Future<File> {
  constructor(
    readonly parent: AppFuture<unknown>,
    readonly file: File,
  ) {
    super()
    parent.onSettled(() => {
      const error = parent.exception()
      if (parent.succeeded) this.settle(true, file)
      else this.settle(false, error)
    })
  }

  get taskId(): number {
    return this.parent.taskId
  }

  get state(): TaskStateValue {
    return this.parent.state
  }

  get filepath(): string {
    return this.file.path
  }

  [inspect.custom](): string {
    return `DataFuture<${this.file.url} from task #${this.taskId}: ${this.state}>`
  }
}
