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
import { ownedCopy, readWorkParts, runWork } from './run.js'
import { applyAffinity, type WorkerSetup } from './setup.js'

/** What the manager passes to every thread (piscina's workerData). */
export interface ThreadPoolData {
  /** Int32 per rank: 0 when free, else the threadId holding it */
  slots: SharedArrayBuffer
  setups: WorkerSetup[]
}

/** Posted to the manager once per thread start (piscina re-emits it as a pool 'message'). */
export interface ThreadHello {
  tsflowThread: true
  threadId: number
  rank: number
  cpus?: number[]
  warning?: string
}

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

export default function runWorkMessage(work: Uint8Array): unknown {
  const answer = runWork(readWorkParts(work))
  return answer instanceof Promise ? answer.then(handOver) : handOver(answer)
}
