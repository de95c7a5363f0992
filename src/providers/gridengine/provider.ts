import { userInfo } from 'node:os'
import { ProviderError } from '../../errors.js'
import { SingleNodeLauncher } from '../../launchers/launchers.js'
import type { Launcher } from '../../launchers/base.js'
import { boolean, string } from '../../util/schema.js'
import { ClusterProvider, optionError, type BlockScript, type JobInfo } from '../cluster/provider.js'
import { describeFailure } from '../cluster/command.js'
import type { BlockOptions } from '../options.js'
import { directivePathProblem, gridEngineDirectives, slotsOf } from './directives.js'
import { combineEntries, decidingRecord, finishedJobInfo, parseQacct, parseQstatJ, parseQstatXml, parseQsubTerse, type QacctRecord, type QstatJDetail, type QstatJob } from './parse.js'

export interface GridEngineProviderOptions extends BlockOptions {
  /** Only for plain-object configs: `{ type: 'gridengine', ... }` ('sge' is an alias). */
  type?: 'gridengine' | 'sge'
  /** The cluster queue (-q); default: the scheduler picks one. */
  queue?: string
  /**
   * The parallel environment (-pe <pe> <slots>) a block of more than one slot needs, slots being
   * coresPerNode x nodesPerBlock; `qconf -spl` lists a site's. Its allocation rule decides how
   * slots spread over hosts ($pe_slots: all on one host).
   */
  pe?: string
  /** The complex that carries memPerNode, per slot (default 'h_vmem'; some sites use 'mem_free' or 'virtual_free'). */
  memResource?: string
  /** The job's working directory (-wd); default: the workflow's current directory. */
  workDir?: string
  /**
   * Have qsub check that some queue could ever run the block (-w e), so that an impossible
   * request (more slots than the parallel environment or queue has, a resource no host offers)
   * fails at submit with Grid Engine's words instead of pending forever. Default true.
   */
  verifyRequests?: boolean
}

const schedulerShape = { queue: string, pe: string, memResource: string, workDir: string, verifyRequests: boolean }

/** qacct calls at a time when several jobs left qstat at once. */
const QACCT_CONCURRENCY = 4

/** Accounting records older than the job's submission belong to an earlier job with the same number (ids restart when a cell is rebuilt). */
const RECORD_CLOCK_SLACK_MS = 120_000

/**
 * Blocks as Grid Engine jobs (Son of Grid Engine, Univa/Altair Grid Engine, Open Grid Scheduler):
 * `qsub -terse` to submit, `qstat -xml` for the jobs it still lists (with `qstat -j` for the
 * reason of an error state), `qacct -j` for the ones that left it, `qdel` to cancel. The
 * script, its options and the status cache come from the cluster middle layer.
 */
export class GridEngineProvider extends ClusterProvider<typeof schedulerShape> {
  readonly label = 'gridengine'
  protected readonly typeNames = ['gridengine', 'sge'] as const
  protected readonly templateDir = 'gridengine'
  protected readonly schedulerShape = schedulerShape
  protected readonly submitCommand = 'qsub'
  /** when each job was submitted, to tell its accounting record from an older job's with the same number */
  private readonly submittedAt = new Map<string, number>()

  constructor(options: GridEngineProviderOptions = {}) {
    super(options as Record<string, unknown>)
  }

  protected defaultLauncher(): Launcher {
    return new SingleNodeLauncher()
  }

  protected override checkOptions(path: string): void {
    const slots = slotsOf({ nodesPerBlock: this.options.nodesPerBlock, coresPerNode: this.options.coresPerNode })
    if (slots > 1 && this.scheduler.pe === undefined) {
      const which = this.options.nodesPerBlock > 1 ? 'nodesPerBlock' : 'coresPerNode'
      throw optionError(
        path,
        'pe',
        `is needed: ${this.options.coresPerNode ?? 1} coresPerNode x ${this.options.nodesPerBlock} nodesPerBlock = ${slots} slots, ` +
          `and Grid Engine grants more than one slot only through a parallel environment (list them with \`qconf -spl\`; ${which} asked for them)`,
      )
    }
    for (const option of ['queue', 'pe', 'memResource'] as const) {
      const value = this.scheduler[option]
      if (value !== undefined && !/^[A-Za-z0-9_.@*-]+$/.test(value)) {
        throw optionError(path, option, `must be a Grid Engine name (letters, digits, _ . - @ *), got ${JSON.stringify(value)}`)
      }
    }
    const workDir = this.scheduler.workDir
    const problem = workDir === undefined ? undefined : directivePathProblem(workDir)
    if (problem) throw optionError(path, 'workDir', problem)
  }

  protected directives(block: BlockScript): string[] {
    for (const [what, path] of [
      ['stdout', block.stdoutPath],
      ['stderr', block.stderrPath],
      ['working directory', this.workDir()],
    ] as const) {
      const problem = directivePathProblem(path)
      if (problem) throw new ProviderError(this.label, `the block's ${what} path ${JSON.stringify(path)} ${problem}; use a run directory without them`)
    }
    const { queue, pe } = this.scheduler
    return gridEngineDirectives({
      jobName: block.jobName,
      stdoutPath: block.stdoutPath,
      stderrPath: block.stderrPath,
      workDir: this.workDir(),
      nodesPerBlock: this.options.nodesPerBlock,
      memResource: this.scheduler.memResource ?? 'h_vmem',
      exclusive: this.options.exclusive,
      verifyRequests: this.scheduler.verifyRequests ?? true,
      ...(this.options.coresPerNode === undefined ? {} : { coresPerNode: this.options.coresPerNode }),
      ...(this.options.memPerNode === undefined ? {} : { memPerNode: this.options.memPerNode }),
      ...(this.options.walltimeSeconds === undefined ? {} : { walltimeSeconds: this.options.walltimeSeconds }),
      ...(queue === undefined ? {} : { queue }),
      ...(pe === undefined ? {} : { pe }),
    })
  }

