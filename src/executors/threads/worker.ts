/**
 * Entry module of each ThreadPoolExecutor thread (loaded by piscina). Receives encoded task
 * batches and returns encoded results; everything else lives in runtime/.
 */
import { move } from 'piscina'
import { markWorker } from '../../runtime/context.js'
import { runEncodedBatch } from '../../runtime/execute.js'

markWorker('thread')

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

export default function runBatchMessage(bytes: Uint8Array): unknown {
  const started = performance.now()
  const result = runEncodedBatch(bytes)
  return result instanceof Promise ? result.then((done) => handOver(done, started)) : handOver(result, started)
}
