/**
 * CPU affinity plans: which CPUs each worker is pinned to. Indices in `block` and `alternating`
 * refer to the CPUs this manager may use (its own affinity mask, e.g. a Slurm allocation of
 * CPUs 8-15), not to absolute CPU numbers; explicit lists are absolute.
 */

import type { AffinitySpec } from '../protocol/manager.js'

export { parseAffinity, type AffinitySpec } from '../protocol/manager.js'

/**
 * The CPUs of each worker. `block`: worker i gets the i-th run of ceil(coresPerWorker) CPUs;
 * `alternating`: worker i gets CPUs i, i+W, i+2W, ... (W workers), which spreads neighbours
 * across sockets or SMT siblings on machines that number them that way. Both wrap around when
 * workers outnumber CPUs, so every worker is pinned somewhere.
 */
export function planAffinity(
  spec: AffinitySpec,
  workers: number,
  coresPerWorker: number,
  available: readonly number[],
): (number[] | undefined)[] {
  const plan: (number[] | undefined)[] = new Array(workers).fill(undefined)
  if (spec.kind === 'none') return plan
  if (spec.kind === 'list') return plan.map((_, rank) => spec.cpus[rank])
  const count = available.length
  if (count === 0) return plan
  const per = Math.max(1, Math.min(count, Math.ceil(coresPerWorker)))
  for (let rank = 0; rank < workers; rank++) {
    const picks = new Set<number>()
    for (let k = 0; k < per; k++) {
      const index = spec.kind === 'block' ? rank * per + k : rank + k * workers
      // Alternating stops at the end of the list instead of wrapping into other workers' CPUs,
      // unless that would leave this worker with none.
      if (spec.kind === 'alternating' && index >= count && picks.size > 0) break
      picks.add(available[index % count]!)
    }
    plan[rank] = [...picks].sort((a, b) => a - b)
  }
  return plan
}
