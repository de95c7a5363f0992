import { checkBlockId, checkEnvNames, launchedCommand } from '../submit-checks.js'
import { BlockOptionsView } from '../block-options-view.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs'
import { join as joinPath } from 'node:path'
import { ConfigError, ProviderError } from '../../errors.js'
import { literal, object, optional } from '../../util/schema.js'
import { SingleNodeLauncher } from '../../launchers/launchers.js'
import { settledWithin } from '../../util/deferred.js'
import { silentLogger, type Logger } from '../../util/logger.js'
import type { BlockStatus, ExecutionProvider, ProviderContext, SubmitOptions } from '../base.js'
import { readTail } from '../../util/file-tail.js'
import { blockOptionShape, resolveBlockOptions, type BlockOptions, type ResolvedBlockOptions } from '../options.js'
import { groupAlive, signalGroup } from './process-group.js'
import { localBlockScript } from './template.js'

export interface LocalProviderOptions extends BlockOptions {
  /** Only for plain-object configs: `{ type: 'local', ... }`. */
  type?: 'local'
}

const schema = object({ type: optional(literal('local' as const)), ...blockOptionShape })

/** Time a block's processes get between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 2000
const GROUP_POLL_MS = 20

interface LocalBlock {
  blockId: string
  jobId: string
  pid: number
  scriptPath: string
  stdoutPath: string
  stderrPath: string
  cancelRequested: boolean
  /** set when the block was stopped for reaching its walltime */
  walltimeReached?: boolean
  walltimeTimer?: NodeJS.Timeout
  /** set by the child's 'exit' event, the only source of truth about the block's end */
  exit?: { code: number | null; signal: NodeJS.Signals | null }
  /** the failure explanation, read from the stderr file once the block has ended */
  failureMessage?: string
}

/**
 * Runs blocks as process groups on this machine. Each block is a bash script in the script
 * directory, started detached so that it leads its own process group: cancel signals the group,
 * which reaches the launcher's copies and anything they started. The block's stdout and stderr
 * go to files next to its script. Job ids are the pids of the script's bash.
 */
export class LocalProvider extends BlockOptionsView implements ExecutionProvider {
  readonly label = 'local'
  protected options: ResolvedBlockOptions
  private validated = false
  private context: ProviderContext | undefined
  private logger: Logger = silentLogger
  private closed = false
  private readonly blocks = new Map<string, LocalBlock>()
  private readonly endListeners = new Set<(jobId: string) => void>()
  private exitHookInstalled = false

  constructor(private readonly raw: LocalProviderOptions = {}) {
    super()
    this.options = resolveBlockOptions({}, '', { launcher: () => new SingleNodeLauncher() })
  }

  validate(path: string): void {
    const options = schema(this.raw, path)
    if (options.schedulerOptions !== undefined && options.schedulerOptions !== '') {
      throw new ConfigError(`${path}.schedulerOptions`, 'has no effect: the local provider runs blocks as local processes, with no scheduler to read directives; remove it, or use a scheduler provider')
    }
    this.options = resolveBlockOptions(options, path, { launcher: () => new SingleNodeLauncher() })
    this.validated = true
  }

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
    for (const block of this.blocks.values()) {
      if (block.blockId === blockId && !block.exit) {
        throw new ProviderError(this.label, `block ${blockId} is already running (job ${block.jobId}); block ids must be unique`)
      }
    }
    const env: Record<string, string> = { TSFLOW_BLOCK_ID: blockId, ...options.env }
    checkEnvNames(this.label, blockId, env)
    const launched = launchedCommand(this.label, blockId, this.options.launcher, command, options.tasksPerNode ?? 1, this.options.nodesPerBlock)

