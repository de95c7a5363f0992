/**
 * What makes one worker different from its siblings: its rank, the CPUs it is pinned to and
 * its environment (rank, accelerator). Built by the manager, applied by the worker itself at
 * start, before any task runs.
 */
import { setCpuAffinity } from '../native/index.js'

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
