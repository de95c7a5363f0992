import { checkBlockId, checkEnvNames, launchedCommand } from '../submit-checks.js'
import { BlockOptionsView } from '../block-options-view.js'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join as joinPath } from 'node:path'
import { ConfigError, ProviderError } from '../../errors.js'
import type { Launcher } from '../../launchers/base.js'
import { settledWithin } from '../../util/deferred.js'
import { readTail } from '../../util/file-tail.js'
import { silentLogger, type Logger } from '../../util/logger.js'
import { join, object, oneOf, optional, type Shape, type Validated } from '../../util/schema.js'
import { isFinalBlockState, type BlockState, type BlockStatus, type ExecutionProvider, type ProviderContext, type SubmitOptions } from '../base.js'
import { blockOptionShape, formatWalltime, resolveBlockOptions, type ResolvedBlockOptions } from '../options.js'
import { blockSetup } from '../script.js'
import { describeFailure, runCommand, type CommandResult } from './command.js'
import { cancelOnExit, forgetOnExit, runSync, type ExitCancellable } from './exit-cancel.js'
import { loadTemplate, renderTemplate } from './template.js'

/** What a scheduler says about one job, already mapped through its state table. */
export interface JobInfo {
  state: BlockState
  /** the scheduler's own word for the state ('PENDING', 'qw', 'Q', ...) */
  nativeState: string
  /** the scheduler's reason or comment, if it gave one */
  message?: string
  exitCode?: number
}

/** One block as its script sees it: what directives() and submitJob() are given. */
export interface BlockScript {
  blockId: string
  jobName: string
  scriptPath: string
  stdoutPath: string
  stderrPath: string
  exitPath: string
  tasksPerNode: number
}

interface ClusterJob extends BlockScript {
  jobId: string
  cancelRequested: boolean
  /** the last status; kept for good once final */
  last?: BlockStatus
  lastQueriedMs: number
}

/** Statuses younger than this are answered from the cache (the strategy and the executor both poll). */
const DEFAULT_STATUS_CACHE_MS = 1000

/**
 * The middle layer under every batch-scheduler provider (Slurm, PBS Pro, Grid Engine), so that
 * each scheduler is only its template, its commands and its state table. It owns what they all
 * do the same way:
 *
 * - options: the block options every provider has, plus the scheduler's own shape, validated
 *   once with errors naming the option path;
 * - the script: the scheduler's template (src/providers/<dir>/template.sh) filled in and written
 *   to the run directory as block-<id>.sh, so a user can submit it by hand; stdout and stderr go
 *   next to it, and the script records its command's exit status in block-<id>.exit;
 * - scheduler commands through runCommand: bounded by cmdTimeoutMs, stderr kept for the message;
 * - status: one batched query per poll for all live jobs, answers cached briefly and final ones
 *   for good; a job the scheduler no longer lists is resolved through queryFinished() (accounting)
 *   and then the exit record; without any evidence it is 'unknown', never completed or failed;
 *   a failed query is 'unknown' with the command's stderr;
 * - cancel and a bounded shutdown that cancels every live job it started.
 */
