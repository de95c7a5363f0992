/**
 * Builds each worker's setup (rank, CPUs, environment) and the pool that runs them.
 */
import { hostname } from 'node:os'
import { getCpuAffinity, nativeAvailable } from '../native/index.js'
import type { Logger } from '../util/logger.js'
import { encodeWorkerSetup, type WorkerSetup } from '../protocol/worker.js'
import { planAffinity } from './affinity.js'
import type { ManagerOptions } from './cli.js'
import type { PoolEvents, WorkerPool } from './pool.js'
import { ProcessWorkerPool } from './pool-processes.js'
import { ThreadWorkerPool } from './pool-threads.js'

/** Batches in flight per worker: the next batch is already there when the current one ends. */
export const PIPELINE_DEPTH = 2

export function workerSetups(options: ManagerOptions, logger: Logger): WorkerSetup[] {
  const plan = affinityPlan(options, logger)
  const setups: WorkerSetup[] = []
  for (let rank = 0; rank < options.workers; rank++) {
    const accelerator = options.accelerators[rank]
    const cpus = plan[rank]
    setups.push(
      encodeWorkerSetup({
        rank,
        workers: options.workers,
        mode: options.mode,
        managerId: options.managerId,
        blockId: options.blockId,
        acceleratorEnv: options.acceleratorEnv,
        ...(accelerator !== undefined ? { accelerator } : {}),
        ...(cpus ? { cpus } : {}),
      }),
    )
  }
  return setups
}

function affinityPlan(options: ManagerOptions, logger: Logger): (number[] | undefined)[] {
  const none = new Array<undefined>(options.workers).fill(undefined)
  if (options.affinity.kind === 'none') return none
  if (!nativeAvailable()) {
    logger.warn(`--affinity ${options.affinity.kind} ignored: tsflow's native addon is not available here, so workers run unpinned`)
    return none
  }
  let available: number[]
  try {
    // The CPUs this manager may use (a batch job's allocation), as inherited from its launcher.
    available = getCpuAffinity()
  } catch (error) {
    logger.warn(`--affinity ignored: could not read this process's CPU affinity: ${(error as Error).message}`)
    return none
  }
  const plan = planAffinity(options.affinity, options.workers, options.coresPerWorker, available)
  logger.info(`CPU affinity (${options.affinity.kind}): ${plan.map((cpus, rank) => `${rank}:[${cpus?.join(',') ?? ''}]`).join(' ')}`)
  return plan
}

export function createPool(options: ManagerOptions, setups: WorkerSetup[], events: PoolEvents, logger: Logger): WorkerPool {
  const where = `manager ${options.managerId} on ${hostname()}`
  if (options.mode === 'threads') {
    return new ThreadWorkerPool(setups, PIPELINE_DEPTH, `a worker thread of ${where}`, events, logger.child('threads'), options.resourceIntervalMs > 0)
  }
  const poolOptions = { depth: PIPELINE_DEPTH, where, managerId: options.managerId, ...(options.logDir ? { logDir: options.logDir } : {}) }
  return new ProcessWorkerPool(setups, poolOptions, events, logger.child('processes'))
}
