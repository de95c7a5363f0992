import { join } from 'node:path'
import { ProviderError } from '../../errors.js'
import type { ManagerEventWire, ManagerInfo } from '../../protocol/messages.js'
import type { BlockState as MonitoredBlockState, ExecutorMonitor } from '../../protocol/monitoring.js'
import type { BlockState } from '../../providers/base.js'
import { BlockManager, Strategy, type BlockActivity, type BlockInfo } from '../../scaling/index.js'
import type { Logger, LogLevel } from '../../util/logger.js'
import { ManagersByBlock } from './block-managers.js'
import { managerCommand, managerFiles } from './manager-launch.js'
import type { ResolvedHtexOptions } from './options.js'
import { workersPerNode } from './options.js'

// Blocks that fail before any manager of theirs connects, in a row, before waiting tasks are
// failed with the blocks' own explanation instead of waiting forever.
const BLOCK_FAILURES_BEFORE_GIVING_UP = 3

/** What provisioning needs from the side that owns the tasks (the HTEX executor, an endpoint). */
export interface ProvisioningOwner {
  /** for messages: "executor htex", "endpoint ep1" */
  readonly what: string
  /** where the managers' address is set, for messages: "executor option address" */
  readonly addressOption: string
  /** tasks waiting or running (the strategy sizes blocks by it) */
  outstanding(): number
  /** whether blocks should still be managed (false once stopping) */
  running(): boolean
  /** the interchange should stop sending tasks to these blocks' managers */
  drain(blockIds: string[]): void
  /** the provider saw a block end: its managers are gone whatever their heartbeats say */
  blockEnded(blockId: string, reason: string): void
  /** no block could start: every waiting task fails with this error */
  failWaiting(error: ProviderError): void
}

export interface ProvisioningStart {
  /** the interchange's port for managers */
  workerPort: number
  /** manager logs and submit_scripts go here */
  runDir: string
  /** the key directory managers read (default runDir/curve) */
  curveDir?: string
  /** the log level managers use when the options set none */
  logLevel: LogLevel
  logger: Logger
  /** where block events go (the kernel's `ExecutorHost.monitor`), with the executor's label */
  monitor?: { readonly executor: string; readonly sink: ExecutorMonitor }
  /** managers sample running tasks this often (ms; 0 or unset: off) */
  resourceIntervalMs?: number
}

/**
 * Blocks of managers for an interchange: the provider, the BlockManager (the managers' command
 * and key files, drain, block ends, activity per block) and the scaling Strategy, plus the view of
 * the managers connected now that they need. Shared by the HTEX executor (whose interchange is a
 * child process) and the endpoint (whose interchange runs in-process).
 */
export class Provisioning {
  readonly managersByBlock = new ManagersByBlock()
  blocks: BlockManager | undefined
  private strategy: Strategy | undefined
  private consecutiveBlockFailures = 0
  /** workers per manager as last reported at registration; outlives the blocks for sizing */
  private reportedWorkersPerNode: number | undefined
  private logger: Logger | undefined
  private monitor: ProvisioningStart['monitor']
  /** the state last reported to the monitor per block not yet ended */
  private readonly reported = new Map<string, MonitoredBlockState>()
  /** blocks whose final state was reported (block ids are a few per run: kept) */
  private readonly ended = new Set<string>()

  constructor(
    private readonly options: ResolvedHtexOptions,
    private readonly owner: ProvisioningOwner,
  ) {}

