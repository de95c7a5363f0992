import { ConfigError, ProviderError } from '../../errors.js'
import { MpiExecLauncher, SingleNodeLauncher } from '../../launchers/launchers.js'
import type { Launcher } from '../../launchers/base.js'
import { join, string, type Check } from '../../util/schema.js'
import { ClusterProvider, type BlockScript, type JobInfo } from '../cluster/provider.js'
import { describeFailure } from '../cluster/command.js'
import type { BlockOptions } from '../options.js'
import { pbsDirectives, pbsJobName } from './directives.js'
import { matchJobIds, parseQstatErrors, parseQsubOutput, readQstatRun } from './parse.js'

export interface PBSProProviderOptions extends BlockOptions {
  /** Only for plain-object configs: `{ type: 'pbspro', ... }` (or its alias 'pbs'). */
  type?: 'pbspro' | 'pbs'
  /** `#PBS -q`: the queue (default: the server's default queue). */
  queue?: string
  /** `#PBS -A`: the account (project) to charge. */
  account?: string
  /**
   * `#PBS -l select=...` written verbatim (e.g. '2:ncpus=64:ngpus=4:mem=200gb'), instead of the
   * one built from nodesPerBlock, coresPerNode and memPerNode.
   */
  select?: string
  /** `#PBS -l place=...` (default 'scatter': one chunk per host; ':excl' is added when `exclusive`). */
  place?: string
}

/** One word: a PBS directive value is split at whitespace. */
const word: Check<string> = (value, path) => {
  const text = string(value, path).trim()
  if (/\s/.test(text)) throw new ConfigError(path, `must be one word without spaces, as a #PBS directive reads it (got ${JSON.stringify(value)})`)
  return text
}

const pbsShape = { queue: word, account: word, select: word, place: word }

/** Chunks a select statement asks for: "2:ncpus=4+1:ncpus=8" is 3 (a chunk spec without a count is 1). */
export function selectChunks(select: string): number {
  return select.split('+').reduce((sum, spec) => sum + (/^[0-9]+/.exec(spec) ? Number.parseInt(spec, 10) : 1), 0)
}

/**
 * Blocks as PBS Pro / OpenPBS jobs: `qsub` submits the block's script (written to the run
 * directory from template.sh), one `qstat -f -F json -x` per poll reads every live job (with
 * -x, finished jobs stay visible with their Exit_status while the server keeps job history),
 * `qdel` cancels. The provider runs the commands found on PATH, as on a PBS login node.
 *
 * The default launcher is `single_node` for one-node blocks and `mpiexec` when nodesPerBlock > 1:
 * a PBS job script runs on the first node of its allocation only, and mpiexec (integrated with
 * PBS through its TM interface or PALS) is how a process gets started on every node.
 */
export class PBSProProvider extends ClusterProvider<typeof pbsShape> {
  readonly label = 'pbspro'
  protected readonly typeNames = ['pbspro', 'pbs'] as const
  protected readonly templateDir = 'pbspro'
  protected readonly schedulerShape = pbsShape
  protected readonly submitCommand = 'qsub'

  constructor(options: PBSProProviderOptions = {}) {
    super(options as Record<string, unknown>)
  }

  protected defaultLauncher(): Launcher {
    // Called while options are being resolved, before this.options holds them: read the raw
    // value, which the schema has already checked to be a positive integer when present.
    const nodes = typeof this.raw.nodesPerBlock === 'number' ? this.raw.nodesPerBlock : 1
    return nodes > 1 ? new MpiExecLauncher() : new SingleNodeLauncher()
  }

  protected override checkOptions(path: string): void {
    const { select, place } = this.scheduler
    if (select === undefined) return
    for (const option of ['coresPerNode', 'memPerNode'] as const) {
      if (this.raw[option] !== undefined) {
        throw new ConfigError(join(path, option), `cannot be combined with select (${JSON.stringify(select)}), which is written verbatim; put ncpus/mem in select, or drop select`)
      }
    }
    // With scatter placement every chunk is a host, and the launcher starts one manager per
    // node of nodesPerBlock: the two must agree or managers would be missing or doubled.
    const chunks = selectChunks(select)
    if ((place ?? 'scatter').startsWith('scatter') && chunks !== this.options.nodesPerBlock) {
      throw new ConfigError(
        join(path, 'select'),
        `asks for ${chunks} chunk(s), but nodesPerBlock is ${this.options.nodesPerBlock}; with place=scatter each chunk is a node, so set nodesPerBlock: ${chunks}`,
      )
    }
  }

