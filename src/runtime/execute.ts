import { ProxyImportFailed, SerializationError, TsflowError } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import { cachedFunction, resolveFunction, type FunctionDescriptor } from '../serialize/function-ref.js'
import { TaskKind, type ResultWire, type TaskBatchWire, type TaskWire } from '../protocol/task.js'
import type { ImportsWire } from '../protocol/imports.js'
import { runBashCommand } from './bash.js'
import { dropOwnedArguments, ownedArrivalMark, ownedArrived } from './owned-args.js'
import { setCurrentTaskContext, type TaskContext } from './context.js'
import { batchMayHoldProxies, forgetTargets, proxiesIn, resolveArguments, storeLargeResult } from './proxies.js'
// Registers the codec extension of a DDict (0x2a) wherever tasks run, so a DDict argument arrives
// as an attached handle; node-redis is loaded only when it is used.
import '../ddict/client.js'

type AnyFunction = (this: TaskContext, ...args: unknown[]) => unknown

/**
 * What the caller of runBatch may want to hear before the batch ends: results of tasks already
 * finished (so a short task is not reported only when the longest task of its batch ends), and
 * the moment a task's function is called (its walltime starts then, not when the batch arrived
 * or while the app's module was being imported).
 */
export interface BatchHooks {
  /** results of finished tasks, by their index in batch.tasks; they are left out of the returned array */
  results?(indexes: number[], results: ResultWire[]): void
  /** the function of batch.tasks[index] is about to be called; only for tasks with a walltime */
  started?(index: number): void
  /** called once the batch is done: the longest time one of its tasks took, in milliseconds */
  slowest?(ms: number): void
}

/**
 * In a synchronous run, a task that took this long sends the results held (its own and those
 * before it) at once, so a short task is not reported only when a long task after it ends...
 */
export const EARLY_RESULTS_MS = 1
/** ...and results of quick tasks are held at most this long, so a batch of no-op tasks stays one message. */
export const HOLD_RESULTS_MS = 10

/**
 * Runs a batch of tasks where it landed (a worker thread or process) and returns their results,
 * by task index. Synchronous tasks complete within this call and the batch is returned
 * synchronously; only when a task returns a promise (or a function must first be imported) is a
 * promise returned. With `hooks.results`, results may be handed over before the batch ends; the
 * returned array then has holes where they were.
 */
export function runBatch(batch: TaskBatchWire, hooks?: BatchHooks): (ResultWire | undefined)[] | Promise<(ResultWire | undefined)[]> {
  const fns: (AnyFunction | undefined)[] = batch.fns.map((descriptor) => cachedFunction(descriptor) as AnyFunction | undefined)
  const proxies = batchMayHoldProxies()
  if (fns.includes(undefined)) return resolveThenRun(batch, fns, hooks, proxies)
  return runResolved(batch, fns as AnyFunction[], [], hooks, proxies)
}

async function resolveThenRun(
  batch: TaskBatchWire,
  fns: (AnyFunction | undefined)[],
  hooks: BatchHooks | undefined,
  proxies: boolean,
): Promise<(ResultWire | undefined)[]> {
  const failures: (unknown | undefined)[] = []
  await Promise.all(
    batch.fns.map(async (descriptor, index) => {
      if (fns[index]) return
      try {
        // Proxy imports: the loader learns where the shipped packages are before the app's module is imported.
        fns[index] = (descriptor.im ? await resolveWithImports(descriptor, descriptor.im) : await resolveFunction(descriptor)) as AnyFunction
      } catch (error) {
        failures[index] = error
      }
    }),
  )
  return runResolved(batch, fns, failures, hooks, proxies)
}

function runResolved(
  batch: TaskBatchWire,
  fns: (AnyFunction | undefined)[],
  failures: unknown[],
  hooks: BatchHooks | undefined,
  proxies: boolean,
): (ResultWire | undefined)[] | Promise<(ResultWire | undefined)[]> {
  const results: (ResultWire | undefined)[] = new Array(batch.tasks.length)
  const early = hooks?.results ? new EarlyResults(results, hooks.results) : undefined
  // Task durations let the manager batch only tasks known to be quick (see docs/manager.md).
  const timed = hooks?.slowest !== undefined || early !== undefined
  const last = batch.tasks.length - 1
  let slowest = 0
  let pending: Promise<void>[] | undefined
  // One clock read per task: a task starts when the one before it ended.
  let clock = timed ? performance.now() : 0
  for (let i = 0; i < batch.tasks.length; i++) {
    const task = batch.tasks[i]!
    const fn = fns[task.fn]
    if (fn && task.wt !== undefined) {
      hooks?.started?.(i)
      if (timed) clock = performance.now()
    }
    const start = clock
    const outcome = fn ? runOne(fn, task, batch.fns[task.fn]!, proxies) : failed(task, failures[task.fn])
    if (outcome instanceof Promise) {
      ;(pending ??= []).push(
        outcome.then((result) => {
          if (timed) slowest = Math.max(slowest, performance.now() - start)
          results[i] = result
          early?.finishedLater(i)
        }),
      )
      if (timed) clock = performance.now()
    } else {
      results[i] = outcome
      if (timed) {
        const now = (clock = performance.now())
        slowest = Math.max(slowest, now - start)
        // The last task's results leave with the answer anyway (unless async tasks remain).
        if (early && (i < last || pending)) early.finishedNow(i, now, now - start)
        else early?.held(i)
      }
    }
  }
  if (!pending) {
    hooks?.slowest?.(slowest)
    return results
  }
  // Synchronous results do not wait for the asynchronous tasks of their batch.
  early?.flush()
  return Promise.all(pending).then(() => {
    early?.end()
    hooks?.slowest?.(slowest)
    return results
  })
}

