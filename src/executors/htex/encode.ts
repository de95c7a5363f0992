import { encode } from '../../serialize/codec.js'
import type { TaskEnvelope } from '../../protocol/messages.js'
import type { TaskWire } from '../../protocol/task.js'
import type { ExecutorTask } from '../base.js'

/**
 * The envelope the client sends for one task: the payload (function descriptor and wire task,
 * opened only by a worker) and, beside it, what the interchange and manager schedule on (kind,
 * walltime, priority, resources), so neither decodes the payload. Throws when the arguments
 * cannot be encoded. The manager test harness sends tasks through this too.
 */
export function encodeTaskEnvelope(task: ExecutorTask): TaskEnvelope {
  const wire: TaskWire = { id: task.id, try: task.try, fn: 0, kind: task.kind, args: task.args }
  if (task.ctx) wire.ctx = task.ctx
  if (task.walltime !== undefined) wire.wt = task.walltime
  const payload = encode({ fn: task.fn, task: wire })
  const envelope: TaskEnvelope = { id: task.id, try: task.try, k: task.kind, app: task.appName, payload }
  if (task.walltime !== undefined) envelope.wt = task.walltime
  if (task.priority !== 0) envelope.pri = task.priority
  if (task.resources) envelope.res = task.resources
  return envelope
}
