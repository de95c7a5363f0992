/**
 * The `#$` directive lines of a Grid Engine block script: a pure function of the block's
 * settings, so the script a user can `qsub` by hand is exactly what the provider submitted.
 */

export interface GridEngineJobSpec {
  jobName: string
  stdoutPath: string
  stderrPath: string
  /** the job's working directory (-wd) */
  workDir: string
  nodesPerBlock: number
  coresPerNode?: number
  /** GB per node */
  memPerNode?: number
  walltimeSeconds?: number
  queue?: string
  /** parallel environment; needed when the block has more than one slot */
  pe?: string
  exclusive?: boolean
  /** the complex that carries the memory request (h_vmem unless the site says otherwise) */
  memResource: string
  /** qsub -w e: refuse at submit a job no queue could ever run, instead of leaving it pending forever */
  verifyRequests: boolean
}

/** Slots the block asks for: coresPerNode on each of its nodes (one per node when unset). */
export function slotsOf(spec: Pick<GridEngineJobSpec, 'nodesPerBlock' | 'coresPerNode'>): number {
  return (spec.coresPerNode ?? 1) * spec.nodesPerBlock
}

/** Seconds as Grid Engine's h:mm:ss (hours may exceed 24). */
export function gridEngineTime(seconds: number): string {
  const whole = Math.ceil(seconds)
  const pad = (n: number): string => String(n).padStart(2, '0')
  return `${Math.floor(whole / 3600)}:${pad(Math.floor((whole % 3600) / 60))}:${pad(whole % 60)}`
}

/**
 * Grid Engine reads memory requests such as h_vmem per slot and multiplies them by the slots a
 * job gets on a host; memPerNode is per node, so each slot asks for memPerNode / coresPerNode.
 * Whole megabytes, rounded down so the node total never exceeds memPerNode.
 */
export function memPerSlotMB(memPerNodeGB: number, coresPerNode: number | undefined): number {
  return Math.max(1, Math.floor((memPerNodeGB * 1024) / (coresPerNode ?? 1)))
}

/** qsub reads these paths from a directive line split at spaces, and `host:path` at a colon. */
export function directivePathProblem(path: string): string | undefined {
  if (/[\s:]/.test(path)) return `contains a space or a colon, which #$ -o/-e/-wd lines cannot carry`
  return undefined
}

export function gridEngineDirectives(spec: GridEngineJobSpec): string[] {
  const lines = [
    `#$ -N ${spec.jobName}`,
    `#$ -o ${spec.stdoutPath}`,
    `#$ -e ${spec.stderrPath}`,
    '#$ -S /bin/bash',
    `#$ -wd ${spec.workDir}`,
  ]
  if (spec.verifyRequests) lines.push('#$ -w e')
  if (spec.queue !== undefined) lines.push(`#$ -q ${spec.queue}`)
  const slots = slotsOf(spec)
  if (spec.pe !== undefined) lines.push(`#$ -pe ${spec.pe} ${slots}`)
  if (spec.walltimeSeconds !== undefined) lines.push(`#$ -l h_rt=${gridEngineTime(spec.walltimeSeconds)}`)
  if (spec.memPerNode !== undefined) lines.push(`#$ -l ${spec.memResource}=${memPerSlotMB(spec.memPerNode, spec.coresPerNode)}M`)
  if (spec.exclusive) lines.push('#$ -l exclusive=true')
  return lines
}
