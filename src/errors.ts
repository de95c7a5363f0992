/**
 * The one error family of tsflow. Every error a user can meet carries a stable `code`
 * (documented in docs/errors.md) so scripts can branch on it without parsing messages.
 *
 * `instanceof` works across duplicate copies of the package (two versions in one
 * node_modules tree, or an error rebuilt after crossing a thread/process boundary) because
 * classes match on a global brand plus the code, not on prototype identity.
 */
import { ErrorCode, TsflowError, type TsflowErrorOptions } from './errors-base.js'

export * from './errors-base.js'
export * from './errors-data.js'
export * from './errors-endpoint.js'
export * from './errors-ddict.js'

/** A configuration mistake: `path` names the offending option, e.g. `executors[0].maxThreads`. */
export class ConfigError extends TsflowError {
  static override readonly codes = [ErrorCode.CONFIG]
  readonly path: string
  constructor(path: string, problem: string, options?: TsflowErrorOptions) {
    super(ErrorCode.CONFIG, path ? `${path} ${problem}` : problem, options)
    this.path = path
  }
}

/**
 * A task could not run because a task it depends on failed. `cause` is that failure (for a
 * chain, the dependency's own DependencyError); `rootCause` is the first real failure. The
 * message names the direct dependencies and the root cause only, so its size does not grow
 * with the depth of the chain.
 */
export class DependencyError extends TsflowError {
  static override readonly codes = [ErrorCode.DEPENDENCY]
  readonly taskId: number
  readonly dependencyTaskIds: number[]
  declare private readonly root: unknown
  /** The task whose failure started the cascade (when known). */
  declare readonly rootTaskId: number | undefined
  /** How many tasks the failure passed through before this one (1 = a direct failure). */
  declare readonly depth: number

  constructor(taskId: number, appName: string, dependencyTaskIds: number[], cause: unknown) {
    const deps = dependencyTaskIds.map((id) => `#${id}`).join(', ')
    // Stored, not walked: a cascade down 100,000 tasks builds one error per task.
    const nested = cause instanceof DependencyError && typeof (cause as { depth?: unknown }).depth === 'number'
    const root: unknown = nested ? cause.rootCause : cause instanceof DependencyError ? walkToRoot(cause) : cause
    const rootTaskId = nested ? cause.rootTaskId : cause instanceof DependencyError ? undefined : dependencyTaskIds[0]
    const depth = nested ? cause.depth + 1 : 1
    const why = describeCause(root)
    const where = depth > 1 ? `; root cause${rootTaskId === undefined ? '' : ` (task #${rootTaskId}, ${depth} levels up)`}: ${why}` : `: ${why}`
    // No stack trace: it would only show the kernel's cascade, and capturing it is most of the
    // cost of failing a chain of 100,000 tasks. The root cause keeps its own stack.
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      super(ErrorCode.DEPENDENCY, `task #${taskId} (${appName}) was not run because its dependency ${deps || '(an input)'} failed${where}`, {
        cause,
      })
    } finally {
      Error.stackTraceLimit = stackTraceLimit
    }
    this.taskId = taskId
    this.dependencyTaskIds = dependencyTaskIds
    // Not enumerable: they would otherwise travel as plain properties when the error is encoded.
    Object.defineProperty(this, 'root', { value: root, enumerable: false })
    Object.defineProperty(this, 'rootTaskId', { value: rootTaskId, enumerable: false })
    Object.defineProperty(this, 'depth', { value: depth, enumerable: false })
  }

  /** The first failure in the dependency chain that was not itself a DependencyError. */
  get rootCause(): unknown {
    return this.root
  }
}

const MAX_CAUSE_TEXT = 1000

function describeCause(cause: unknown): string {
  let text: string
  try {
    text = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
  } catch {
    text = typeof cause
  }
  return text.length > MAX_CAUSE_TEXT ? `${text.slice(0, MAX_CAUSE_TEXT - 1)}…` : text
}

