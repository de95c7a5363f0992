/**
 * The work format between a manager and its workers (threads or processes).
 *
 * A batch is a TaskBatchHead (the function table entries it uses and each task's id, try,
 * function, kind and walltime) followed by each task's payload (encode(TaskArgsWire)) exactly
 * as the interchange delivered it; the manager never decodes or re-encodes arguments. The worker
 * answers with one encoded ResultTupleWire per task, in the same order, so the manager can put them
 * into ResultEnvelopes without decoding values on its one busy thread.
 */
import { SerializationError } from '../errors.js'
import { HEAD_FIELDS, toResultTuple, type ResultWire, type TaskArgsWire, type TaskBatchHead, type TaskBatchWire, type TaskKindValue, type TaskWire } from '../protocol/task.js'
import { runBatch, type BatchHooks } from '../runtime/execute.js'
import { dropOwnedArguments, ownedArrivalMark, ownedArrived } from '../runtime/owned-args.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'

/**
 * Lays a batch out as one buffer with its own ArrayBuffer (so a thread can take it by transfer
 * and a pipe in one write): a table of part lengths, then the parts (the head, then payloads).
 */
export function workParts(parts: readonly Uint8Array[]): Uint8Array {
  let total = 4 + 4 * parts.length
  for (const part of parts) total += part.byteLength
  const body = new Uint8Array(total)
  const view = new DataView(body.buffer)
  view.setUint32(0, parts.length, true)
  let offset = 4 + 4 * parts.length
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    view.setUint32(4 + 4 * i, part.byteLength, true)
    body.set(part, offset)
    offset += part.byteLength
  }
  return body
}

/** A part at least this large is written to a pipe as it is rather than copied into its neighbours. */
export const ALONE_BYTES = 16 * 1024

/**
 * The bytes of workParts(parts) as a list of chunks to write one after another: small parts are
 * copied together with the table (as in workParts), a part of ALONE_BYTES or more is its own chunk,
 * the caller's bytes uncopied. A batch of small tasks is still one chunk; a batch with a 1 MB
 * argument is a few bytes of table and the argument as received, not a 1 MB copy of it.
 */
export function workChunks(parts: readonly Uint8Array[]): Uint8Array[] {
  let large = 0
  for (const part of parts) if (part.byteLength >= ALONE_BYTES) large++
  if (large === 0) return [workParts(parts)]
  const chunks: Uint8Array[] = []
  let small = 4 + 4 * parts.length
  let i = 0
  // The table, then each run of small parts is copied into one chunk of its own.
  let pending = new Uint8Array(small + runBytes(parts, 0))
  const table = new DataView(pending.buffer)
  table.setUint32(0, parts.length, true)
  for (let k = 0; k < parts.length; k++) table.setUint32(4 + 4 * k, parts[k]!.byteLength, true)
  while (i < parts.length) {
    while (i < parts.length && parts[i]!.byteLength < ALONE_BYTES) {
      pending.set(parts[i]!, small)
      small += parts[i++]!.byteLength
    }
    if (pending.byteLength > 0) chunks.push(pending)
    while (i < parts.length && parts[i]!.byteLength >= ALONE_BYTES) chunks.push(parts[i++]!)
    pending = new Uint8Array(runBytes(parts, i))
    small = 0
  }
  return chunks
}

/** Bytes of the run of small parts starting at `from`. */
function runBytes(parts: readonly Uint8Array[], from: number): number {
  let total = 0
  for (let i = from; i < parts.length && parts[i]!.byteLength < ALONE_BYTES; i++) total += parts[i]!.byteLength
  return total
}

/** The parts of a work frame laid out by workParts (views into `body`, not copies). */
export function readWorkParts(body: Uint8Array): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const count = view.getUint32(0, true)
  let offset = 4 + 4 * count
  const parts: Uint8Array[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(4 + 4 * i, true)
    parts[i] = body.subarray(offset, offset + length)
    offset += length
  }
  if (offset !== body.byteLength) throw new Error(`work frame of ${body.byteLength} bytes does not match its table (${offset} bytes)`)
  return parts
}

/**
 * Unpacks a worker's answer: one encoded ResultWire per task, in task order; null where the
 * result was already sent in an early-results message (WorkProgress).
 */
export function decodeResults(bytes: Uint8Array): WorkAnswer {
  const [answers, slowestMs] = decode<WorkAnswerWire>(bytes)
  return { answers, slowestMs }
}

/** A worker's final answer to one work message: [encoded results, longest task time in ms]. */
export type WorkAnswerWire = [answers: (Uint8Array | null)[], slowestMs: number]