export abstract class ClusterProvider<S extends Shape = Shape> extends BlockOptionsView implements ExecutionProvider, ExitCancellable {
  abstract readonly label: string
  /** The names plain-object configs may use as `type` (the first is the canonical one). */
  protected abstract readonly typeNames: readonly string[]
  /** Folder of template.sh under src/providers/. */
  protected abstract readonly templateDir: string
  /** The scheduler's own options. */
  protected abstract readonly schedulerShape: S
  /** The launcher when the user names none. */
  protected abstract defaultLauncher(): Launcher
  /** The scheduler's own directive lines for this block (schedulerOptions are appended by the base). */
  protected abstract directives(block: BlockScript): string[]
  /** Submits the written script; resolves to the job id. Use this.run(); throw ProviderError with the scheduler's message on failure. */
  protected abstract submitJob(block: BlockScript): Promise<string>
  /**
   * The jobs the scheduler still lists, by id. Ids it does not know are simply absent. A failed
   * query must throw (the base reports the jobs 'unknown' with the error's message).
   */
  protected abstract queryJobs(jobIds: readonly string[]): Promise<Map<string, JobInfo>>
  /** Asks for the cancellation of these (live) jobs. */
  protected abstract cancelJobs(jobIds: readonly string[]): Promise<void>
  /** The scheduler's record of jobs that left its queue (sacct, qacct, qstat -x), when it has one. */
  protected queryFinished?(jobIds: readonly string[]): Promise<Map<string, JobInfo>>
  /**
   * The command lines that cancel these jobs (scancel, qdel), run synchronously when the workflow
   * is killed by a signal or exits without cleanup() (exit-cancel.ts). Without it, such jobs stay.
   */
  protected cancelCommandLines?(jobIds: readonly string[]): [string, string[]][]
  /** How the user submits the written script by hand, for the comment at its top. */
  protected abstract readonly submitCommand: string

  protected options: ResolvedBlockOptions
  protected scheduler: Validated<S> = {} as Validated<S>
  protected logger: Logger = silentLogger
  protected statusCacheMs = DEFAULT_STATUS_CACHE_MS
  private validated = false
  private context: ProviderContext | undefined
  private closed = false
  private readonly jobs = new Map<string, ClusterJob>()
  private inflightQuery: Promise<void> | undefined

  constructor(protected readonly raw: Record<string, unknown> = {}) {
    super()
    // Usable defaults before validate(); validate() recomputes them from the raw options.
    this.options = resolveBlockOptions({}, '', { launcher: () => this.defaultLauncher() })
  }

  validate(path: string): void {
    const schema = object({ type: optional(oneOf(...this.typeNames)), ...blockOptionShape, ...this.schedulerShape })
    const validated = schema(this.raw, path)
    this.options = resolveBlockOptions(validated, path, { launcher: () => this.defaultLauncher() })
    const own: Record<string, unknown> = {}
    for (const key of Object.keys(this.schedulerShape)) own[key] = (validated as Record<string, unknown>)[key]
    this.scheduler = own as Validated<S>
    this.checkOptions(path)
    this.validated = true
  }

  /** Cross-option checks of a scheduler; throw ConfigError naming join(path, option). */
  protected checkOptions(_path: string): void {}

  async init(context: ProviderContext): Promise<void> {
    if (this.closed) throw new ProviderError(this.label, 'init() was called after shutdown(); create a new provider')
    if (!this.validated) this.validate('provider')
    try {
      mkdirSync(context.scriptDir, { recursive: true })
    } catch (error) {
      throw new ProviderError(this.label, `cannot create the script directory ${context.scriptDir}: ${(error as Error).message}`, { cause: error })
    }
    this.context = context
    this.logger = context.logger
  }