/** Hands over finished results early: after EARLY_RESULTS_MS in a synchronous run, or at the end of each turn. */
class EarlyResults {
  private indexes: number[] = []
  /** when the oldest result held finished */
  private since = 0
  private scheduled = false
  private ended = false

  constructor(
    private readonly results: (ResultWire | undefined)[],
    private readonly sink: (indexes: number[], results: ResultWire[]) => void,
  ) {}

  finishedNow(index: number, now: number, tookMs: number): void {
    if (this.indexes.length === 0) this.since = now
    this.indexes.push(index)
    if (tookMs >= EARLY_RESULTS_MS || now - this.since >= HOLD_RESULTS_MS) this.flush()
  }

  /** A result that waits for the batch's answer. */
  held(index: number): void {
    this.indexes.push(index)
  }

  finishedLater(index: number): void {
    this.indexes.push(index)
    if (this.scheduled) return
    this.scheduled = true
    // Everything that finishes in this turn goes together.
    setImmediate(() => {
      this.scheduled = false
      if (!this.ended) this.flush()
    })
  }

  flush(): void {
    if (this.indexes.length > 0) {
      const indexes = this.indexes
      this.indexes = []
      const sent = indexes.map((index) => {
        const result = this.results[index]!
        this.results[index] = undefined
        return result
      })
      this.sink(indexes, sent)
    }
  }

  /** The batch is done: what is still held goes back with its answer. */
  end(): void {
    this.ended = true
    this.indexes = []
  }
}

function runOne(fn: AnyFunction, task: TaskWire, descriptor: FunctionDescriptor, mayHoldProxies: boolean): ResultWire | Promise<ResultWire> {
  // Proxy arguments (nested ones too) are fetched together before the call, so the function sees
  // them resolved and any connector works. Only batches in which proxies were decoded are looked
  // through: tasks without proxies keep the synchronous path.
  const proxies = mayHoldProxies ? proxiesIn(task.args) : undefined
  if (proxies === undefined || proxies.length === 0) return call(fn, task, descriptor)
  return resolveArguments(task.args, proxies).then(
    () => {
      const outcome = call(fn, task, descriptor)
      if (!(outcome instanceof Promise)) {
        forgetTargets(proxies)
        return outcome
      }
      return outcome.finally(() => forgetTargets(proxies))
    },
    (error: unknown) => failed(task, error),
  )
}

function call(fn: AnyFunction, task: TaskWire, descriptor: FunctionDescriptor): ResultWire | Promise<ResultWire> {
  const context: TaskContext = {
    taskId: task.id,
    tryNumber: task.try,
    inputs: task.ctx?.inputs ?? [],
    outputs: task.ctx?.outputs ?? [],
    stdout: task.ctx?.stdout,
    stderr: task.ctx?.stderr,
  }
  setCurrentTaskContext(context)
  try {
    const value = task.kind === TaskKind.bash ? runBash(fn, context, task, descriptor) : fn.apply(context, task.args)
    if (isThenable(value)) {
      return Promise.resolve(value).then(
        (resolved) => succeeded(task, resolved),
        (error: unknown) => failed(task, hinted(error, descriptor)),
      )
    }
    return succeeded(task, value)
  } catch (error) {
    return failed(task, hinted(error, descriptor))
  } finally {
    setCurrentTaskContext(undefined)
  }
}

async function runBash(fn: AnyFunction, context: TaskContext, task: TaskWire, descriptor: FunctionDescriptor): Promise<number> {
  const command = await fn.apply(context, task.args)
  if (typeof command !== 'string' || command.trim() === '') {
    throw new TypeError(
      `bash app ${descriptor.name} must return a non-empty command line string, but returned ${
        typeof command === 'string' ? 'an empty string' : typeof command
      }`,
    )
  }
  return runBashCommand(command, {
    appName: descriptor.name,
    taskId: task.id,
    stdout: task.ctx?.stdout,
    stderr: task.ctx?.stderr,
    pty: task.ctx?.pty,
    cwd: task.ctx?.cwd,
    env: task.ctx?.env,
    walltimeSeconds: task.wt,
  })
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}

