import { callerAssignedName, callerModuleUrl } from '../util/callsite.js'
import { describeFunction } from '../serialize/function-ref.js'
import { appOptionsSchema, type AppDefinition, type AppKind, type AppOptions, type BashAppOptions, type CallOptions } from '../dataflow/app-definition.js'
import { sourceDigest } from '../dataflow/memo.js'
import { dfk as currentKernel, EMPTY_OPTIONS, type DataFlowKernel } from '../dataflow/kernel.js'
import type { AppFuture, Future } from '../dataflow/future.js'
import type { TaskContext } from '../runtime/context.js'

/** A value, a future of it, or (for arrays and plain objects) the same with futures inside. */
export type Resolvable<T> =
  | T
  | Future<T>
  | (T extends readonly (infer E)[] ? readonly Resolvable<E>[] : never)
  | (T extends Record<string, unknown> ? { [K in keyof T]: Resolvable<T[K]> } : never)

/** Each argument may be given as its value or as a future of it, also nested. */
export type FutureArgs<A extends unknown[]> = { [K in keyof A]: Resolvable<A[K]> }

/** Options for one call, plus the kernel to submit to (default: the loaded one). */
export type CallOptionsWithKernel = CallOptions & { dfk?: DataFlowKernel }

/** A wrapped function: calling it submits a task and returns its future at once. */
export interface App<A extends unknown[], R> {
  (...args: FutureArgs<A>): AppFuture<R>
  /** Call with per-call options: `inputs`, `outputs`, `stdout`, `walltime`, `priority`, ... */
  with(options: CallOptionsWithKernel): (...args: FutureArgs<A>) => AppFuture<R>
  /**
   * Submits one call per argument list, all in one go (the options apply to every call and are
   * checked once), and returns their futures in order. Executors send the calls to workers as
   * batches, not one message each. `awaitAll(futures, { onProgress })` waits for them.
   */
  map(argsList: Iterable<FutureArgs<A>>, options?: CallOptionsWithKernel): AppFuture<R>[]
  readonly appName: string
  readonly definition: AppDefinition
}

/** What a join app's futures resolve to: futures replaced by their values, one level of arrays/objects deep. */
export type Joined<R> =
  R extends Future<infer T> ? T : R extends readonly (infer E)[] ? (E extends Future<infer T> ? T : E)[] : R

type TaskFunction<A extends unknown[], R> = (this: TaskContext, ...args: A) => R

function define(kind: AppKind, fn: unknown, options: BashAppOptions | undefined, apiName: string): AppDefinition {
  if (typeof fn !== 'function') {
    throw new TypeError(`${apiName}() needs a function as its first argument (got ${fn === null ? 'null' : typeof fn})`)
  }
  const task = fn as (...args: never[]) => unknown
  const name = options?.name ?? (task.name || callerAssignedName(apiName) || 'anonymous')
  const validated = appOptionsSchema(options ?? {}, `${apiName}(${name}) options`) as BashAppOptions
  const moduleUrl = callerModuleUrl()
  // Join apps run where they are called, so they never travel.
  const descriptor = kind === 'join' ? undefined : describeFunction(task, name, validated.transport ?? 'auto', moduleUrl)
  const where = descriptor?.t === 'ref' ? `${descriptor.module}#${descriptor.key}` : descriptor ? 'source' : `${moduleUrl ?? 'local'}#${name}`
  return Object.freeze({ name, kind, fn: task, descriptor, identity: `${kind}:${where}:${sourceDigest(task)}`, options: Object.freeze(validated) })
}

function wrap<A extends unknown[], R>(definition: AppDefinition): App<A, R> {
  const call = (...args: FutureArgs<A>): AppFuture<R> => currentKernel().submit<R>(definition, args, EMPTY_OPTIONS)
  const withOptions = (options: CallOptionsWithKernel) => {
    const { dfk: kernel, ...callOptions } = options
    return (...args: FutureArgs<A>): AppFuture<R> => (kernel ?? currentKernel()).submit<R>(definition, args, callOptions)
  }
  const map = (argsList: Iterable<FutureArgs<A>>, options?: CallOptionsWithKernel): AppFuture<R>[] => {
    if (argsList === null || typeof argsList !== 'object' || typeof (argsList as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${definition.name}.map() needs an array (or iterable) of argument lists, e.g. ${definition.name}.map([[1], [2]]) (got ${argsList === null ? 'null' : typeof argsList})`)
    }
    const { dfk: kernel, ...callOptions } = options ?? {}
    return (kernel ?? currentKernel()).submitMany<R>(definition, argsList as Iterable<unknown[]>, options ? callOptions : EMPTY_OPTIONS)
  }
  Object.defineProperty(call, 'name', { value: definition.name })
  return Object.assign(call, { with: withOptions, map, appName: definition.name, definition }) as App<A, R>
}

/**
 * Wraps a function as an app: each call runs it as a task on an executor and returns an
 * AppFuture. Define apps at the top level of a module so workers can find them by reference.
 */
export function app<A extends unknown[], R>(fn: TaskFunction<A, R>, options?: AppOptions): App<A, Awaited<R>> {
  return wrap(define('js', fn, options, 'app'))
}

/**
 * Wraps a function that returns a command line; the task runs it with bash on the worker and
 * resolves to its exit code (0). A non-zero exit rejects with BashExitFailure.
 */
export function bashApp<A extends unknown[]>(fn: TaskFunction<A, string | Promise<string>>, options?: BashAppOptions): App<A, number> {
  return wrap(define('bash', fn, options, 'bashApp'))
}

/**
 * Wraps a function that runs in the workflow process and returns futures of other apps (a
 * sub-workflow); its future resolves to their results.
 */
export function joinApp<A extends unknown[], R>(fn: TaskFunction<A, R>, options?: Omit<AppOptions, 'transport' | 'walltime' | 'executors'>): App<A, Joined<Awaited<R>>> {
  return wrap(define('join', fn, options, 'joinApp'))
}
