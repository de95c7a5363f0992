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

export interface TaskBatchWire {
  fns: FunctionDescriptor[]
  tasks: TaskWire[]
}

export interface ResultWire {
  id: number
  try: number
  ok: boolean
  value?: unknown
  error?: EncodedError
}