function succeeded(task: TaskWire, value: unknown): ResultWire | Promise<ResultWire> {
  // With the executor's proxy option on, a large result goes back as a proxy (stored here).
  const stored = task.ctx?.px ? storeLargeResult(value, task.ctx.px) : undefined
  if (stored === undefined) return { id: task.id, try: task.try, ok: true, value }
  return stored.then(
    (proxy) => ({ id: task.id, try: task.try, ok: true, value: proxy }),
    (error: unknown) => failed(task, error),
  )
}

function failed(task: TaskWire, error: unknown): ResultWire {
  return { id: task.id, try: task.try, ok: false, error: encodeError(error) }
}

// A function sent as source cannot see the variables around its definition; say so.
function hinted(error: unknown, descriptor: FunctionDescriptor): unknown {
  if (descriptor.t === 'src' && error instanceof ReferenceError && !(error instanceof TsflowError)) {
    error.message +=
      ` (app ${descriptor.name} was sent to the worker as source text, so it cannot use variables or imports ` +
      `from where it was defined; pass them as arguments or define the app at the top level of a module)`
  }
  return error
}

/**
 * Resolves a function whose descriptor carries a proxy-imports manifest: the manifest goes to this
 * thread's module loader (imports/loader.ts, loaded only here, so workers of executors without
 * the option never load it) before the app's module is imported. Once per function and thread:
 * later tasks take the cachedFunction fast path and never come here. A shipped package that could
 * not be loaded fails the tasks with its ProxyImportFailed, not the AppNotFound wrapped around it.
 */
async function resolveWithImports(descriptor: FunctionDescriptor, manifest: ImportsWire): Promise<unknown> {
  const { activateImports, importFailure } = await import('../imports/loader.js')
  await activateImports(manifest, descriptor.t === 'ref' ? { module: descriptor.module } : {})
  try {
    return await resolveFunction(descriptor)
  } catch (error) {
    const cause = importFailure((error as Error)?.cause)
    throw cause instanceof ProxyImportFailed ? cause : error
  }
}

/**
 * Decodes a batch, runs it, and encodes the results; what a thread executor's worker calls.
 * Results handed to `early` (already encoded) are left out of the returned answer, which says
 * how many were sent that way so the receiver knows whether some are still on their way.
 */
export function runEncodedBatch(
  bytes: Uint8Array,
  early?: (encoded: Uint8Array) => void,
  started?: (taskId: number) => void,
): Uint8Array | Promise<Uint8Array> {
  const mark = ownedArrivalMark()
  const batch = decode<TaskBatchWire>(bytes)
  // Owned arguments the tasks kept are dropped once their results are encoded (owned-args.ts).
  const owned = ownedArrived(mark)
  let sent = 0
  const hooks: BatchHooks = {}
  if (early) {
    hooks.results = (indexes, results) => {
      sent += results.length
      early(encodeResults(results))
      if (owned) dropOwnedArguments(indexes.map((index) => batch.tasks[index]), results)
    }
  }
  if (started) hooks.started = (index) => started(batch.tasks[index]!.id)
  let slowest = 0
  hooks.slowest = (ms) => (slowest = ms)
  const results = runBatch(batch, hooks)
  const answer = (all: (ResultWire | undefined)[]): Uint8Array => {
    const encoded = encodeAnswer(sent, (sent === 0 ? all : all.filter((result) => result !== undefined)) as ResultWire[], slowest)
    if (owned) dropOwnedArguments(batch.tasks, all)
    return encoded
  }
  return results instanceof Promise ? results.then(answer) : answer(results)
}

/**
 * The final answer of a batch run by runEncodedBatch: how many results were sent early, the
 * remaining results, and the longest time one task took (ms).
 */
export type EncodedBatchAnswer = [early: number, results: ResultWire[], slowestMs: number]

function encodeAnswer(early: number, results: ResultWire[], slowest: number): Uint8Array {
  try {
    return encode([early, results, slowest] satisfies EncodedBatchAnswer)
  } catch {
    return encode([early, encodable(results), slowest] satisfies EncodedBatchAnswer)
  }
}

/**
 * Encodes results in one message; a result that cannot be encoded (a function, a symbol) fails
 * only its own task, with an error that names the task, instead of losing the whole batch.
 */
export function encodeResults(results: ResultWire[]): Uint8Array {
  try {
    return encode(results)
  } catch {
    return encode(encodable(results))
  }
}

function encodable(results: ResultWire[]): ResultWire[] {
  return results.map((result) => {
    try {
      encode(result)
      return result
    } catch (error) {
      return {
        id: result.id,
        try: result.try,
        ok: false,
        error: encodeError(
          new SerializationError(`the result of task #${result.id} could not be sent back: ${(error as Error).message}`, {
            cause: error,
          }),
        ),
      }
    }
  })
}
