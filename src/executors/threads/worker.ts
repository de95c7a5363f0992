/**
 * Entry module of each ThreadPoolExecutor thread (loaded by piscina). Receives encoded task
 * batches and returns encoded results; everything else lives in runtime/.
 */
import { move } from 'piscina'
import { markWorker } from '../../runtime/context.js'
import { runEncodedBatch } from '../../runtime/execute.js'

markWorker('thread')

// The result is copied out of msgpackr's shared buffer into its own ArrayBuffer, which is then
// transferred to the main thread instead of copied again.
function handOver(bytes: Uint8Array): unknown {
  return move(bytes.slice())
}

export default function runBatchMessage(bytes: Uint8Array): unknown {
  const result = runEncodedBatch(bytes)
  return result instanceof Promise ? result.then(handOver) : handOver(result)
}