    const base = joinPath(context.scriptDir, `block-${blockId}`)
    const paths = { scriptPath: `${base}.sh`, stdoutPath: `${base}.out`, stderrPath: `${base}.err` }
    const script = localBlockScript({
      blockId,
      launched,
      launcherType: this.options.launcher.type,
      env,
      workerInit: this.options.workerInit,
      scriptPath: paths.scriptPath,
      walltimeSeconds: this.options.walltimeSeconds,
    })
    const child = this.start(blockId, script, paths)
    // Listen for the exit before anything else can run, so even a block that dies at once is seen.
    let block: LocalBlock | undefined
    let earlyExit: LocalBlock['exit']
    child.once('exit', (code, signal) => {
      if (block) this.onExit(block, code, signal)
      else earlyExit = { code, signal }
    })
    try {
      await this.spawned(child, blockId)
    } catch (error) {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL')
      throw error
    }
    const pid = child.pid!
    if (this.closed) {
      // shutdown() ran while this block was starting and could not see it: stop it here.
      signalGroup(pid, 'SIGKILL')
      throw new ProviderError(this.label, `block ${blockId} was started during shutdown() and has been stopped`)
    }
    // The block must not keep this process alive: shutdown() (or the exit hook) ends it.
    child.unref()
    block = { blockId, jobId: String(pid), pid, ...paths, cancelRequested: false }
    this.blocks.set(block.jobId, block)
    const walltime = this.options.walltimeSeconds
    if (walltime !== undefined && !earlyExit) {
      // As a batch scheduler does: at the end of its walltime the block is stopped, whatever runs.
      const running = block
      running.walltimeTimer = setTimeout(() => {
        if (running.exit) return
        running.walltimeReached = true
        this.logger.info(`block ${blockId} (pid ${pid}) reached its walltime of ${walltime} s; stopping it`)
        void this.stop(running)
      }, walltime * 1000)
      running.walltimeTimer.unref()
    }
    this.installExitHook()
    if (earlyExit) this.onExit(block, earlyExit.code, earlyExit.signal)
    this.logger.info(`block ${blockId} started as pid ${pid} (${paths.scriptPath})`)
    return block.jobId
  }

  async status(jobIds: readonly string[]): Promise<BlockStatus[]> {
    return jobIds.map((jobId) => {
      const block = this.blocks.get(jobId)
      if (!block) {
        return { blockId: '', jobId, state: 'unknown', message: `job ${jobId} was not started by this local provider` }
      }
      return this.statusOf(block)
    })
  }

  async cancel(jobIds: readonly string[]): Promise<void> {
    const targets = jobIds.map((id) => this.blocks.get(id)).filter((block): block is LocalBlock => block !== undefined && !block.exit)
    for (const block of targets) block.cancelRequested = true
    const survivors = (await Promise.all(targets.map((block) => this.stop(block)))).filter((block) => block !== undefined)
    if (survivors.length > 0) {
      const which = survivors.map((block) => `block ${block.blockId} (process group ${block.pid})`).join(', ')
      throw new ProviderError(
        this.label,
        `${which} still had processes ${this.options.cmdTimeoutMs} ms after SIGTERM and SIGKILL; ` +
          `look for processes stuck in the kernel (state D in ps) and raise cmdTimeoutMs if they do end later`,
      )
    }
  }

  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const live = [...this.blocks.values()].filter((block) => !block.exit).map((block) => block.jobId)
    if (live.length > 0) {
      this.logger.info(`shutdown: cancelling ${live.length} block(s)`)
      const cancelling = this.cancel(live).catch((error: unknown) => this.logger.error('shutdown: cancel failed', error))
      // cancel() is itself bounded; the extra deadline guards against a bug there hanging shutdown.
      await settledWithin(cancelling, this.options.cmdTimeoutMs + 1000)
    }
    this.removeExitHook()
  }

  describe(): Record<string, unknown> {
    const { launcher, workerInit, ...counts } = this.options
    return { type: this.label, ...counts, launcher: launcher.describe(), workerInit: workerInit !== '' }
  }

  private ready(): ProviderContext {
    if (this.closed) throw new ProviderError(this.label, 'cannot submit a block after shutdown()')
    if (!this.context) throw new ProviderError(this.label, 'init({ scriptDir, logger }) must be called before submit()')
    return this.context
  }

  private start(blockId: string, script: string, paths: { scriptPath: string; stdoutPath: string; stderrPath: string }): ChildProcess {
    let out: number | undefined
    let err: number | undefined
    try {
      writeFileSync(paths.scriptPath, script, { mode: 0o700 })
      out = openSync(paths.stdoutPath, 'w')
      err = openSync(paths.stderrPath, 'w')
      // detached: bash leads a new process group, which cancel() signals as a whole.
      return spawn('bash', [paths.scriptPath], { detached: true, stdio: ['ignore', out, err] })
    } catch (error) {
      throw new ProviderError(this.label, `cannot start block ${blockId} (${paths.scriptPath}): ${(error as Error).message}`, { cause: error })
    } finally {
      // The child has its own copies of the descriptors.
      if (out !== undefined) closeSync(out)
      if (err !== undefined) closeSync(err)
    }
  }

  private spawned(child: ChildProcess, blockId: string): Promise<void> {
    const timeoutMs = this.options.cmdTimeoutMs
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ProviderError(this.label, `block ${blockId} did not start within cmdTimeoutMs (${timeoutMs} ms)`))
      }, timeoutMs)
      child.once('spawn', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(new ProviderError(this.label, `cannot start bash for block ${blockId}: ${error.message} (is bash on PATH?)`, { cause: error }))
      })
    })
  }

  private onExit(block: LocalBlock, code: number | null, signal: NodeJS.Signals | null): void {
    block.exit = { code, signal }
    clearTimeout(block.walltimeTimer)
    // Like a batch job's end on a cluster: when the block's script is gone, so is the rest of
    // its process group (copies the launcher left behind, daemons a manager forked).
    if (groupAlive(block.pid)) {
      signalGroup(block.pid, 'SIGTERM')
      setTimeout(() => signalGroup(block.pid, 'SIGKILL'), KILL_GRACE_MS).unref()
    }
    const status = this.statusOf(block)
    const log = status.state === 'failed' ? this.logger.warn : this.logger.info
    log.call(this.logger, `block ${block.blockId} (pid ${block.pid}) ${status.state}: ${status.message ?? ''}`)
    if ([...this.blocks.values()].every((other) => other.exit)) this.removeExitHook()
    for (const listener of [...this.endListeners]) {
      try {
        listener(block.jobId)
      } catch (error) {
        this.logger.error(`a block-end listener threw for block ${block.blockId}`, error)
      }
    }
  }

  onBlockEnd(listener: (jobId: string) => void): () => void {
    this.endListeners.add(listener)
    return () => this.endListeners.delete(listener)
  }

  private statusOf(block: LocalBlock): BlockStatus {
    const base = { blockId: block.blockId, jobId: block.jobId }
    if (!block.exit) return { ...base, state: 'running', message: `pid ${block.pid}` }
    const { code, signal } = block.exit
    const ended = {
      ...base,
      ...(code === null ? {} : { exitCode: code }),
      ...(signal === null ? {} : { signal }),
    }
    if (block.cancelRequested) return { ...ended, state: 'cancelled', message: `cancelled (${how(code, signal)})` }
    if (block.walltimeReached) {
      return { ...ended, state: 'failed', message: `block ${block.blockId} (pid ${block.pid}) reached its walltime of ${this.options.walltimeSeconds} s and was stopped (${how(code, signal)})` }
    }
    if (code === 0) return { ...ended, state: 'completed', message: 'exited with code 0' }
    block.failureMessage ??= this.explainFailure(block, code, signal)
    return { ...ended, state: 'failed', message: block.failureMessage }
  }

  private explainFailure(block: LocalBlock, code: number | null, signal: NodeJS.Signals | null): string {
    let hint = ''
    if (code === 127) hint = ' (command not found: check the command and PATH, or what workerInit sets up)'
    else if (code === 126) hint = ' (a command could not be executed: check its permissions)'
    const tail = readTail(block.stderrPath)
    const output = tail
      ? `; last lines of its stderr (${block.stderrPath}):\n${tail}`
      : `; its stderr (${block.stderrPath}) is empty, see ${block.stdoutPath} and the script ${block.scriptPath}`
    return `block ${block.blockId} (pid ${block.pid}) ${how(code, signal)}${hint}${output}`
  }

  /**
   * SIGTERM, then SIGKILL after the grace period (shortened to half of cmdTimeoutMs when that is
   * small, so there is time left to see SIGKILL work); resolves to the block if its group survived.
   */
  private async stop(block: LocalBlock): Promise<LocalBlock | undefined> {
    const started = Date.now()
    const grace = Math.min(KILL_GRACE_MS, this.options.cmdTimeoutMs / 2)
    signalGroup(block.pid, 'SIGTERM')
    if (await this.gone(block, started + grace)) return undefined
    this.logger.warn(`block ${block.blockId} (pid ${block.pid}) outlived SIGTERM by ${grace} ms; sending SIGKILL`)
    signalGroup(block.pid, 'SIGKILL')
    return (await this.gone(block, started + this.options.cmdTimeoutMs)) ? undefined : block
  }

  /** Waits until the block's script has exited and its process group is empty. */
  private async gone(block: LocalBlock, deadline: number): Promise<boolean> {
    while (Date.now() < deadline) {
      if (block.exit && !groupAlive(block.pid)) return true
      await new Promise((resolve) => setTimeout(resolve, GROUP_POLL_MS))
    }
    return block.exit !== undefined && !groupAlive(block.pid)
  }

  /**
   * Last resort for a workflow that exits without shutting the executor down: blocks are
   * detached, so nothing else would stop them. 'exit' handlers must be synchronous, so there is
   * no grace period here.
   */
  private readonly killAllOnExit = (): void => {
    for (const block of this.blocks.values()) if (!block.exit) signalGroup(block.pid, 'SIGKILL')
  }

  private installExitHook(): void {
    if (this.exitHookInstalled) return
    process.on('exit', this.killAllOnExit)
    this.exitHookInstalled = true
  }

  private removeExitHook(): void {
    if (!this.exitHookInstalled) return
    process.off('exit', this.killAllOnExit)
    this.exitHookInstalled = false
  }
}

function how(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`
}
