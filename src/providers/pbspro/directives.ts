// The #PBS lines of a block's script, as a pure function of the block's settings.

import { formatWalltime } from '../options.js'

export interface PbsBlockRequest {
  /** -N: the job name */
  jobName: string
  /** -o / -e: absolute paths of the block's stdout and stderr files */
  stdoutPath: string
  stderrPath: string
  /** chunks (one per node) when `select` is not given */
  nodes: number
  coresPerNode?: number
  /** GB per node; fractions are written in mb */
  memPerNode?: number
  walltimeSeconds?: number
  /** the user's select statement, written verbatim instead of the one built from the counts */
  select?: string
  /** the user's place statement (default scatter) */
  place?: string
  exclusive?: boolean
  queue?: string
  account?: string
}

/** "HH:MM:SS" with hours past 24 kept as hours, which is how PBS reads walltime. */
export function pbsWalltime(seconds: number): string {
  return formatWalltime(Math.ceil(seconds))
}

/** A PBS size: whole GB as "8gb", fractions as mb ("1.5" GB -> "1536mb"). */
export function pbsMemory(gb: number): string {
  return Number.isInteger(gb) ? `${gb}gb` : `${Math.ceil(gb * 1024)}mb`
}

/** The select statement built from the block's counts: one chunk per node. */
export function buildSelect(request: Pick<PbsBlockRequest, 'nodes' | 'coresPerNode' | 'memPerNode'>): string {
  let select = String(request.nodes)
  if (request.coresPerNode !== undefined) select += `:ncpus=${request.coresPerNode}`
  if (request.memPerNode !== undefined) select += `:mem=${pbsMemory(request.memPerNode)}`
  return select
}

/**
 * The place statement: the user's, or scatter (one chunk per host, so nodesPerBlock chunks land on
 * nodesPerBlock hosts and each host runs one manager); `excl` added when the block is exclusive.
 */
export function buildPlace(place: string | undefined, exclusive: boolean | undefined): string {
  const base = place ?? 'scatter'
  if (!exclusive || /(^|:)excl(host)?($|:)/.test(base)) return base
  return `${base}:excl`
}

/**
 * qsub reads -o/-e as [host:]path and splits directives at whitespace, so a path with a space
 * or a colon would be misread; fail at submit with the reason instead.
 */
export function checkPbsPath(what: string, path: string): void {
  if (/[\s:]/.test(path)) {
    throw new Error(`the block's ${what} path ${JSON.stringify(path)} contains whitespace or ':', which PBS directives cannot carry; use a run directory without them`)
  }
}

/** The #PBS lines, in the order a person would write them. */
export function pbsDirectives(request: PbsBlockRequest): string[] {
  checkPbsPath('stdout', request.stdoutPath)
  checkPbsPath('stderr', request.stderrPath)
  const lines = [
    `#PBS -N ${request.jobName}`,
    `#PBS -o ${request.stdoutPath}`,
    `#PBS -e ${request.stderrPath}`,
    `#PBS -l select=${request.select ?? buildSelect(request)}`,
  ]
  if (request.walltimeSeconds !== undefined) lines.push(`#PBS -l walltime=${pbsWalltime(request.walltimeSeconds)}`)
  lines.push(`#PBS -l place=${buildPlace(request.place, request.exclusive)}`)
  if (request.queue !== undefined) lines.push(`#PBS -q ${request.queue}`)
  if (request.account !== undefined) lines.push(`#PBS -A ${request.account}`)
  return lines
}

/** A PBS job name from a block id: at most 15 characters on older servers, starting with a letter. */
export function pbsJobName(blockId: string): string {
  return `tsf.${blockId}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 15)
}
