import { ConfigError, ProviderError } from '../../errors.js'
import type { Launcher } from '../../launchers/base.js'
import { SrunLauncher } from '../../launchers/slurm.js'
import type { Check } from '../../util/schema.js'
import type { BlockOptions } from '../options.js'
import { ClusterProvider, type BlockScript, type JobInfo } from '../cluster/provider.js'
import { describeFailure } from '../cluster/command.js'
import {
  SACCT_FIELDS,
  isAccountingDisabled,
  isInvalidJobId,
  jobInfo,
  parseSacct,
  parseSbatch,
  parseScontrol,
  parseSqueue,
  squeueFormat,
  type SlurmJobRecord,
} from './parse.js'

export interface SlurmProviderOptions extends BlockOptions {
  type?: 'slurm'
  /** The partition (queue) blocks are submitted to (default: the cluster's default partition). */
  partition?: string
  /** The account charged (sbatch --account). */
  account?: string
  /** The quality of service (sbatch --qos). */
  qos?: string
  /** Node features required (sbatch --constraint), e.g. 'haswell' or 'gpu&bigmem'. */
  constraint?: string
  /** The cluster(s) of a multi-cluster Slurm to submit to (sbatch --clusters). */
  clusters?: string
}

/** A value written into an #SBATCH line: one word, because sbatch splits the line on spaces. */
const word =
  (what: string): Check<string> =>
  (value, path) => {
    if (typeof value !== 'string' || !/^[^\s'"\\]+$/.test(value)) {
      throw new ConfigError(path, `must be ${what}: one word without spaces or quotes (got ${JSON.stringify(value)})`)
    }
    return value
  }

const slurmShape = {
  partition: word('a partition name'),
  account: word('an account name'),
  qos: word('a QOS name'),
  constraint: word('a constraint expression'),
  clusters: word('a cluster name or comma-separated names'),
}

/**
 * Blocks as Slurm batch jobs: `sbatch --parsable` submits the block's script (written to the run
 * directory from src/providers/slurm/template.sh, so it can be submitted by hand), `squeue
 * --states=all` reads the states of all live blocks in one call, jobs that left squeue are looked
 * up with `sacct` (when the cluster keeps accounting) and `scontrol show job`, and `scancel`
 * stops them. The default launcher is srun, one copy of the command per node.
 */
export class SlurmProvider extends ClusterProvider<typeof slurmShape> {
  readonly label = 'slurm'
  protected readonly typeNames = ['slurm']
  protected readonly templateDir = 'slurm'
  protected readonly schedulerShape = slurmShape
  protected readonly submitCommand = 'sbatch'
  /** Set once sacct said the cluster keeps no accounting: it is not asked again. */
  private accountingDisabled = false

  constructor(options: SlurmProviderOptions = {}) {
    super(options as Record<string, unknown>)
  }

  protected defaultLauncher(): Launcher {
    return new SrunLauncher()
  }

  protected directives(block: BlockScript): string[] {
    const o = this.options
    const lines = [`--nodes=${o.nodesPerBlock}`, `--ntasks-per-node=${block.tasksPerNode}`]
    // coresPerNode is shared among the command's copies on a node.
    if (o.coresPerNode !== undefined) lines.push(`--cpus-per-task=${Math.max(1, Math.floor(o.coresPerNode / block.tasksPerNode))}`)
    if (o.memPerNode !== undefined) lines.push(`--mem=${Math.max(1, Math.floor(o.memPerNode * 1024))}M`)
    if (o.walltimeSeconds !== undefined) lines.push(`--time=${slurmTime(o.walltimeSeconds)}`)
    if (o.exclusive) lines.push('--exclusive')
    const s = this.scheduler
    if (s.partition) lines.push(`--partition=${s.partition}`)
    if (s.account) lines.push(`--account=${s.account}`)
    if (s.qos) lines.push(`--qos=${s.qos}`)
    if (s.constraint) lines.push(`--constraint=${s.constraint}`)
    if (s.clusters) lines.push(`--clusters=${s.clusters}`)
    return lines.map((line) => `#SBATCH ${line}`)
  }

  protected async submitJob(block: BlockScript): Promise<string> {
    const args = ['--parsable', block.scriptPath]
    const result = await this.runChecked('sbatch', args, `submitting block ${block.blockId}`)
    const parsed = parseSbatch(result.stdout)
    if (!parsed) {
      throw new ProviderError(this.label, `submitting block ${block.blockId}: sbatch printed no job id: ${describeFailure('sbatch', args, result)}`)
    }
    // With --clusters an id is only unique within its cluster: the job id keeps the cluster
    // (the one sbatch chose, else the option) and every later command is sent there.
    const clusters = this.scheduler.clusters
    return clusters ? `${parsed.jobId};${parsed.cluster ?? clusters}` : parsed.jobId
  }

  protected async queryJobs(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    const found = new Map<string, JobInfo>()
    const wanted = new Set(jobIds)
    const neverStart: string[] = []
    for (const [cluster, ids] of byCluster(jobIds)) {
      const args = ['--noheader', '--states=all', '-O', squeueFormat(), `--jobs=${ids.join(',')}`, ...clusterArgs(cluster)]
      const result = await this.run('squeue', args)
      // A single unknown id makes squeue exit 1 ("Invalid job id specified"); several just leave
      // the unknown ones out. Either way: not listed, which is not "completed".
      if (result.code !== 0 && !isInvalidJobId(result.stderr)) {
        throw new ProviderError(this.label, `asking for job states failed: ${describeFailure('squeue', args, result)}`)
      }
      if (result.code !== 0) continue
      for (const record of parseSqueue(result.stdout)) {
        const id = jobKey(record, cluster)
        if (!wanted.has(id)) continue
        const info = this.infoOf(record)
        if (record.state === 'PENDING' && info.state === 'failed') neverStart.push(id)
        found.set(id, info)
      }
    }
    if (neverStart.length > 0) await this.cancelNeverStarting(neverStart, found)
    return found
  }

  /**
   * Jobs squeue no longer lists: sacct when the cluster keeps accounting, else (and for what
   * sacct does not know) `scontrol show job`, which still knows jobs squeue was not asked about
   * with the right cluster or that a race left out.
   */
  protected override async queryFinished(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    const found = new Map<string, JobInfo>()
    const wanted = new Set(jobIds)
    if (!this.accountingDisabled) {
      for (const [cluster, ids] of byCluster(jobIds)) {
        const args = ['--noheader', '--parsable2', '--allocations', `--format=${SACCT_FIELDS}`, `--jobs=${ids.join(',')}`, ...clusterArgs(cluster)]
        const result = await this.run('sacct', args)
        if (result.code !== 0) {
          if (isAccountingDisabled(result.stderr)) {
            this.accountingDisabled = true
            this.logger.info('sacct: this Slurm keeps no accounting; jobs that left squeue are looked up with scontrol show job')
            break
          }
          this.logger.warn(`sacct failed; trying scontrol show job: ${describeFailure('sacct', args, result)}`)
          continue
        }
        for (const record of parseSacct(result.stdout)) {
          const id = jobKey(record, cluster)
          if (wanted.has(id)) found.set(id, this.infoOf(record))
        }
      }
    }
    for (const id of jobIds.filter((id) => !found.has(id))) {
      const [jobId, cluster] = id.split(';') as [string, string | undefined]
      const args = ['-o', 'show', 'job', jobId, ...clusterArgs(cluster)]
      const result = await this.run('scontrol', args)
      if (result.code !== 0) {
        // An unknown id is the answer "no record"; any other failure leaves this job without one too.
        if (!isInvalidJobId(result.stderr)) this.logger.warn(`asking for job ${id} failed: ${describeFailure('scontrol', args, result)}`)
        continue
      }
      const record = parseScontrol(result.stdout).find((r) => r.jobId === jobId)
      if (record) found.set(id, this.infoOf(record))
    }
    return found
  }

  protected override cancelCommandLines(jobIds: readonly string[]): [string, string[]][] {
    return [...byCluster(jobIds)].map(([cluster, ids]) => ['scancel', [...clusterArgs(cluster), ...ids]])
  }

  protected async cancelJobs(jobIds: readonly string[]): Promise<void> {
    for (const [cluster, ids] of byCluster(jobIds)) {
      // scancel ignores ids it does not know (exit 0); anything else is a real failure.
      await this.runChecked('scancel', [...clusterArgs(cluster), ...ids], `cancelling job(s) ${ids.join(', ')}`)
    }
  }

  private infoOf(record: SlurmJobRecord): JobInfo {
    return jobInfo(record, this.options.walltime)
  }

  /** A job Slurm will never start is failed at once; it is also cancelled, so it does not sit in the queue forever. */
  private async cancelNeverStarting(jobIds: string[], found: Map<string, JobInfo>): Promise<void> {
    let note = 'tsflow cancelled it'
    try {
      await this.cancelJobs(jobIds)
    } catch (error) {
      note = `tsflow could not cancel it: ${(error as Error).message}`
    }
    for (const id of jobIds) {
      const info = found.get(id)!
      info.message = `${info.message ?? ''}; ${note}`
    }
  }
}

/** Slurm's --time: "[D-]HH:MM:SS". */
export function slurmTime(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds))
  const days = Math.floor(s / 86400)
  const pad = (n: number): string => String(n).padStart(2, '0')
  const hms = `${pad(Math.floor((s % 86400) / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`
  return days > 0 ? `${days}-${hms}` : hms
}

/** Bare job ids grouped by the cluster in their provider id ("123;clusterA"); undefined = the default cluster. */
function byCluster(jobIds: readonly string[]): Map<string | undefined, string[]> {
  const groups = new Map<string | undefined, string[]>()
  for (const id of jobIds) {
    const [bare, cluster] = id.split(';') as [string, string | undefined]
    const list = groups.get(cluster) ?? []
    list.push(bare)
    groups.set(cluster, list)
  }
  return groups
}

function clusterArgs(cluster: string | undefined): string[] {
  return cluster === undefined ? [] : [`--clusters=${cluster}`]
}

/** The provider's id of a record from a query sent to `cluster`: "id", or "id;cluster" with --clusters. */
function jobKey(record: SlurmJobRecord, cluster: string | undefined): string {
  return cluster === undefined ? record.jobId : `${record.jobId};${cluster}`
}