export interface WorkAnswer {
  answers: (Uint8Array | null)[]
  /** the longest time one task of the message took, in milliseconds (how the manager learns which apps are quick) */
  slowestMs: number
}

/** What a worker tells its manager while a work message runs. */
export interface WorkHooks {
  /** results of finished tasks, by payload index, each encoded; they are null in the final answer */
  results?(indexes: number[], encoded: Uint8Array[]): void
  /** a task with a walltime is being called now (the work message holds only that task) */
  started?(): void
}

/** Decoded function descriptors by function table id (ids are stable for the executor's life). */
const functions = new Map<number, FunctionDescriptor>()

/**
 * Runs one message of work (a TaskBatchHead, then one payload per task) and returns the encoded
 * answer. Synchronous tasks finish within this call; a promise is returned only when a task is
 * asynchronous or a module must be imported.
 */
export function runWork(parts: Uint8Array[], hooks?: WorkHooks): Buffer | Promise<Buffer> {
  const head = decode<TaskBatchHead>(parts[0]!)
  const fns: FunctionDescriptor[] = new Array(head.fnIds.length)
  for (let i = 0; i < head.fnIds.length; i++) {
    const id = head.fnIds[i]!
    let fn = functions.get(id)
    if (!fn) functions.set(id, (fn = decode<FunctionDescriptor>(head.fns[i]!)))
    fns[i] = fn
  }
  const count = head.tasks.length / HEAD_FIELDS
  const tasks: TaskWire[] = []
  // Where each payload's result goes; undecodable payloads get their failure directly.
  const slots: (number | ResultWire)[] = new Array(count)
  // The batch position of each task, to name early results the way the manager knows them.
  const payloadOf: number[] = []
  const mark = ownedArrivalMark()
  for (let i = 0; i < count; i++) {
    const at = i * HEAD_FIELDS
    const id = head.tasks[at]!
    const tryNumber = head.tasks[at + 1]!
    let body: TaskArgsWire
    try {
      body = decode<TaskArgsWire>(parts[i + 1]!)
    } catch (error) {
      slots[i] = { id, try: tryNumber, ok: false, error: encodeError(error) }
      continue
    }
    const task: TaskWire = { id, try: tryNumber, fn: head.tasks[at + 2]!, kind: head.tasks[at + 3] as TaskKindValue, args: body[0] }
    if (body[1]) task.ctx = body[1]
    const wt = head.tasks[at + 4]!
    if (wt > 0) task.wt = wt
    slots[i] = tasks.length
    payloadOf.push(i)
    tasks.push(task)
  }
  const batch: TaskBatchWire = { fns, tasks }
  // Owned arguments the tasks kept are dropped once their results are encoded (owned-args.ts).
  const owned = ownedArrived(mark)
  let slowest = 0
  const batchHooks: BatchHooks = { slowest: (ms) => (slowest = ms) }
  if (hooks) {
    const { results, started } = hooks
    if (results) {
      batchHooks.results = (indexes, done) => {
        results(indexes.map((index) => payloadOf[index]!), done.map(encodeResult))
        if (owned) dropOwnedArguments(indexes.map((index) => tasks[index]), done)
      }
    }
    if (started) batchHooks.started = () => started()
  }
  const results = runBatch(batch, batchHooks)
  const answer = (done: (ResultWire | undefined)[]): Buffer => {
    const encoded = encodeAnswer(slots, done, slowest)
    if (owned) dropOwnedArguments(tasks, done)
    return encoded
  }
  return results instanceof Promise ? results.then(answer) : answer(results)
}

function encodeAnswer(slots: (number | ResultWire)[], results: (ResultWire | undefined)[], slowest: number): Buffer {
  const encoded: (Uint8Array | null)[] = new Array(slots.length)
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!
    const result = typeof slot === 'number' ? results[slot] : slot
    encoded[i] = result ? encodeResult(result) : null
  }
  return encode([encoded, slowest] satisfies WorkAnswerWire)
}

/** A result that cannot be encoded (a function, a symbol) fails only its own task. */
function encodeResult(result: ResultWire): Uint8Array {
  try {
    return encode(toResultTuple(result))
  } catch (error) {
    const failure = new SerializationError(`the result of task #${result.id} could not be sent back: ${(error as Error).message}`, {
      cause: error,
    })
    return encode(toResultTuple({ id: result.id, try: result.try, ok: false, error: encodeError(failure) }))
  }
}

/**
 * An exact-size copy in its own ArrayBuffer. msgpackr returns views into a larger shared buffer;
 * sending such a view to a thread would clone (or, transferred, detach) all of that buffer.
 */
export function ownedCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}
