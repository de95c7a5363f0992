import { encode } from '../../serialize/codec.js'
import type { FunctionEntry, TaskEnvelope } from '../../protocol/messages.js'
import { taskArgsWire } from '../../protocol/task.js'
import type { FunctionDescriptor } from '../../serialize/function-ref.js'
import type { ExecutorTask } from '../base.js'

/**
 * The envelope the client sends for one task: the payload (only the arguments and context,
 * opened only by a worker) and, beside it, what the interchange and manager schedule on (the
 * function table id, kind, walltime, priority, resources), so neither decodes the payload.
 * Throws when the arguments cannot be encoded. The manager test harness sends tasks through this
 * too, so it exercises the path production takes.
 */
export function encodeTaskEnvelope(task: ExecutorTask, f: number): TaskEnvelope {
  const envelope: TaskEnvelope = { id: task.id, try: task.try, f, k: task.kind, payload: encode(taskArgsWire(task.args, task.ctx)) }
  if (task.walltime !== undefined) envelope.wt = task.walltime
  if (task.priority !== 0) envelope.pri = task.priority
  if (task.resources) envelope.res = task.resources
  return envelope
}

/**
 * The client's function table: each function descriptor gets a stable id and is encoded once;
 * it travels with the first submit message whose tasks use it, and never again.
 */
export class FunctionTable {
  private readonly idsByKey = new Map<string, number>()
  private readonly idsByObject = new WeakMap<FunctionDescriptor, number>()
  private readonly unsent = new Map<number, Uint8Array>()

  /** Descriptors are the same object for every call of an app, so this is one WeakMap hit. */
  idOf(fn: FunctionDescriptor): number {
    const known = this.idsByObject.get(fn)
    if (known !== undefined) return known
    const key = fn.t === 'ref' ? `ref\0${fn.module}\0${fn.key}\0${fn.name}` : `src\0${fn.name}\0${fn.source}`
    let id = this.idsByKey.get(key)
    if (id === undefined) {
      id = this.idsByKey.size
      this.unsent.set(id, encode(fn))
      this.idsByKey.set(key, id)
    }
    this.idsByObject.set(fn, id)
    return id
  }

  /** The entries `envelopes` use that have not been sent yet (marked sent), or undefined. */
  takeUnsent(envelopes: readonly TaskEnvelope[]): FunctionEntry[] | undefined {
    if (this.unsent.size === 0) return undefined
    const fns: FunctionEntry[] = []
    for (const envelope of envelopes) {
      const bytes = this.unsent.get(envelope.f)
      if (bytes) {
        fns.push([envelope.f, bytes])
        this.unsent.delete(envelope.f)
      }
    }
    return fns.length > 0 ? fns : undefined
  }
}
