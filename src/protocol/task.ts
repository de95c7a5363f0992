import type { File } from '../data/file.js'
import type { EncodedError } from '../serialize/errors.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'

/**
 * What a task looks like on the wire, between the workflow process and whatever runs it (a
 * worker thread here; managers and worker processes for the high-throughput executor). Field
 * names are short because a batch holds thousands of these.
 */

export const TaskKind = { js: 0, bash: 1 } as const
export type TaskKindValue = (typeof TaskKind)[keyof typeof TaskKind]

/** Where a bash app's stdout/stderr go: a path (appended to), or [path, 'w' | 'a']. */
export type StdStreamTarget = string | [path: string, mode: 'w' | 'a']

export interface PtyOptions {
  cols?: number
  rows?: number
}

/** Per-task context; omitted from the wire when every field has its default. */
export interface TaskContextWire {
  inputs?: unknown[]
  outputs?: File[]
  stdout?: StdStreamTarget
  stderr?: StdStreamTarget
  pty?: PtyOptions
  cwd?: string
  env?: Record<string, string>
  /**
   * The executor's `proxy` option, when on: results that encode to more than `threshold` bytes
   * are put in this store (a StoreConfig, proxy/store.ts) by the worker and sent as a proxy.
   */
  px?: { store: { name: string; [field: string]: unknown }; threshold: number }
}

export interface TaskWire {
  /** task id */
  id: number
  /** try number, 0 for the first try; results from stale tries are ignored */
  try: number
  /** index into the batch's function table */
  fn: number
  kind: TaskKindValue
  args: unknown[]
  ctx?: TaskContextWire
  /** walltime in seconds, enforced where the task runs (bash apps) and by the executor */
  wt?: number
}

/**
 * A batch: the function table once, and tasks that name their function by index. The thread
 * executor sends this as one encoded message. The high-throughput executor sends the same fields
 * split so the interchange can route tasks without decoding them: the function table once per
 * executor (messages.ts FunctionEntry), id/try/kind/walltime/function on each envelope, and
 * TaskArgsWire as the payload; the manager hands a worker TaskBatchHead plus those payloads.
 */
export interface TaskBatchWire {
  fns: FunctionDescriptor[]
  tasks: TaskWire[]
}

/** A task's own bytes on the high-throughput executor: its arguments, and its context if any. */
export type TaskArgsWire = [args: unknown[]] | [args: unknown[], ctx: TaskContextWire]

/** What TaskArgsWire's encoding holds for a task (ctx only when it has one). */
export function taskArgsWire(args: unknown[], ctx: TaskContextWire | undefined): TaskArgsWire {
  return ctx ? [args, ctx] : [args]
}

/**
 * The head of a batch the HTEX manager hands a worker, before the tasks' payloads (one per task,
 * in order): the function table entries the batch uses (id and encoded FunctionDescriptor), and
 * per task HEAD_FIELDS numbers: id, try, index into `fns`, kind, walltime (0 for none).
 */
export interface TaskBatchHead {
  fnIds: number[]
  fns: Uint8Array[]
  tasks: number[]
}
export const HEAD_FIELDS = 5

export interface ResultWire {
  id: number
  try: number
  ok: boolean
  value?: unknown
  error?: EncodedError
}

/**
 * A result's payload on the high-throughput executor: [id, try, 1, value] or [id, try, 0, error].
 * Encoded one per task (so each hop can forward it as bytes), a tuple costs several times less to
 * encode and decode than an object, whose keys msgpack would describe again in every payload.
 */
export type ResultTupleWire = [id: number, tryNumber: number, ok: 1, value: unknown] | [id: number, tryNumber: number, ok: 0, error: EncodedError]

export function toResultTuple(result: ResultWire): ResultTupleWire {
  return result.ok ? [result.id, result.try, 1, result.value] : [result.id, result.try, 0, result.error!]
}

/** The ResultWire in a decoded result payload; throws when it is not one. */
export function fromResultTuple(value: unknown): ResultWire {
  if (!Array.isArray(value) || value.length !== 4 || typeof value[0] !== 'number' || typeof value[1] !== 'number') {
    throw new Error('a result payload is not an [id, try, ok, value] tuple')
  }
  return value[2] === 1 ? { id: value[0], try: value[1], ok: true, value: value[3] } : { id: value[0], try: value[1], ok: false, error: value[3] as EncodedError }
}
