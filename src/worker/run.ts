/**
 * The work format between a manager and its workers (threads or processes).
 *
 * The manager forwards each task's payload (encode(TaskPayload)) exactly as the interchange
 * delivered it and gets back one encoded ResultWire per task, in the same order. Encoding every
 * result separately here, on the worker, means the manager can put them into ResultEnvelopes
 * without decoding and re-encoding values on its one busy thread.
 */
import { SerializationError } from '../errors.js'
import type { TaskPayload } from '../protocol/messages.js'
import type { ResultWire, TaskBatchWire, TaskWire } from '../protocol/task.js'
import { runBatch, type BatchHooks } from '../runtime/execute.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'

/**
 * Lays task payloads out for a worker process: a table of lengths, then the payloads as they
 * are. The manager writes these buffers to the worker's socket without copying them into one
 * message first (its single thread is the busiest in the pipeline).
 */
export function workParts(payloads: readonly Uint8Array[]): Uint8Array[] {
  const table = Buffer.allocUnsafe(4 + 4 * payloads.length)
  table.writeUInt32LE(payloads.length, 0)
  payloads.forEach((payload, i) => table.writeUInt32LE(payload.byteLength, 4 + 4 * i))
  return [table, ...payloads]
}

/** The payloads of a work frame laid out by workParts (views into `body`, not copies). */
export function readWorkParts(body: Uint8Array): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const count = view.getUint32(0, true)
  let offset = 4 + 4 * count
  const payloads: Uint8Array[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(4 + 4 * i, true)
    payloads[i] = body.subarray(offset, offset + length)
    offset += length
  }
  if (offset !== body.byteLength) throw new Error(`work frame of ${body.byteLength} bytes does not match its table (${offset} bytes)`)
  return payloads
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

/**
 * Runs one message of work and returns the encoded answer. Synchronous tasks finish within this
 * call; a promise is returned only when a task is asynchronous or a module must be imported.
 */
export function runWork(payloads: Uint8Array[], hooks?: WorkHooks): Buffer | Promise<Buffer> {
  const fns: FunctionDescriptor[] = []
  const fnIndex = new Map<string, number>()
  const tasks: TaskWire[] = []
  // Where each payload's result goes; undecodable payloads get their failure directly.
  const slots: (number | ResultWire)[] = new Array(payloads.length)
  // The payload of each task, to name early results the way the manager knows them.
  const payloadOf: number[] = []
  for (let i = 0; i < payloads.length; i++) {
    let payload: TaskPayload
    try {
      payload = decode<TaskPayload>(payloads[i]!)
    } catch (error) {
      // The manager decoded this payload before sending it, so this means a codec mismatch.
      slots[i] = { id: -1, try: -1, ok: false, error: encodeError(error) }
      continue
    }
    const key = payload.fn.t === 'ref' ? `ref\0${payload.fn.module}\0${payload.fn.key}` : `src\0${payload.fn.source}`
    let fn = fnIndex.get(key)
    if (fn === undefined) {
      fn = fns.length
      fns.push(payload.fn)
      fnIndex.set(key, fn)
    }
    slots[i] = tasks.length
    payloadOf.push(i)
    tasks.push({ ...payload.task, fn })
  }
  const batch: TaskBatchWire = { fns, tasks }
  let slowest = 0
  const batchHooks: BatchHooks = { slowest: (ms) => (slowest = ms) }
  if (hooks) {
    const { results, started } = hooks
    if (results) {
      batchHooks.results = (indexes, done) => results(indexes.map((index) => payloadOf[index]!), done.map(encodeResult))
    }
    if (started) batchHooks.started = () => started()
  }
  const results = runBatch(batch, batchHooks)
  return results instanceof Promise ? results.then((done) => encodeAnswer(slots, done, slowest)) : encodeAnswer(slots, results, slowest)
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
    return encode(result)
  } catch (error) {
    const failure = new SerializationError(`the result of task #${result.id} could not be sent back: ${(error as Error).message}`, {
      cause: error,
    })
    return encode({ id: result.id, try: result.try, ok: false, error: encodeError(failure) } satisfies ResultWire)
  }
}

/**
 * An exact-size copy in its own ArrayBuffer. msgpackr returns views into a larger shared buffer;
 * sending such a view to a thread would clone (or, transferred, detach) all of that buffer.
 */
export function ownedCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}