  protected async submitJob(block: BlockScript): Promise<string> {
    const args = ['-terse', block.scriptPath]
    const result = await this.run('qsub', args)
    if (result.code !== 0) {
      // qsub's own words ("job rejected: the requested parallel environment ... does not exist")
      throw new ProviderError(this.label, `block ${block.blockId} was not accepted: ${describeFailure('qsub', args, result)}`)
    }
    const jobId = parseQsubTerse(result.stdout)
    if (jobId === undefined) {
      throw new ProviderError(this.label, `block ${block.blockId}: \`qsub -terse\` printed no job id: ${JSON.stringify(result.stdout.trim() || result.stderr.trim())}`)
    }
    this.submittedAt.set(jobId, Date.now())
    return jobId
  }

  protected async queryJobs(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    const args = ['-xml', '-u', this.user()]
    const result = await this.run('qstat', args)
    if (result.code !== 0) throw new ProviderError(this.label, describeFailure('qstat', args, result))
    const entries = new Map<string, QstatJob[]>()
    for (const entry of parseQstatXml(result.stdout)) {
      if (!jobIds.includes(entry.jobId)) continue
      entries.set(entry.jobId, [...(entries.get(entry.jobId) ?? []), entry])
    }
    const infos = new Map<string, JobInfo>()
    const inError: string[] = []
    for (const [jobId, list] of entries) {
      const { letters, state } = combineEntries(list)
      if (state === 'failed') inError.push(jobId)
      const held = state === 'pending' && letters.includes('h')
      infos.set(jobId, {
        state,
        nativeState: letters,
        ...(held ? { message: `held: it will not start until released (qrls ${jobId})` } : {}),
        ...(letters.includes('s') || letters.includes('S') || letters.includes('T') ? { message: 'suspended' } : {}),
      })
    }
    if (inError.length > 0) await this.explainErrors(inError, infos)
    return infos
  }

  /**
   * A job in error state (Eqw) never starts and never leaves the queue by itself: its reason
   * comes from `qstat -j`, and the job is deleted so that it does not sit in the queue forever
   * (a failed block is final here, so nothing else would delete it).
   */
  private async explainErrors(jobIds: readonly string[], infos: Map<string, JobInfo>): Promise<void> {
    const args = ['-j', jobIds.join(',')]
    const details = await this.run('qstat', args).then(
      (result) => parseQstatJ(result.stdout),
      () => new Map<string, QstatJDetail>(),
    )
    const deleted = await this.run('qdel', [...jobIds]).then(
      (result) => result.code === 0,
      () => false,
    )
    for (const jobId of jobIds) {
      const info = infos.get(jobId)!
      const reasons = details.get(jobId)?.errors ?? []
      const why = reasons.length > 0 ? reasons.join('; ') : `no reason recorded (see \`qstat -j ${jobId}\`)`
      const after = deleted ? 'the job was deleted with qdel' : `deleting it failed; delete it with \`qdel ${jobId}\``
      infos.set(jobId, { ...info, message: `Grid Engine could not start the job (error state ${info.nativeState}): ${why}; ${after}` })
    }
  }

  protected override async queryFinished(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    const infos = new Map<string, JobInfo>()
    // qacct reads one job per call, scanning the accounting file: only jobs that just left qstat
    // get here (each until its record is found), a few calls at a time.
    const queue = [...jobIds]
    const worker = async (): Promise<void> => {
      for (let jobId = queue.shift(); jobId !== undefined; jobId = queue.shift()) {
        const result = await this.run('qacct', ['-j', jobId])
        // exit 1 with "job id N not found": no record (yet: records are flushed every flush_time)
        if (result.code !== 0) continue
        const records = parseQacct(result.stdout).filter((record) => this.recordIsThisJob(jobId!, record))
        const record = decidingRecord(records)
        if (record) infos.set(jobId, finishedJobInfo(record))
      }
    }
    await Promise.all(Array.from({ length: Math.min(QACCT_CONCURRENCY, queue.length) }, worker))
    return infos
  }

  /** qdel, run synchronously when the workflow is killed (see ClusterProvider). */
  protected override cancelCommandLines(jobIds: readonly string[]): [string, string[]][] {
    return [['qdel', [...jobIds]]]
  }

  protected async cancelJobs(jobIds: readonly string[]): Promise<void> {
    const args = [...jobIds]
    const result = await this.run('qdel', args)
    if (result.code === 0) return
    // qdel exits 1 when any job is unknown ("denied: job "N" does not exist"), which for a job
    // that just ended is what we want; anything else is a real failure.
    const problems = `${result.stdout}\n${result.stderr}`
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !/does not exist/.test(line) && !/has (registered|deleted)/.test(line))
    if (problems.length > 0) throw new ProviderError(this.label, `cancelling job(s) ${jobIds.join(', ')} failed: ${describeFailure('qdel', args, result)}`)
  }

  /** Jobs are listed for the submitting user; '*' (everyone's) when the user has no name here. */
  private user(): string {
    try {
      return userInfo().username
    } catch {
      return process.env.USER ?? '*'
    }
  }

  private workDir(): string {
    return this.scheduler.workDir ?? process.cwd()
  }

  /** Whether an accounting record is of the job this provider submitted, not of an older job that had its number. */
  private recordIsThisJob(jobId: string, record: QacctRecord): boolean {
    const submitted = this.submittedAt.get(jobId)
    if (submitted === undefined || record.qsubTime === undefined) return true
    return record.qsubTime >= submitted - RECORD_CLOCK_SLACK_MS
  }
}
