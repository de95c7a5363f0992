/**
 * Entry module of each manager worker thread (`--mode threads`, loaded by piscina).
 *
 * piscina decides which thread runs what and replaces threads that die, so a thread cannot be
 * told its rank when it is created. Instead each thread claims the first free rank slot in a
 * shared array at start; the manager frees a dead thread's slot, and its replacement claims it,
 * inheriting that rank's CPUs and accelerator.
 */
import { readlinkSync } from 'node:fs'
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

/** The kernel's id of this thread: /proc/thread-self links to <pid>/task/<tid> (Node has no gettid). */
function ownTid(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    return Number.isInteger(tid) && tid > 0 ? tid : undefined
  } catch {
    return undefined
  }
}

const data = workerData as ThreadPoolData | undefined
/** where this thread says which batch it runs, for the manager's resource sampler (monitoring on) */
const running = data?.running ? new Int32Array(data.running) : undefined
let rank = -1
if (data) {
  rank = claimRank(new Int32Array(data.slots))
  const setup = data.setups[rank]
  const hello: ThreadHello = { tsflowThread: true, threadId, rank }
  if (running) {
    const tid = ownTid()
    if (tid !== undefined) hello.tid = tid
  }
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
  if (running && rank >= 0) {
    Atomics.store(running, rank, n + 1)
    try {
      const answer = runOne(n, work)
      if (answer instanceof Promise) return answer.finally(() => Atomics.store(running, rank, 0))
      Atomics.store(running, rank, 0)
      return answer
    } catch (error) {
      Atomics.store(running, rank, 0)
      throw error
    }
  }
  return runOne(n, work)
}

function runOne(n: number, work: Uint8Array): unknown {
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
