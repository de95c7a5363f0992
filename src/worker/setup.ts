/**
 * What makes one worker different from its siblings: its rank, the CPUs it is pinned to and
 * its environment (rank, accelerator). Built by the manager, applied by the worker itself at
 * start, before any task runs.
 */
import { setCpuAffinity } from '../native/index.js'

export interface WorkerSetup {
  rank: number
  /** CPUs to pin the worker to; undefined leaves it unpinned */
  cpus?: number[]
  /** variables set in the worker's process.env */
  env: Record<string, string>
}

/** Environment variable through which a worker process learns its CPU list. */
export const CPUS_ENV = 'TSFLOW_WORKER_CPUS'
export const RANK_ENV = 'TSFLOW_WORKER_RANK'

/**
 * Pins the calling thread (the worker's main thread in a process, or the worker thread itself)
 * to `cpus`. Returns a warning instead of throwing: a worker without affinity is still useful,
 * so a missing addon or a CPU outside the cgroup must not stop it.
 */
export function applyAffinity(cpus: readonly number[] | undefined): string | undefined {
  if (!cpus || cpus.length === 0) return undefined
  try {
    setCpuAffinity(cpus, 0)
    return undefined
  } catch (error) {
    return `could not pin worker to CPUs [${cpus.join(',')}]: ${(error as Error)?.message ?? String(error)}`
  }
}

/** Parses the "0,1,2" list a worker process receives in TSFLOW_WORKER_CPUS. */
export function parseCpuList(text: string | undefined): number[] | undefined {
  if (!text) return undefined
  const cpus = text.split(',').map((part) => Number(part.trim()))
  return cpus.every((cpu) => Number.isInteger(cpu) && cpu >= 0) ? cpus : undefined
}