// A DependencyError rebuilt from the wire has no stored root: follow its causes.
function walkToRoot(error: unknown): unknown {
  let current = error
  while (current instanceof DependencyError) {
    if (Object.prototype.hasOwnProperty.call(current, 'root')) return (current as unknown as { root: unknown }).root
    current = (current as Error).cause
  }
  return current
}

export class WalltimeExceeded extends TsflowError {
  static override readonly codes = [ErrorCode.WALLTIME]
  readonly walltimeSeconds: number
  constructor(taskId: number, appName: string, walltimeSeconds: number) {
    super(
      ErrorCode.WALLTIME,
      `task #${taskId} (${appName}) exceeded its walltime of ${walltimeSeconds} s and was stopped`,
    )
    this.walltimeSeconds = walltimeSeconds
  }
}

export class BashExitFailure extends TsflowError {
  static override readonly codes = [ErrorCode.BASH_EXIT]
  readonly exitCode: number | null
  readonly signal: string | null
  readonly command: string
  constructor(appName: string, command: string, exitCode: number | null, signal: string | null, detail = '') {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`
    super(ErrorCode.BASH_EXIT, `bash app ${appName} ${how}: ${abbreviate(command)}${detail}`)
    this.exitCode = exitCode
    this.signal = signal
    this.command = command
  }
}

/**
 * A bash app's stdout or stderr file could not be opened where the task ran (a directory, a
 * path under a regular file, no permission). Raised before the command starts.
 */
export class BadStdStreamFile extends TsflowError {
  static override readonly codes = [ErrorCode.BAD_STD_STREAM]
  readonly stream: 'stdout' | 'stderr'
  readonly path: string
  constructor(taskId: number, appName: string, stream: 'stdout' | 'stderr', path: string, cause: unknown) {
    super(
      ErrorCode.BAD_STD_STREAM,
      `task #${taskId} (${appName}) could not open its ${stream} file ${path}: ${whyNotOpened(cause)}; ` +
        `give the path of a file that can be written there (missing parent directories are created)`,
      { cause },
    )
    this.stream = stream
    this.path = path
  }
}

function whyNotOpened(cause: unknown): string {
  const code = (cause as { code?: unknown } | null)?.code
  if (code === 'EISDIR') return 'it is a directory'
  if (code === 'ENOTDIR' || code === 'EEXIST') return 'a component of its parent path is a regular file, not a directory'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'EROFS') return 'the file system is read-only'
  return cause instanceof Error ? cause.message : String(cause)
}

export class ResultTimeout extends TsflowError {
  static override readonly codes = [ErrorCode.RESULT_TIMEOUT]
  constructor(taskId: number, timeoutMs: number, state: string) {
    super(
      ErrorCode.RESULT_TIMEOUT,
      `task #${taskId} had no result after ${timeoutMs} ms (state: ${state}); the task itself goes on`,
    )
  }
}

export class TaskCancelled extends TsflowError {
  static override readonly codes = [ErrorCode.CANCELLED]
  constructor(taskId: number, appName: string, reason = 'cancelled by the user') {
    super(ErrorCode.CANCELLED, `task #${taskId} (${appName}) was ${reason}`)
  }
}

export class SerializationError extends TsflowError {
  static override readonly codes = [ErrorCode.SERIALIZATION]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.SERIALIZATION, message, options)
  }
}

export class FunctionNotTransportable extends TsflowError {
  static override readonly codes = [ErrorCode.FUNCTION_TRANSPORT]
  constructor(appName: string, why: string) {
    super(ErrorCode.FUNCTION_TRANSPORT, `app ${appName} cannot be sent to a worker: ${why}`)
  }
}

export class AppNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.APP_NOT_FOUND]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.APP_NOT_FOUND, message, options)
  }
}

