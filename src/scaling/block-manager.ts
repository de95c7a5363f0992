import { ProviderError } from '../errors.js'
import { isFinalBlockState, type BlockState, type ExecutionProvider } from '../providers/base.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { idleSince, type BlockSnapshot } from './decide.js'

/** What the executor knows about a block's managers, for choosing which blocks to stop. */
export interface BlockActivity {
  connectedManagers: number
  /** since when none of the block's managers has had a task (ms, same clock); undefined while busy */
  idleSinceMs?: number
  /** when the block reaches its walltime, as its managers reported it (ms, same clock) */
  endMs?: number
  /** some manager of the block has registered at some point (it may have left since) */
  everConnected?: boolean
}

export interface BlockInfo {
  readonly blockId: string
  /** the provider's id; undefined if submission failed */
  readonly jobId: string | undefined
  readonly state: BlockState
  readonly submittedAtMs: number
  readonly endedAtMs: number | undefined
  /** the provider's last word on the block; for a failed block, why (with its stderr tail) */
  readonly message: string | undefined
  readonly exitCode: number | undefined
  /** scaleIn() chose this block; it no longer counts as capacity */
  readonly scaleInRequested: boolean
  /** drain() was asked for this block (near its walltime): it takes no new tasks and ends on its own */
  readonly drainRequested: boolean
  /** ended by tsflow because it ran for managerConnectTimeoutMs with no manager connecting */
  readonly neverConnected?: boolean
}

export interface BlockManagerOptions {
  provider: ExecutionProvider
  /** The command each node of a block runs (for HTEX, the manager command for that block id). */
  command: (blockId: string) => string
  /** Extra environment for a block's command. */
  env?: (blockId: string) => Record<string, string>
  /** Files the block's command reads from this host (SubmitOptions.files), e.g. CURVE keys. */
  files?: (blockId: string) => Record<string, string> | undefined
  /** The executor's view of a block's managers; without it every block counts as idle. */
  activity?: (blockId: string) => BlockActivity | undefined
  /**
   * Called with the chosen blocks before scaleIn() cancels them, so the executor can stop sending
   * them tasks (HTEX: a 'drain' message). It may wait for the managers to exit; the cancel that
   * follows then finds nothing left to stop.
   */
  drain?: (blockIds: string[]) => Promise<void> | void
  /** Called once for every block that reaches a final state (including a failed submission). */
  onBlockEnded?: (block: BlockInfo) => void
  /**
   * Called when a block is submitted (`submitted`: its job id is known) and whenever its state
   * changes (`state`: each state the provider reports, the final one included), for monitoring.
   */
  onBlockChange?: (block: BlockInfo, change: 'submitted' | 'state') => void
  logger?: Logger
  /** ms clock; injectable for tests (default Date.now) */
  clock?: () => number
  /**
   * How long a block may stay 'unknown' (the provider cannot tell its state: a scheduler that
   * forgot the job, or one that does not answer) with none of its managers connected before it
   * is given up as lost: cancelled, best effort, and ended as failed so the strategy can replace
   * it. Without this a vanished job would count as capacity forever. Default 120 s.
   */
  unknownGraceMs?: number
  /**
   * How long a block may be 'running' (by the provider's word) with no manager of it ever
   * registering before it is cancelled and ended as failed, with a message naming `describeWait`:
   * managers that cannot reach the interchange, or a workerInit that never finishes, would
   * otherwise hold the allocation and leave tasks waiting. Needs `activity`; undefined: no limit.
   */
  connectTimeoutMs?: number
  /** What the managers of a running block need (e.g. "check that the nodes can reach ..."), for that message. */
  describeWait?: () => string
}

type BlockRecord = { -readonly [K in keyof BlockInfo]: BlockInfo[K] } & { unknownSinceMs?: number; runningSinceMs?: number }

const DEFAULT_UNKNOWN_GRACE_MS = 120_000

/** Ended blocks kept for inspection; older ones are forgotten so a long run does not grow. */
const ENDED_BLOCKS_KEPT = 256

/**
 * Owns the blocks of one provider: starts them, stops them and tracks their state by polling the
 * provider. It makes no decisions (that is the strategy's job) and never replaces a block that
 * ended on its own: it reports the end through onBlockEnded and leaves the rest to its caller.
 */