  /** Starts the provider, the block manager and the strategy (initBlocks are submitted now). */
  async start(start: ProvisioningStart): Promise<void> {
    const options = this.options
    const { runDir, workerPort, logger } = start
    this.logger = logger
    this.monitor = start.monitor
    const launch = {
      workerPort,
      runDir,
      logLevel: start.logLevel,
      ...(start.curveDir ? { curveDir: start.curveDir } : {}),
      ...(start.resourceIntervalMs ? { resourceIntervalMs: start.resourceIntervalMs } : {}),
    }
    await options.provider.init({ scriptDir: join(runDir, 'submit_scripts'), logger: logger.child('provider') })
    this.blocks = new BlockManager({
      provider: options.provider,
      command: (blockId) => managerCommand(options, { blockId, ...launch }),
      files: () => managerFiles(options, runDir, start.curveDir),
      activity: (blockId) => this.activity(blockId),
      drain: (blockIds) => this.owner.drain(blockIds),
      onBlockEnded: (block) => this.blockEnded(block),
      ...(start.monitor ? { onBlockChange: (block: BlockInfo, change: 'submitted' | 'state') => this.blockChanged(block, change) } : {}),
      logger: logger.child('blocks'),
      ...(options.managerConnectTimeoutMs > 0 ? { connectTimeoutMs: options.managerConnectTimeoutMs } : {}),
      describeWait: () =>
        `check that the nodes can reach ${options.address}:${workerPort} (${this.owner.addressOption}) and that ` +
        `workerInit finishes (the block's .err file in ${join(runDir, 'submit_scripts')}); raise managerConnectTimeoutMs if managers need longer to start`,
    })
    this.strategy = new Strategy({
      strategy: options.strategy,
      blocks: this.blocks,
      workload: () => ({ outstandingTasks: this.owner.outstanding(), slotsPerBlock: this.slotsPerBlock() }),
      periodMs: options.strategyPeriodMs,
      maxIdleTimeMs: options.maxIdleTimeMs,
      drainLeadMs: options.drainLeadMs,
      logger: logger.child('strategy'),
      onError: (error) => logger.error('scaling failed', error),
    })
    // Starts initBlocks now, not on the first timer tick.
    await this.strategy.start()
  }

  /** Managers connected now, with their last reported state. */
  managers(): ManagerInfo[] {
    return this.managersByBlock.all()
  }

  /** A manager event of the interchange. */
  managerEvent(event: ManagerEventWire, info: ManagerInfo, reason?: string): void {
    if (event === 'registered') {
      this.managersByBlock.registered(info)
      this.reportedWorkersPerNode = info.workers
      this.consecutiveBlockFailures = 0
      // A manager of the block is up: it runs, whatever the provider's next poll will say.
      if (info.blockId) this.report(info.blockId, undefined, 'running', `manager ${info.managerId} on ${info.host} registered`)
      this.logger?.info(`manager ${info.managerId} on ${info.host} (block ${info.blockId}, ${info.workers} workers) registered`)
    } else {
      this.managersByBlock.removed(info)
      const log = event === 'lost' ? 'warn' : 'info'
      this.logger?.[log](`manager ${info.managerId} on ${info.host} (block ${info.blockId}) ${event}${reason ? `: ${reason}` : ''}`)
    }
  }

  /** The interchange's view of every manager (its status): which blocks are busy now. */
  statusReply(managers: readonly ManagerInfo[]): void {
    this.managersByBlock.statusReply(managers)
  }

  /**
   * Worker slots one block brings, for the scaling strategy: the workers managers reported when
   * they registered (their mean, times nodes per block), since nodes may differ from this host.
   * Before any manager registered, the estimate of `workersPerNode` (this host's CPUs and memory).
   */
  slotsPerBlock(): number {
    const managers = this.managersByBlock.all()
    const workers = managers.reduce((sum, info) => sum + info.workers, 0)
    const perNode = managers.length > 0 ? Math.max(1, Math.round(workers / managers.length)) : (this.reportedWorkersPerNode ?? workersPerNode(this.options))
    return perNode * this.options.provider.nodesPerBlock
  }

  /** Stops scaling decisions (blocks keep running). */
  async stopScaling(): Promise<void> {
    await this.strategy?.stop()
  }

  /** Stops scaling and every block; the provider stays (shutdown() releases it). */
  async stopBlocks(): Promise<void> {
    await this.strategy?.stop()
    await this.blocks?.shutdown()
  }

  /** Stops every block and the provider. */
  async shutdown(): Promise<void> {
    await this.stopBlocks()
    await this.options.provider.shutdown()
  }

