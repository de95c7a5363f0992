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
// main thread instead of being copied again.
function handOver(bytes: Uint8Array): unknown {
  return move(new Uint8Array(bytes))
}

export default function runBatchMessage(bytes: Uint8Array): unknown {
  const result = runEncodedBatch(bytes)
  return result instanceof Promise ? result.then(handOver) : handOver(result)
}