export class WorkflowInWorker extends TsflowError {
  static override readonly codes = [ErrorCode.WORKFLOW_IN_WORKER]
  constructor(what: string) {
    super(
      ErrorCode.WORKFLOW_IN_WORKER,
      `${what} was called inside a tsflow worker. The worker imported your workflow module to find an app ` +
        `defined there, and its top level tried to start a second workflow. Put the workflow body in ` +
        `main(import.meta, async () => { ... }) (exported by tsflow), which runs only when the module is ` +
        `the entry point, or define the apps in a module of their own.`,
    )
  }
}

export class NativeAddonUnavailable extends TsflowError {
  static override readonly codes = [ErrorCode.NATIVE_UNAVAILABLE]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.NATIVE_UNAVAILABLE, message, options)
  }
}

export class NativeError extends TsflowError {
  static override readonly codes = [ErrorCode.NATIVE]
  readonly syscall: string
  readonly errno: number
  constructor(message: string, syscall: string, errno: number) {
    super(ErrorCode.NATIVE, message)
    this.syscall = syscall
    this.errno = errno
  }
}

export class ExecutorError extends TsflowError {
  static override readonly codes = [ErrorCode.EXECUTOR]
  readonly executorLabel: string
  constructor(executorLabel: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.EXECUTOR, `executor ${executorLabel}: ${message}`, options)
    this.executorLabel = executorLabel
  }
}

export class NoSuchExecutor extends TsflowError {
  static override readonly codes = [ErrorCode.NO_EXECUTOR]
  constructor(appName: string, wanted: readonly string[], known: readonly string[]) {
    super(
      ErrorCode.NO_EXECUTOR,
      `app ${appName} asks for executor ${wanted.map((w) => `'${w}'`).join(' or ')}, but the loaded config ` +
        `has only ${known.map((k) => `'${k}'`).join(', ') || 'none'}; fix the app's executors option or add that executor`,
    )
  }
}

export class ShutdownError extends TsflowError {
  static override readonly codes = [ErrorCode.SHUTDOWN]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.SHUTDOWN, message, options)
  }
}

export class CheckpointError extends TsflowError {
  static override readonly codes = [ErrorCode.CHECKPOINT]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.CHECKPOINT, message, options)
  }
}

export class TaskNotFound extends TsflowError {
  static override readonly codes = [ErrorCode.TASK_NOT_FOUND]
  constructor(message: string) {
    super(ErrorCode.TASK_NOT_FOUND, message)
  }
}

/** Futures returned by a join app failed; `cause` is the first failure, `errors` all of them. */
export class JoinError extends TsflowError {
  static override readonly codes = [ErrorCode.JOIN]
  readonly failedTaskIds: number[]
  readonly errors: unknown[]
  constructor(taskId: number, appName: string, failedTaskIds: number[], errors: unknown[]) {
    const first = errors[0]
    const why = first instanceof Error ? `${first.name}: ${first.message}` : String(first)
    super(
      ErrorCode.JOIN,
      `join app ${appName} (task #${taskId}): ${failedTaskIds.length} of the futures it returned failed ` +
        `(${failedTaskIds.map((id) => `#${id}`).join(', ')}); first: ${why}`,
      { cause: first },
    )
    this.failedTaskIds = failedTaskIds
    this.errors = errors
  }
}

/** A worker (thread or process) died while running the task. */
export class WorkerLost extends TsflowError {
  static override readonly codes = [ErrorCode.WORKER_LOST]
  readonly exitCode: number | null
  readonly signal: string | null
  constructor(taskId: number, where: string, exitCode: number | null, signal: string | null) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`
    super(ErrorCode.WORKER_LOST, `the worker running task #${taskId} on ${where} ${how} before the task finished`)
    this.exitCode = exitCode
    this.signal = signal
  }
}