export class BlockManager {
  readonly provider: ExecutionProvider
  private readonly options: BlockManagerOptions
  private readonly logger: Logger
  private readonly records = new Map<string, BlockRecord>()
  private nextId = 0
  private closed = false

  constructor(options: BlockManagerOptions) {
    this.options = options
    this.provider = options.provider
    this.logger = options.logger ?? silentLogger
  }

  now(): number {
    return (this.options.clock ?? Date.now)()
  }

  /** Every block, ended ones included (the most recent of them), oldest first. */
  get blocks(): BlockInfo[] {
    return [...this.records.values()].map((record) => ({ ...record }))
  }

  /** Blocks not ended: the ones that hold or will hold resources, including those being scaled in. */
  get activeCount(): number {
    let count = 0
    for (const record of this.records.values()) if (!isFinalBlockState(record.state)) count++
    return count
  }

  /** The blocks a strategy reasons about: not ended, not being scaled in or drained, with their activity. */
  snapshotBlocks(): BlockSnapshot[] {
    const out: BlockSnapshot[] = []
    for (const record of this.records.values()) {
      if (isFinalBlockState(record.state) || record.scaleInRequested || record.drainRequested) continue
      out.push(this.snapshotOf(record))
    }
    return out
  }

  /** Blocks drained (ahead of their walltime) that have not ended: they still hold resources. */
  get drainingCount(): number {
    let count = 0
    for (const record of this.records.values()) if (record.drainRequested && !record.scaleInRequested && !isFinalBlockState(record.state)) count++
    return count
  }

  /**
   * Drains blocks without cancelling them: they take no new tasks, finish what they run and end
   * on their own (their managers exit when idle, or the walltime ends them). For blocks close to
   * their walltime, so running tasks are not cut short by a cancel.
   */
  async drain(blockIds: readonly string[]): Promise<string[]> {
    const chosen = this.pick(blockIds).filter((record) => !record.drainRequested)
    if (chosen.length === 0) return []
    for (const record of chosen) record.drainRequested = true
    const ids = chosen.map((record) => record.blockId)
    this.logger.info(`draining block(s) ${ids.join(', ')} ahead of their walltime`)
    try {
      await this.options.drain?.(ids)
    } catch (error) {
      this.logger.error(`draining block(s) ${ids.join(', ')} failed`, error)
    }
    return ids
  }

