import { SerializationError, TsflowError } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import { cachedFunction, resolveFunction, type FunctionDescriptor } from '../serialize/function-ref.js'
import { TaskKind, type ResultWire, type TaskBatchWire, type TaskWire } from '../protocol/task.js'
import { runBashCommand } from './bash.js'
import { setCurrentTaskContext, type TaskContext } from './context.js'

type AnyFunction = (this: TaskContext, ...args: unknown[]) => unknown

/**
 * Runs a batch of tasks where it landed (a worker thread or process) and returns their results.
 * Synchronous tasks complete within this call and the batch is returned synchronously; only
 * when a task returns a promise (or a function must first be imported) is a promise returned.
 */
export function runBatch(batch: TaskBatchWire): ResultWire[] | Promise<ResultWire[]> {
  const fns: (AnyFunction | undefined)[] = batch.fns.map((descriptor) => cachedFunction(descriptor) as AnyFunction | undefined)
  if (fns.includes(undefined)) return resolveThenRun(batch, fns)
  return runResolved(batch, fns as AnyFunction[], [])
}

async function resolveThenRun(batch: TaskBatchWire, fns: (AnyFunction | undefined)[]): Promise<ResultWire[]> {
  const failures: (unknown | undefined)[] = []
  await Promise.all(
    batch.fns.map(async (descriptor, index) => {
      if (fns[index]) return
      try {
        fns[index] = (await resolveFunction(descriptor)) as AnyFunction
      } catch (error) {
        failures[index] = error
      }
    }),
  )
  return runResolved(batch, fns, failures)
}

function runResolved(batch: TaskBatchWire, fns: (AnyFunction | undefined)[], failures: unknown[]): ResultWire[] | Promise<ResultWire[]> {
  const results: ResultWire[] = new Array(batch.tasks.length)
  let pending: Promise<void>[] | undefined
  for (let i = 0; i < batch.tasks.length; i++) {
    const task = batch.tasks[i]!
    const fn = fns[task.fn]
    const outcome = fn ? runOne(fn, task, batch.fns[task.fn]!) : failed(task, failures[task.fn])
    if (outcome instanceof Promise) {
      ;(pending ??= []).push(outcome.then((result) => void (results[i] = result)))
    } else {
      results[i] = outcome
    }
  }
  return pending ? Promise.all(pending).then(() => results) : results
}

function runOne(fn: AnyFunction, task: TaskWire, descriptor: FunctionDescriptor): ResultWire | Promise<ResultWire> {
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

function succeeded(task: TaskWire, value: unknown): ResultWire {
  return { id: task.id, try: task.try, ok: true, value }
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

/** Decodes a batch, runs it, and encodes the results; what a worker's message handler calls. */
export function runEncodedBatch(bytes: Uint8Array): Uint8Array | Promise<Uint8Array> {
  const batch = decode<TaskBatchWire>(bytes)
  const results = runBatch(batch)
  return results instanceof Promise ? results.then(encodeResults) : encodeResults(results)
}

/**
 * Encodes results in one message; a result that cannot be encoded (a function, a symbol) fails
 * only its own task, with an error that names the task, instead of losing the whole batch.
 */
export function encodeResults(results: ResultWire[]): Uint8Array {
  try {
    return encode(results)
  } catch {
    const safe = results.map((result) => {
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
    return encode(safe)
  }
}