  async submit(command: string, blockId: string, options: SubmitOptions = {}): Promise<string> {
    const context = this.ready()
    checkBlockId(this.label, blockId)
    for (const job of this.jobs.values()) {
      if (job.blockId === blockId && !(job.last && isFinalBlockState(job.last.state))) {
        throw new ProviderError(this.label, `block ${blockId} is already submitted (job ${job.jobId}); block ids must be unique`)
      }
    }
    const env: Record<string, string> = { TSFLOW_BLOCK_ID: blockId, ...options.env }
    checkEnvNames(this.label, blockId, env)
    const tasksPerNode = options.tasksPerNode ?? 1
    const launched = launchedCommand(this.label, blockId, this.options.launcher, command, tasksPerNode, this.options.nodesPerBlock)
    const base = joinPath(context.scriptDir, `block-${blockId}`)
    const block: BlockScript = {
      blockId,
      jobName: this.jobName(blockId),
      scriptPath: `${base}.sh`,
      stdoutPath: `${base}.out`,
      stderrPath: `${base}.err`,
      exitPath: `${base}.exit`,
      tasksPerNode,
    }
    const script = this.script(block, env, launched)
    try {
      // An exit record left by an earlier block of the same id would be taken as this one's.
      rmSync(block.exitPath, { force: true })
      writeFileSync(block.scriptPath, script, { mode: 0o755 })
    } catch (error) {
      throw new ProviderError(this.label, `cannot write the script of block ${blockId} (${block.scriptPath}): ${(error as Error).message}`, { cause: error })
    }
    const jobId = await this.submitJob(block)
    const job: ClusterJob = { ...block, jobId, cancelRequested: false, lastQueriedMs: 0 }
    this.jobs.set(jobId, job)
    cancelOnExit(this)
    this.logger.info(`block ${blockId} submitted as job ${jobId} (${block.scriptPath})`)
    if (this.closed) {
      // shutdown() ran while this block was being submitted and could not see it: stop it here.
      await this.cancel([jobId]).catch((error: unknown) => this.logger.error(`cancelling job ${jobId} submitted during shutdown failed`, error))
      throw new ProviderError(this.label, `block ${blockId} was submitted during shutdown() and has been cancelled (job ${jobId})`)
    }
    return jobId
  }

  async status(jobIds: readonly string[]): Promise<BlockStatus[]> {
    const now = Date.now()
    const stale = jobIds.filter((id) => {
      const job = this.jobs.get(id)
      return job !== undefined && !(job.last && isFinalBlockState(job.last.state)) && now - job.lastQueriedMs >= this.statusCacheMs
    })
    if (stale.length > 0) await this.refresh(stale)
    return jobIds.map((jobId) => {
      const job = this.jobs.get(jobId)
      if (!job) return { blockId: '', jobId, state: 'unknown', message: `job ${jobId} was not submitted by this ${this.label} provider` }
      return job.last ?? { blockId: job.blockId, jobId, state: 'pending', message: 'not queried yet' }
    })
  }