/** A manager (one node's worker pool) stopped answering; its in-flight tasks fail with this. */
export class ManagerLost extends TsflowError {
  static override readonly codes = [ErrorCode.MANAGER_LOST]
  readonly managerId: string
  readonly host: string
  readonly lastHeartbeat: number
  constructor(taskId: number, managerId: string, host: string, lastHeartbeat: number, why: string) {
    super(
      ErrorCode.MANAGER_LOST,
      `task #${taskId} was lost with manager ${managerId} on ${host}: ${why} (last heartbeat ${new Date(lastHeartbeat).toISOString()})`,
    )
    this.managerId = managerId
    this.host = host
    this.lastHeartbeat = lastHeartbeat
  }
}

/**
 * The task was running (or waiting on a manager) when its block reached the end of its walltime:
 * the scheduler took the node away, the task did nothing wrong. The kernel retries it without
 * counting the try against the app's `retries` (a few times at most, see the kernel).
 */
export class BlockWalltimeReached extends TsflowError {
  static override readonly codes = [ErrorCode.BLOCK_WALLTIME]
  readonly blockId: string
  constructor(taskId: number, where: string, blockId: string, why: string) {
    super(
      ErrorCode.BLOCK_WALLTIME,
      `task #${taskId} was stopped because block ${blockId} reached the end of its walltime (${where}: ${why}); ` +
        `such a try is retried on another block without counting against the task's retries`,
    )
    this.blockId = blockId
  }
}

/** The task declares a walltime no block of its executor can ever give it; it fails at once. */
export class WalltimeExceedsBlock extends TsflowError {
  static override readonly codes = [ErrorCode.WALLTIME_EXCEEDS_BLOCK]
  readonly walltimeSeconds: number
  readonly blockWalltimeSeconds: number
  constructor(taskId: number, appName: string, walltimeSeconds: number, blockWalltimeSeconds: number, where: string, marginMs: number) {
    super(
      ErrorCode.WALLTIME_EXCEEDS_BLOCK,
      `task #${taskId} (${appName}) declares a walltime of ${walltimeSeconds} s, but the blocks of ${where} have a walltime of ` +
        `${blockWalltimeSeconds} s (less a safety margin of ${marginMs / 1000} s), so no block could ever run it; ` +
        `lower the task's walltime or raise the provider's walltime`,
    )
    this.walltimeSeconds = walltimeSeconds
    this.blockWalltimeSeconds = blockWalltimeSeconds
  }
}

/** A malformed, truncated or unknown message. */
export class ProtocolError extends TsflowError {
  static override readonly codes = [ErrorCode.PROTOCOL]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.PROTOCOL, message, options)
  }
}

/** A peer speaking another protocol or tsflow version. */
export class VersionMismatch extends TsflowError {
  static override readonly codes = [ErrorCode.VERSION_MISMATCH]
  constructor(peer: string, theirs: { protocol: number; version: string }, ours: { protocol: number; version: string }) {
    super(
      ErrorCode.VERSION_MISMATCH,
      `${peer} speaks protocol ${theirs.protocol} (tsflow ${theirs.version}) but this side speaks protocol ` +
        `${ours.protocol} (tsflow ${ours.version}); install the same tsflow version everywhere`,
    )
  }
}

/** The interchange process died or stopped answering; pending tasks fail with this. */
export class InterchangeLost extends TsflowError {
  static override readonly codes = [ErrorCode.INTERCHANGE_LOST]
  constructor(message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.INTERCHANGE_LOST, message, options)
  }
}

/** A provider could not start, poll or cancel a block. */
export class ProviderError extends TsflowError {
  static override readonly codes = [ErrorCode.PROVIDER]
  readonly provider: string
  constructor(provider: string, message: string, options?: TsflowErrorOptions) {
    super(ErrorCode.PROVIDER, `provider ${provider}: ${message}`, options)
    this.provider = provider
  }
}


function abbreviate(text: string, max = 200): string {
  const oneLine = text.replace(/\s+/g, ' ').trim()
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`
}
