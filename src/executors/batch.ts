import { SerializationError } from '../errors.js'
import { binaryBytes, encode } from '../serialize/codec.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'
import { MAX_BATCH_PAYLOAD_BYTES, splitBatch } from '../protocol/split.js'
import type { TaskBatchWire, TaskWire } from '../protocol/task.js'
import type { ExecutorTask } from './base.js'

/**
 * Packs tasks into one wire batch with a shared function table. A task whose arguments cannot
 * be encoded is left out and handed to `onUnencodable` with an error naming it, so one bad
 * argument never sinks the tasks it was batched with.
 */
export function encodeTaskBatch(
  tasks: readonly ExecutorTask[],
  onUnencodable: (task: ExecutorTask, error: Error) => void,
  binaryBytesHint?: number,
): { bytes: Uint8Array; sent: ExecutorTask[] } | undefined {
  const batch = toWire(tasks)
  try {
    return { bytes: encode(batch, binaryBytesHint), sent: tasks as ExecutorTask[] }
  } catch {
    const sent: ExecutorTask[] = []
    for (const task of tasks) {
      try {
        encode(task.args)
        if (task.ctx) encode(task.ctx)
        sent.push(task)
      } catch (error) {
        onUnencodable(
          task,
          new SerializationError(
            `the arguments of task #${task.id} (${task.appName}) cannot be sent to a worker: ${(error as Error).message}`,
            { cause: error },
          ),
        )
      }
    }
    if (sent.length === 0) return undefined
    return { bytes: encode(toWire(sent)), sent }
  }
}

/**
 * encodeTaskBatch, cut by the byte cap every hop uses: a batch whose encoding passes
 * MAX_BATCH_PAYLOAD_BYTES is split (by each task's own encoded size) into parts encoded
 * separately, so large arguments never make one huge message. Small batches cost one encode.
 */
export function encodeTaskBatches(
  tasks: readonly ExecutorTask[],
  onUnencodable: (task: ExecutorTask, error: Error) => void,
): { bytes: Uint8Array; sent: ExecutorTask[] }[] {
  // Each task's binary data, counted once: it sizes the encode buffer (encode's hint), and
  // arguments holding more than the cap are split before any encode (encoding the whole batch
  // only to learn it is too large, then each task for its size, then each part, wrote every large
  // argument three times).
  let total = 0
  const binary = tasks.map((task) => {
    const bytes = binaryBytes(task.args, 256)
    total += bytes
    return bytes
  })
  if (tasks.length > 1 && total > MAX_BATCH_PAYLOAD_BYTES) {
    const bytesOf = new Map(tasks.map((task, i) => [task, binary[i]!]))
    return splitBatch(tasks, (task) => bytesOf.get(task)! + 256).flatMap(
      (part) => encodeTaskBatch(part, onUnencodable, part.reduce((sum, task) => sum + bytesOf.get(task)!, 0)) ?? [],
    )
  }
  const whole = encodeTaskBatch(tasks, onUnencodable, total)
  if (!whole) return []
  if (whole.bytes.byteLength <= MAX_BATCH_PAYLOAD_BYTES || whole.sent.length === 1) return [whole]
  const sizes = new Map(whole.sent.map((task) => [task, encode(task.args).byteLength + (task.ctx ? encode(task.ctx).byteLength : 0)]))
  return splitBatch(whole.sent, (task) => sizes.get(task)!).map((part) => ({ bytes: encode(toWire(part)), sent: part }))
}

function toWire(tasks: readonly ExecutorTask[]): TaskBatchWire {
  const fns: FunctionDescriptor[] = []
  const fnIndex = new Map<FunctionDescriptor, number>()
  const wire: TaskWire[] = new Array(tasks.length)
  for (let i = 0; i < tasks.length; i++) {
    const task = tasks[i]!
    let index = fnIndex.get(task.fn)
    if (index === undefined) {
      index = fns.length
      fns.push(task.fn)
      fnIndex.set(task.fn, index)
    }
    const item: TaskWire = { id: task.id, try: task.try, fn: index, kind: task.kind, args: task.args }
    if (task.ctx) item.ctx = task.ctx
    if (task.walltime !== undefined) item.wt = task.walltime
    wire[i] = item
  }
  return { fns, tasks: wire }
}