  private blockChanged(block: BlockInfo, change: 'submitted' | 'state'): void {
    if (change === 'submitted') {
      this.report(block.blockId, block.jobId, 'submitted', undefined)
      return
    }
    const state = MONITORED_STATE[block.state]
    if (state === undefined) return
    let reason: string | undefined
    if (state === 'running') reason = 'the provider reports it running'
    else if (state !== 'pending') {
      const why = block.neverConnected ? undefined : block.scaleInRequested ? 'scaled in' : this.owner.running() ? undefined : 'the executor shut down'
      reason = why && block.message ? `${why}: ${block.message}` : (why ?? block.message)
    }
    this.report(block.blockId, block.jobId, state, reason)
  }

  /** Tells the monitor a block's new state, once per state; nothing after its final state. */
  private report(blockId: string, jobId: string | undefined, state: MonitoredBlockState, reason: string | undefined): void {
    const monitor = this.monitor
    if (!monitor || this.reported.get(blockId) === state || this.ended.has(blockId)) return
    if (FINAL.has(state)) {
      this.reported.delete(blockId)
      this.ended.add(blockId)
    } else {
      this.reported.set(blockId, state)
    }
    jobId ??= this.blocks?.blocks.find((b) => b.blockId === blockId)?.jobId
    try {
      monitor.sink.block({ executor: monitor.executor, blockId, jobId, state, ...(reason ? { reason } : {}), timeMs: Date.now() })
    } catch (error) {
      this.logger?.error('the block monitor threw', error)
    }
  }

  private activity(blockId: string): BlockActivity {
    return this.managersByBlock.activity(blockId, this.owner.outstanding() === 0 || this.options.managerSelector === 'packed')
  }

  private blockEnded(block: BlockInfo): void {
    // A block some manager of which registered got off the ground: its end is not a failure to start.
    const started = this.managersByBlock.forget(block.blockId)
    // Its managers may still be registered (killed ones send nothing): the interchange declares
    // them lost now rather than after the heartbeat threshold.
    const running = this.owner.running()
    if (running) {
      const reason = `the provider reports it ${block.state}${block.message ? `: ${firstLine(block.message)}` : ''}`
      this.owner.blockEnded(block.blockId, reason)
    }
    if (block.state !== 'failed' || !running) return
    this.logger?.warn(`block ${block.blockId} failed: ${block.message ?? 'no details'}`)
    if (started || this.managers().length > 0) return
    this.consecutiveBlockFailures++
    // Waiting tasks can still run if another block may yet start, unless blocks keep failing to
    // start (the strategy replaces each one, so there is always another in the queue).
    const othersInPlay = (this.blocks?.activeCount ?? 0) > 0
    // Managers that never connected most likely never will (the address, a firewall): another
    // block would wait just as long, so the waiting tasks fail now.
    if (othersInPlay && this.consecutiveBlockFailures < BLOCK_FAILURES_BEFORE_GIVING_UP && !block.neverConnected) return
    // No manager could start: waiting tasks would never run. Fail them now, with the
    // scheduler's message and the block's stderr, rather than let them wait forever.
    const what = this.consecutiveBlockFailures === 1 ? `block ${block.blockId}` : `${this.consecutiveBlockFailures} blocks in a row (last: block ${block.blockId})`
    const error = new ProviderError(
      this.options.provider.label,
      `${what} failed before any manager connected, so no task of ${this.owner.what} can run: ${block.message ?? 'no details'}`,
    )
    this.logger?.error(error.message)
    this.owner.failWaiting(error)
  }
}

const MONITORED_STATE: Partial<Record<BlockState, MonitoredBlockState>> = {
  pending: 'pending',
  running: 'running',
  completed: 'finished',
  failed: 'failed',
  cancelled: 'cancelled',
}
const FINAL = new Set<MonitoredBlockState>(['finished', 'failed', 'cancelled'])

export function firstLine(text: string): string {
  const line = text.split('\n', 1)[0]!
  return line.length > 300 ? `${line.slice(0, 300)}...` : line
}
