/**
 * Entry module of each ThreadPoolExecutor thread (loaded by piscina). Receives encoded task
 * batches and returns encoded results; everything else lives in runtime/.
 *
 * Results of tasks that finish while the rest of their batch still runs are posted at once on
 * parentPort (piscina hands such messages to the pool's 'message' listeners), and so is the
 * moment a task with a walltime starts, which is when the executor starts its clock.
 */
import { parentPort } from 'node:worker_threads'
import { move } from 'piscina'
import { markWorker } from '../../runtime/context.js'
import { runEncodedBatch } from '../../runtime/execute.js'

markWorker('thread')

/** Posted on parentPort while a batch runs. */
export type ThreadProgress =
  /** encodeResults() of tasks already finished */
  | { tsflowResults: Uint8Array }
  /** the task with this id (and a walltime) is being called now */
  | { tsflowStarted: number }

// The result is copied out of msgpackr's shared buffer into an ArrayBuffer of its own (a
// Buffer's slice() would only be a view of the shared one), which is then transferred to the
// main thread instead of being copied again. The last 8 bytes carry how long the batch ran
// (ms, float64), from which the executor sizes its batches (see ThreadPoolExecutor.flush).
function handOver(bytes: Uint8Array, started: number): unknown {
  const answer = new Uint8Array(bytes.byteLength + 8)
  answer.set(bytes)
  new DataView(answer.buffer).setFloat64(bytes.byteLength, performance.now() - started, true)
  return move(answer)
}

function postResults(bytes: Uint8Array): void {
  const own = new Uint8Array(bytes)
  parentPort!.postMessage({ tsflowResults: own } satisfies ThreadProgress, [own.buffer])
}

function postStarted(taskId: number): void {
  parentPort!.postMessage({ tsflowStarted: taskId } satisfies ThreadProgress)
}

export default function runBatchMessage(bytes: Uint8Array): unknown {
  const started = performance.now()
  const result = parentPort ? runEncodedBatch(bytes, postResults, postStarted) : runEncodedBatch(bytes)
  return result instanceof Promise ? result.then((done) => handOver(done, started)) : handOver(result, started)
}
