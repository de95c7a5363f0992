/**
 * Entry module of each manager worker thread (`--mode threads`, loaded by piscina).
 *
 * piscina decides which thread runs what and replaces threads that die, so a thread cannot be
 * told its rank when it is created. Instead each thread claims the first free rank slot in a
 * shared array at start; the manager frees a dead thread's slot, and its replacement claims it,
 * inheriting that rank's CPUs and accelerator.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads'
import { move } from 'piscina'
import { markWorker } from '../runtime/context.js'
import { encode } from '../serialize/codec.js'
import { ownedCopy, readWorkParts, runWork } from './run.js'
import { applyAffinity } from './setup.js'
import type { EarlyResultsWire, ThreadHello, ThreadPoolData, ThreadWork, ThreadWorkProgress } from '../protocol/worker.js'

markWorker('thread')

function claimRank(slots: Int32Array): number {
  for (let rank = 0; rank < slots.length; rank++) {
    if (Atomics.compareExchange(slots, rank, 0, threadId) === 0) return rank
  }
  return -1
}

const data = workerData as ThreadPoolData | undefined
if (data) {
  const rank = claimRank(new Int32Array(data.slots))
  const setup = data.setups[rank]
  const hello: ThreadHello = { tsflowThread: true, threadId, rank }
  if (setup) {
    // Each thread has its own copy of process.env, so this stays per worker (for JavaScript;
    // native libraries read the process-wide environment, hence --mode processes for GPUs).
    Object.assign(process.env, setup.env)
    hello.warning = applyAffinity(setup.cpus)
    if (setup.cpus && !hello.warning) hello.cpus = setup.cpus
  } else {
    hello.warning = `no free worker rank for thread ${threadId}; it runs without affinity or accelerator`
  }
  parentPort?.postMessage(hello)
}

// The answer is copied into its own ArrayBuffer and transferred, not cloned.
function handOver(bytes: Uint8Array): unknown {
  const copy = ownedCopy(bytes)
  return move(copy)
}

export default function runWorkMessage({ n, work }: ThreadWork): unknown {
  const port = parentPort
  const answer = port
    ? runWork(readWorkParts(work), {
        results: (indexes, encoded) => {
          const bytes = ownedCopy(encode([indexes, encoded] satisfies EarlyResultsWire))
          port.postMessage({ tsflowEarly: n, bytes } satisfies ThreadWorkProgress, [bytes.buffer as ArrayBuffer])
        },
        started: () => port.postMessage({ tsflowStarted: n } satisfies ThreadWorkProgress),
      })
    : runWork(readWorkParts(work))
  return answer instanceof Promise ? answer.then(handOver) : handOver(answer)
}