  /**
   * Starts up to `count` blocks, one after another, never exceeding the provider's maxBlocks.
   * Resolves to the new block ids. A failed submission is recorded as a failed block (reported to
   * onBlockEnded) and rethrown as ProviderError; blocks after it are not attempted, since the
   * cause (a missing sbatch, an unwritable directory) would most likely fail them too.
   */
  async scaleOut(count: number): Promise<string[]> {
    if (this.closed) throw new ProviderError(this.provider.label, 'cannot start blocks after the block manager was shut down')
    const room = Math.max(0, this.provider.maxBlocks - this.activeCount)
    if (count > room) this.logger.warn(`asked for ${count} more block(s) but maxBlocks (${this.provider.maxBlocks}) leaves room for ${room}`)
    const started: string[] = []
    for (let i = 0; i < Math.min(count, room); i++) {
      const blockId = String(this.nextId++)
      const record: BlockRecord = {
        blockId,
        jobId: undefined,
        state: 'pending',
        submittedAtMs: this.now(),
        endedAtMs: undefined,
        message: undefined,
        exitCode: undefined,
        scaleInRequested: false,
        drainRequested: false,
      }
      this.records.set(blockId, record)
      try {
        const env = this.options.env?.(blockId)
        const files = this.options.files?.(blockId)
        record.jobId = await this.provider.submit(this.options.command(blockId), blockId, { ...(env ? { env } : {}), ...(files ? { files } : {}) })
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error)
        this.end(record, 'failed', `submitting the block failed: ${why}`, undefined)
        throw error instanceof ProviderError ? error : new ProviderError(this.provider.label, `cannot submit block ${blockId}: ${why}`, { cause: error })
      }
      this.logger.info(`block ${blockId} submitted as job ${record.jobId}`)
      this.changed(record, 'submitted')
      started.push(blockId)
    }
    return started
  }

  /**
   * Stops blocks: the given ids, or `count` blocks chosen by preference (pending first, then the
   * longest idle, then the most recently started). Calls `drain` first, then cancels through the
   * provider. Resolves to the ids it stopped; their final state arrives with a later poll().
   */
  async scaleIn(target: number | readonly string[]): Promise<string[]> {
    const chosen = typeof target === 'number' ? this.choose(target) : this.pick(target)
    if (chosen.length === 0) return []
    for (const record of chosen) record.scaleInRequested = true
    const ids = chosen.map((record) => record.blockId)
    this.logger.info(`scaling in block(s) ${ids.join(', ')}`)
    if (this.options.drain) {
      try {
        await this.options.drain(ids)
      } catch (error) {
        // Draining is a courtesy to running tasks; the blocks are cancelled regardless.
        this.logger.error(`draining block(s) ${ids.join(', ')} failed`, error)
      }
    }
    const jobIds = chosen.flatMap((record) => (record.jobId === undefined ? [] : [record.jobId]))
    if (jobIds.length > 0) await this.provider.cancel(jobIds)
    return ids
  }

  /** Asks the provider for the state of every block not yet ended and records what changed. */
  async poll(): Promise<void> {
    const tracked = [...this.records.values()].filter((record) => record.jobId !== undefined && !isFinalBlockState(record.state))
    if (tracked.length === 0) return
    const byJob = new Map(tracked.map((record) => [record.jobId!, record]))
    const statuses = await this.provider.status([...byJob.keys()])
    const lost: BlockRecord[] = []
    const silent: BlockRecord[] = []
    for (const status of statuses) {
      const record = byJob.get(status.jobId)
      if (!record) continue
      if (status.state === 'unknown') {
        record.unknownSinceMs ??= this.now()
        if (this.givenUp(record)) lost.push(record)
      } else {
        delete record.unknownSinceMs
      }
      if (status.state === 'running') {
        record.runningSinceMs ??= this.now()
        if (this.neverConnected(record)) silent.push(record)
      }
      if (status.state === record.state) continue
      if (isFinalBlockState(status.state)) {
        this.end(record, status.state, status.message, status.exitCode)
      } else {
        this.logger.info(`block ${record.blockId} is ${status.state}${status.message ? ` (${status.message})` : ''}`)
        record.state = status.state
        record.message = status.message
        this.changed(record, 'state')
      }
    }
    if (lost.length > 0) await this.giveUp(lost)
    if (silent.length > 0) await this.giveUpSilent(silent)
    this.forgetOldBlocks()
  }

  /** Shuts the provider down (which cancels every block still running) and records the outcome. */
  async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.provider.shutdown()
    try {
      await this.poll()
    } catch (error) {
      this.logger.error('final poll after shutdown failed', error)
    }
  }

  private snapshotOf(record: BlockRecord): BlockSnapshot {
    const activity = this.options.activity?.(record.blockId)
    const snapshot: BlockSnapshot = {
      blockId: record.blockId,
      status: record.state,
      submittedAtMs: record.submittedAtMs,
      connectedManagers: activity?.connectedManagers ?? 0,
    }
    if (activity?.idleSinceMs !== undefined) snapshot.idleSinceMs = activity.idleSinceMs
    if (activity?.endMs !== undefined) snapshot.endMs = activity.endMs
    return snapshot
  }

  private choose(count: number): BlockRecord[] {
    const candidates = [...this.records.values()].filter((record) => !isFinalBlockState(record.state) && !record.scaleInRequested && !record.drainRequested)
    const keyed = candidates.map((record) => ({ record, idle: idleSince(this.snapshotOf(record)) }))
    keyed.sort((a, b) => {
      const pendingFirst = (a.record.state === 'pending' ? 0 : 1) - (b.record.state === 'pending' ? 0 : 1)
      if (pendingFirst !== 0) return pendingFirst
      if (a.idle !== undefined && b.idle !== undefined) return a.idle - b.idle
      if (a.idle !== undefined || b.idle !== undefined) return a.idle !== undefined ? -1 : 1
      // Both busy: the newest block has the least work invested in it.
      return b.record.submittedAtMs - a.record.submittedAtMs
    })
    return keyed.slice(0, Math.max(0, count)).map((entry) => entry.record)
  }

  private pick(blockIds: readonly string[]): BlockRecord[] {
    const out: BlockRecord[] = []
    for (const blockId of blockIds) {
      const record = this.records.get(blockId)
      if (!record || isFinalBlockState(record.state) || record.scaleInRequested) {
        this.logger.debug(`scale in: block ${blockId} is unknown, ended or already being stopped; skipped`)
        continue
      }
      out.push(record)
    }
    return out
  }

  private end(record: BlockRecord, state: BlockState, message: string | undefined, exitCode: number | undefined): void {
    record.state = state
    record.message = message
    record.exitCode = exitCode
    record.endedAtMs = this.now()
    const line = `block ${record.blockId} ${state}${message ? `: ${message}` : ''}`
    if (state === 'failed' && !record.scaleInRequested) this.logger.warn(line)
    else this.logger.info(line)
    this.changed(record, 'state')
    try {
      this.options.onBlockEnded?.({ ...record })
    } catch (error) {
      this.logger.error(`onBlockEnded threw for block ${record.blockId}`, error)
    }
  }

  private changed(record: BlockRecord, change: 'submitted' | 'state'): void {
    if (!this.options.onBlockChange) return
    try {
      this.options.onBlockChange({ ...record }, change)
    } catch (error) {
      this.logger.error(`onBlockChange threw for block ${record.blockId}`, error)
    }
  }

  /** True when a block has been unknown for the grace period and no manager of it is connected. */
  private givenUp(record: BlockRecord): boolean {
    const grace = this.options.unknownGraceMs ?? DEFAULT_UNKNOWN_GRACE_MS
    if (record.unknownSinceMs === undefined || this.now() - record.unknownSinceMs < grace) return false
    return (this.options.activity?.(record.blockId)?.connectedManagers ?? 0) === 0
  }

  /** True when a block has been running for connectTimeoutMs and no manager of it ever registered. */
  private neverConnected(record: BlockRecord): boolean {
    const limit = this.options.connectTimeoutMs
    if (limit === undefined || !this.options.activity || record.scaleInRequested || record.drainRequested) return false
    if (this.now() - record.runningSinceMs! < limit) return false
    const activity = this.options.activity(record.blockId)
    return !activity?.everConnected && (activity?.connectedManagers ?? 0) === 0
  }

  /** Cancels and fails blocks whose managers never connected, saying what to check. */
  private async giveUpSilent(records: BlockRecord[]): Promise<void> {
    const seconds = Math.round(this.options.connectTimeoutMs! / 1000)
    const jobIds = records.flatMap((record) => (record.jobId === undefined ? [] : [record.jobId]))
    for (const record of records) record.scaleInRequested = true
    let cancelled = 'its job was cancelled'
    try {
      await this.provider.cancel(jobIds)
    } catch (error) {
      cancelled = `cancelling its job failed: ${(error as Error).message}`
    }
    const advice = this.options.describeWait?.() ?? 'check that its managers can start and reach the interchange'
    for (const record of records) {
      const said = record.message ? `; ${record.message}` : ''
      record.neverConnected = true
      const message =
        `block ${record.blockId} was running (job ${record.jobId}${said}) but none of its managers connected within ${seconds} s; ` +
        `${advice}; ${cancelled}`
      this.logger.error(message)
      this.end(record, 'failed', message, undefined)
    }
  }

  /**
   * Ends blocks whose state nobody can tell: the provider did not say they failed, so the message
   * says what is known; they are cancelled in case they do still exist somewhere.
   */
  private async giveUp(records: BlockRecord[]): Promise<void> {
    const grace = this.options.unknownGraceMs ?? DEFAULT_UNKNOWN_GRACE_MS
    const jobIds = records.flatMap((record) => (record.jobId === undefined ? [] : [record.jobId]))
    try {
      await this.provider.cancel(jobIds)
    } catch (error) {
      this.logger.warn(`cancelling lost block job(s) ${jobIds.join(', ')} failed: ${(error as Error).message}`)
    }
    for (const record of records) {
      const lastWord = record.message ? `; the provider's last word: ${record.message}` : ''
      this.end(
        record,
        'failed',
        `block ${record.blockId} (job ${record.jobId}) is treated as lost: the provider could not tell its state for ` +
          `${Math.round(grace / 1000)} s and none of its managers is connected${lastWord}`,
        undefined,
      )
    }
  }

  private forgetOldBlocks(): void {
    const ended = [...this.records.values()].filter((record) => isFinalBlockState(record.state))
    for (const record of ended.slice(0, Math.max(0, ended.length - ENDED_BLOCKS_KEPT))) this.records.delete(record.blockId)
  }
}
