/**
 * CPU affinity plans: which CPUs each worker is pinned to. Indices in `block` and `alternating`
 * refer to the CPUs this manager may use (its own affinity mask, e.g. a Slurm allocation of
 * CPUs 8-15), not to absolute CPU numbers; explicit lists are absolute.
 */

export type AffinitySpec =
  | { kind: 'none' }
  | { kind: 'block' }
  | { kind: 'alternating' }
  /** one CPU list per worker, absolute CPU numbers */
  | { kind: 'list'; cpus: number[][] }

/** Parses `none`, `block`, `alternating` or a list such as "0,1;2,3" or "0-3;4-7". */
export function parseAffinity(text: string): AffinitySpec {
  if (text === 'none' || text === 'block' || text === 'alternating') return { kind: text }
  const perWorker = text.split(';').map((part) => parseCpuSet(part))
  if (perWorker.some((cpus) => cpus === undefined)) {
    throw new Error(
      `expects none, block, alternating or one CPU list per worker separated by ';' (e.g. "0,1;2,3" or "0-3;4-7"), got '${text}'`,
    )
  }
  return { kind: 'list', cpus: perWorker as number[][] }
}

function parseCpuSet(text: string): number[] | undefined {
  const cpus = new Set<number>()
  for (const item of text.split(',')) {
    const range = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(item)
    if (!range) return undefined
    const first = Number(range[1])
    const last = range[2] === undefined ? first : Number(range[2])
    if (last < first) return undefined
    for (let cpu = first; cpu <= last; cpu++) cpus.add(cpu)
  }
  return cpus.size > 0 ? [...cpus].sort((a, b) => a - b) : undefined
}

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