  protected override jobName(blockId: string): string {
    return pbsJobName(blockId)
  }

  protected directives(block: BlockScript): string[] {
    const { queue, account, select, place } = this.scheduler
    try {
      return pbsDirectives({
        jobName: block.jobName,
        stdoutPath: block.stdoutPath,
        stderrPath: block.stderrPath,
        nodes: this.options.nodesPerBlock,
        ...(this.options.coresPerNode === undefined ? {} : { coresPerNode: this.options.coresPerNode }),
        ...(this.options.memPerNode === undefined ? {} : { memPerNode: this.options.memPerNode }),
        ...(this.options.walltimeSeconds === undefined ? {} : { walltimeSeconds: this.options.walltimeSeconds }),
        ...(select === undefined ? {} : { select }),
        ...(place === undefined ? {} : { place }),
        exclusive: this.options.exclusive,
        ...(queue === undefined ? {} : { queue }),
        ...(account === undefined ? {} : { account }),
      })
    } catch (error) {
      throw new ProviderError(this.label, `cannot write the directives of block ${block.blockId}: ${(error as Error).message}`, { cause: error })
    }
  }

  protected async submitJob(block: BlockScript): Promise<string> {
    const args = [block.scriptPath]
    const result = await this.run('qsub', args)
    if (result.code !== 0) {
      throw new ProviderError(this.label, `block ${block.blockId} was not submitted: ${describeFailure('qsub', args, result)} (script: ${block.scriptPath})`)
    }
    const jobId = parseQsubOutput(result.stdout)
    if (jobId === undefined) {
      throw new ProviderError(this.label, `qsub accepted block ${block.blockId} but printed no job id: ${JSON.stringify(result.stdout.trim().slice(0, 300))}`)
    }
    return jobId
  }

  protected async queryJobs(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    const args = ['-f', '-F', 'json', '-x', ...jobIds]
    const result = await this.run('qstat', args)
    let found
    try {
      found = readQstatRun(result)
    } catch (error) {
      throw new ProviderError(this.label, `${(error as Error).message} (command: qstat ${args.join(' ')})`, { cause: error })
    }
    const answers = matchJobIds(jobIds, found)
    // A job PBS says will never start is reported failed; delete it so it leaves the queue too.
    const hopeless = [...answers].filter(([, info]) => info.neverStarts).map(([id]) => id)
    if (hopeless.length > 0) {
      this.logger.warn(`deleting job(s) ${hopeless.join(', ')}: PBS says they will never start`)
      await this.cancelJobs(hopeless).catch((error: unknown) => this.logger.warn(`deleting job(s) ${hopeless.join(', ')} failed: ${(error as Error).message}`))
    }
    return answers
  }

  /** qdel, run synchronously when the workflow is killed (see ClusterProvider). */
  protected override cancelCommandLines(jobIds: readonly string[]): [string, string[]][] {
    return [['qdel', [...jobIds]]]
  }

  /**
   * qdel; ids PBS calls unknown or finished need nothing more. Any other refusal (typically a
   * MoM that does not answer) is retried once with `-W force`, which removes the job from the
   * server even when its execution host cannot be reached. `qdel -x` is not used: it deletes
   * the job's history, which is how the next status query learns the job ended.
   */
  protected async cancelJobs(jobIds: readonly string[]): Promise<void> {
    const first = await this.run('qdel', jobIds)
    if (first.code === 0) return
    const errors = parseQstatErrors(first.stderr)
    if (errors.other.length === 0 && first.code !== null) return
    const settled = new Set([...errors.unknown, ...errors.finished])
    const rest = jobIds.filter((id) => !settled.has(id))
    if (rest.length === 0) return
    this.logger.warn(`qdel ${jobIds.join(' ')} failed (${errors.other.join('; ') || `code ${first.code}`}); retrying with -W force`)
    const args = ['-W', 'force', ...rest]
    const forced = await this.run('qdel', args)
    if (forced.code === 0 || parseQstatErrors(forced.stderr).other.length === 0) return
    throw new ProviderError(this.label, `cancelling job(s) ${rest.join(', ')} failed: ${describeFailure('qdel', args, forced)}`)
  }
}