  async cancel(jobIds: readonly string[]): Promise<void> {
    const live = jobIds
      .map((id) => this.jobs.get(id))
      .filter((job): job is ClusterJob => job !== undefined && !(job.last && isFinalBlockState(job.last.state)))
    if (live.length === 0) return
    for (const job of live) job.cancelRequested = true
    await this.cancelJobs(live.map((job) => job.jobId))
    // The next status() must ask the scheduler again rather than repeat 'running'.
    for (const job of live) job.lastQueriedMs = 0
    this.logger.info(`cancelled job(s) ${live.map((job) => `${job.jobId} (block ${job.blockId})`).join(', ')}`)
  }

  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const live = [...this.jobs.values()].filter((job) => !(job.last && isFinalBlockState(job.last.state))).map((job) => job.jobId)
    if (live.length === 0) return forgetOnExit(this)
    this.logger.info(`shutdown: cancelling ${live.length} job(s)`)
    const cancelling = this.cancel(live).then(
      () => forgetOnExit(this),
      (error: unknown) => this.logger.error('shutdown: cancel failed', error),
    )
    await settledWithin(cancelling, this.options.cmdTimeoutMs + 1000)
  }

  cancelNow(): void {
    const live = [...this.jobs.values()].filter((job) => !(job.last && isFinalBlockState(job.last.state)) && !job.cancelRequested).map((job) => job.jobId)
    if (live.length === 0 || !this.cancelCommandLines) return
    for (const job of live) this.jobs.get(job)!.cancelRequested = true
    // Bounded: the process is going away and a stuck scheduler must not keep it.
    const timeoutMs = Math.min(this.options.cmdTimeoutMs, 10_000)
    for (const [command, args] of this.cancelCommandLines(live)) runSync(command, args, timeoutMs)
  }

  describe(): Record<string, unknown> {
    const { launcher, workerInit, schedulerOptions, ...rest } = this.options
    return {
      type: this.label,
      ...rest,
      ...(this.scheduler as Record<string, unknown>),
      launcher: launcher.describe(),
      workerInit: workerInit !== '',
      schedulerOptions: schedulerOptions !== '',
    }
  }

  /** The scheduler's job name for a block (subclasses shorten or sanitize it). */
  protected jobName(blockId: string): string {
    return `tsflow.${blockId}`
  }

  /** Runs a scheduler command bounded by cmdTimeoutMs; a non-zero exit is returned, not thrown. */
  protected run(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
    return runCommand(command, args, { timeoutMs: this.options.cmdTimeoutMs, provider: this.label, ...(input === undefined ? {} : { input }) })
  }

  /** Runs a command that must succeed; its failure is a ProviderError with its stderr. */
  protected async runChecked(command: string, args: readonly string[], what: string, input?: string): Promise<CommandResult> {
    const result = await this.run(command, args, input)
    if (result.code !== 0) throw new ProviderError(this.label, `${what} failed: ${describeFailure(command, args, result)}`)
    return result
  }

  /** The walltime as "HH:MM:SS" ('' when none), for directives. */
  protected walltimeText(): string {
    return this.options.walltimeSeconds === undefined ? '' : formatWalltime(this.options.walltimeSeconds)
  }

  private script(block: BlockScript, env: Record<string, string>, launched: string): string {
    const directives = [...this.directives(block), ...this.options.schedulerOptions.split('\n').filter((line) => line !== '')]
    const values = {
      blockId: block.blockId,
      jobName: block.jobName,
      scriptPath: block.scriptPath,
      stdoutPath: block.stdoutPath,
      stderrPath: block.stderrPath,
      scriptDir: this.context!.scriptDir,
      nodesPerBlock: this.options.nodesPerBlock,
      tasksPerNode: block.tasksPerNode,
      coresPerNode: this.options.coresPerNode ?? '',
      memPerNode: this.options.memPerNode ?? '',
      walltime: this.walltimeText(),
      directives: directives.join('\n'),
      header: [
        `# tsflow block ${block.blockId} (${this.label} provider), written ${new Date().toISOString()} by pid ${process.pid}.`,
        `# To submit it by hand: ${this.submitCommand} ${block.scriptPath}`,
      ].join('\n'),
      setup: blockSetup({
        blockId: block.blockId,
        env,
        workerInit: this.options.workerInit,
        exitFile: block.exitPath,
        walltimeSeconds: this.options.walltimeSeconds,
      }),
      command: [`# the block's command, through the ${this.options.launcher.type} launcher`, launched].join('\n'),
    }
    return renderTemplate(this.template(), values, `${this.label} template`)
  }

  /** The template text: src/providers/<templateDir>/template.sh. */
  protected template(): string {
    return loadTemplate(this.templateDir)
  }

  /** One query for all stale jobs; concurrent callers share the query in flight. */
  private async refresh(jobIds: readonly string[]): Promise<void> {
    while (this.inflightQuery) await this.inflightQuery
    // Another caller may have refreshed these meanwhile.
    const now = Date.now()
    const ids = jobIds.filter((id) => {
      const job = this.jobs.get(id)!
      return !(job.last && isFinalBlockState(job.last.state)) && now - job.lastQueriedMs >= this.statusCacheMs
    })
    if (ids.length === 0) return
    const query = this.query(ids)
    this.inflightQuery = query
    try {
      await query
    } finally {
      this.inflightQuery = undefined
    }
  }

  private async query(ids: readonly string[]): Promise<void> {
    const now = Date.now()
    let listed: Map<string, JobInfo>
    try {
      listed = await this.queryJobs(ids)
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error)
      for (const id of ids) {
        const job = this.jobs.get(id)!
        job.lastQueriedMs = now
        job.last = { blockId: job.blockId, jobId: id, state: 'unknown', message: `the scheduler could not be asked: ${why}` }
      }
      return
    }
    const missing = ids.filter((id) => !listed.has(id))
    let finished = new Map<string, JobInfo>()
    if (missing.length > 0 && this.queryFinished) {
      try {
        finished = await this.queryFinished(missing)
      } catch (error) {
        this.logger.warn(`asking for finished job(s) ${missing.join(', ')} failed: ${(error as Error).message}`)
      }
    }
    for (const id of ids) {
      const job = this.jobs.get(id)!
      job.lastQueriedMs = now
      const info = listed.get(id) ?? finished.get(id)
      job.last = info ? this.statusFrom(job, info) : this.statusWithoutScheduler(job)
      if (isFinalBlockState(job.last.state)) {
        const log = job.last.state === 'failed' ? this.logger.warn : this.logger.info
        log.call(this.logger, `block ${job.blockId} (job ${id}) ${job.last.state}: ${job.last.message ?? ''}`)
      }
    }
  }

  private statusFrom(job: ClusterJob, info: JobInfo): BlockStatus {
    const base = { blockId: job.blockId, jobId: job.jobId }
    const exitCode = info.exitCode === undefined ? {} : { exitCode: info.exitCode }
    let state = info.state
    // A job we cancelled may end as "failed" (killed by a signal) on some schedulers: it was cancelled.
    if (job.cancelRequested && state === 'failed') state = 'cancelled'
    const code = info.exitCode !== undefined && info.exitCode !== 0 ? ` (exit code ${info.exitCode})` : ''
    const said = `${this.label} says ${info.nativeState}${info.message ? `: ${info.message}` : ''}${code}`
    if (state === 'failed') return { ...base, ...exitCode, state, message: this.explainFailure(job, said) }
    return { ...base, ...exitCode, state, message: said }
  }

  /** The scheduler has no record of the job: only the script's exit record (or our cancel) can say how it ended. */
  private statusWithoutScheduler(job: ClusterJob): BlockStatus {
    const base = { blockId: job.blockId, jobId: job.jobId }
    const record = readExitRecord(job.exitPath)
    if (job.cancelRequested) return { ...base, state: 'cancelled', message: `cancelled; the scheduler no longer lists job ${job.jobId}` }
    if (record !== undefined) {
      const gone = `the scheduler no longer lists job ${job.jobId}; its script recorded exit code ${record}`
      if (record === 0) return { ...base, state: 'completed', exitCode: 0, message: gone }
      return { ...base, state: 'failed', exitCode: record, message: this.explainFailure(job, gone) }
    }
    return {
      ...base,
      state: 'unknown',
      message:
        `the scheduler no longer lists job ${job.jobId} and has no record of how it ended, and the block left no exit record ` +
        `(${job.exitPath}); it may have been killed before its script could write one (see ${job.stderrPath})`,
    }
  }

  private explainFailure(job: ClusterJob, said: string): string {
    const tail = readTail(job.stderrPath)
    const output = tail
      ? `; last lines of its stderr (${job.stderrPath}):\n${tail}`
      : `; its stderr (${job.stderrPath}) is empty or missing, see ${job.stdoutPath} and the script ${job.scriptPath}`
    return `block ${job.blockId} (job ${job.jobId}) failed: ${said}${output}`
  }

  private ready(): ProviderContext {
    if (this.closed) throw new ProviderError(this.label, 'cannot submit a block after shutdown()')
    if (!this.context) throw new ProviderError(this.label, 'init({ scriptDir, logger }) must be called before submit()')
    return this.context
  }
}

/** The exit code a block's script recorded, or undefined when it wrote none (yet). */
export function readExitRecord(path: string): number | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
  const code = Number.parseInt(text.trim().split(/\s+/)[0] ?? '', 10)
  return Number.isInteger(code) ? code : undefined
}

/** Names an option of the provider in a ConfigError (for subclasses' checkOptions). */
export function optionError(path: string, option: string, message: string): ConfigError {
  return new ConfigError(join(path, option), message)
}
