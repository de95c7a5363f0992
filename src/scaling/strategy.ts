import { number, oneOf, positiveNumber } from '../util/schema.js'
import { silentLogger, type Logger } from '../util/logger.js'
import type { BlockManager } from './block-manager.js'
import { decide, initialBlocks, STRATEGIES, type ScalingDecision, type ScalingSnapshot, type StrategyName } from './decide.js'

/** What the executor reports about its load on every tick. */
export interface Workload {
  /** tasks submitted and not finished (queued plus running) */
  outstandingTasks: number
  /** tasks one block runs at once; pass your best estimate until managers have registered */
  slotsPerBlock: number
}

export interface StrategyOptions {
  /** default 'simple' */
  strategy?: StrategyName
  blocks: BlockManager
  workload: () => Workload
  /** ms between ticks (default 1000); Infinity disables the timer (ticks only through tick()) */
  periodMs?: number
  /** ms a block must be idle before it may be scaled in (default 120000) */
  maxIdleTimeMs?: number
  /** ms before its walltime a block is drained and, while work remains, replaced (default 60000) */
  drainLeadMs?: number
  logger?: Logger
  /** a tick run by the timer failed (the timer keeps going) */
  onError?: (error: unknown) => void
}

/**
 * Schema entries for an executor's scaling options, to spread into its object() shape so
 * mistakes are named `executors[0].strategyPeriodMs` and so on.
 */
export const strategyOptionShape = {
  strategy: oneOf(...STRATEGIES),
  strategyPeriodMs: positiveNumber,
  maxIdleTimeMs: number(0, Infinity, 'a non-negative number of ms'),
  drainLeadMs: number(0, Infinity, 'a non-negative number of ms'),
}

export const DEFAULT_STRATEGY: StrategyName = 'simple'
export const DEFAULT_STRATEGY_PERIOD_MS = 1000
export const DEFAULT_MAX_IDLE_TIME_MS = 120_000
export const DEFAULT_DRAIN_LEAD_MS = 60_000
// Bounds the peak window when maxIdleTimeMs is very long (or Infinity).
const MAX_PEAK_SAMPLES = 1000
// setTimeout fires at once for delays beyond a signed 32-bit int; cap instead.
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Runs a scaling strategy: every `periodMs` it polls the blocks, takes a snapshot of the load and
 * carries out `decide()`. The very first tick starts `initBlocks` blocks instead, so an executor
 * calls start() (which runs that tick at once) and has its first blocks starting during load, not
 * a period later. Ticks never overlap: tick() while one runs returns the running one.
 */
export class Strategy {
  readonly strategy: StrategyName
  readonly periodMs: number
  readonly maxIdleTimeMs: number
  readonly drainLeadMs: number
  private readonly blocks: BlockManager
  /** outstanding task counts of recent ticks, for the peak the scale-in decision keeps room for */
  private readonly recent: { atMs: number; tasks: number }[] = []
  private readonly workload: () => Workload
  private readonly logger: Logger
  private readonly onError: ((error: unknown) => void) | undefined
  private initialized = false
  private current: Promise<ScalingDecision> | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private nudgePending = false
  private lastNudgeAtMs = -Infinity
  private readonly unsubscribe: (() => void) | undefined

  constructor(options: StrategyOptions) {
    this.strategy = oneOf(...STRATEGIES)(options.strategy ?? DEFAULT_STRATEGY, 'strategy')
    this.periodMs = positiveNumber(options.periodMs ?? DEFAULT_STRATEGY_PERIOD_MS, 'strategyPeriodMs')
    this.maxIdleTimeMs = strategyOptionShape.maxIdleTimeMs(options.maxIdleTimeMs ?? DEFAULT_MAX_IDLE_TIME_MS, 'maxIdleTimeMs')
    this.drainLeadMs = strategyOptionShape.drainLeadMs(options.drainLeadMs ?? DEFAULT_DRAIN_LEAD_MS, 'drainLeadMs')
    this.blocks = options.blocks
    this.workload = options.workload
    this.logger = options.logger ?? silentLogger
    this.onError = options.onError
    // A block that ends on its own (a killed manager's block) is replaced at once, not up to a
    // period later: tasks meanwhile queue on the remaining blocks.
    this.unsubscribe = this.blocks.provider.onBlockEnd?.(() => this.nudge())
  }

  /**
   * Runs a tick soon, outside the period: after the running tick if there is one (it may have
   * polled before the change). Calls while one is pending coalesce; at most one per period. No-op
   * before start() or after stop().
   */
  nudge(): void {
    if (this.stopped || !this.initialized || this.nudgePending) return
    // At most one such tick per period: blocks that fail as soon as they start (a bad command)
    // must not be resubmitted in a tight loop; the timer's ticks handle the rest.
    const now = Date.now()
    if (now - this.lastNudgeAtMs < this.periodMs) return
    this.lastNudgeAtMs = now
    this.nudgePending = true
    const after = this.current?.then(
      () => undefined,
      () => undefined,
    ) ?? Promise.resolve()
    void after
      .then(() => {
        this.nudgePending = false
        return this.stopped ? undefined : this.tick()
      })
      .catch((error: unknown) => {
        this.logger.error('scaling tick (after a block ended) failed', error)
        this.onError?.(error)
      })
  }

  /** Runs the first tick (starting initBlocks; its errors reject) and then arms the timer. After stop() it does nothing. */
  async start(): Promise<void> {
    if (this.stopped) return
    try {
      await this.tick()
    } finally {
      if (!this.stopped) this.schedule()
    }
  }

  /** One step: poll, snapshot, decide, act. Resolves to the decision carried out. */
  tick(): Promise<ScalingDecision> {
    this.current ??= this.runTick().finally(() => {
      this.current = undefined
    })
    return this.current
  }

  /** Stops the timer and waits for a running tick; blocks are left to BlockManager.shutdown(). */
  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    clearTimeout(this.timer)
    this.timer = undefined
    await this.current?.catch(() => undefined)
  }

  describe(): Record<string, unknown> {
    return { strategy: this.strategy, strategyPeriodMs: this.periodMs, maxIdleTimeMs: this.maxIdleTimeMs, drainLeadMs: this.drainLeadMs }
  }

  /** The most tasks outstanding over the last maxIdleTimeMs, this tick included. */
  private peak(nowMs: number, tasks: number): number {
    this.recent.push({ atMs: nowMs, tasks })
    while (this.recent.length > 0 && (nowMs - this.recent[0]!.atMs >= this.maxIdleTimeMs || this.recent.length > MAX_PEAK_SAMPLES)) this.recent.shift()
    let peak = tasks
    for (const sample of this.recent) if (sample.tasks > peak) peak = sample.tasks
    return peak
  }

  private schedule(): void {
    if (this.stopped || !Number.isFinite(this.periodMs)) return
    this.timer = setTimeout(() => {
      this.tick()
        .catch((error: unknown) => {
          this.logger.error('scaling tick failed', error)
          this.onError?.(error)
        })
        .finally(() => this.schedule())
    }, Math.min(this.periodMs, MAX_TIMER_MS))
    // Scaling alone must never keep the process alive.
    this.timer.unref()
  }

  private async runTick(): Promise<ScalingDecision> {
    const provider = this.blocks.provider
    if (!this.initialized) {
      // Set first: if starting the initial blocks fails part way, a retry must not start them twice.
      this.initialized = true
      const count = initialBlocks(provider.initBlocks, provider.maxBlocks)
      const decision = { scaleOut: count, scaleIn: [], drain: [], reason: `starting initBlocks (${count})` }
      if (count > 0) {
        this.logger.info(`scaling: ${decision.reason}`)
        await this.blocks.scaleOut(count)
      }
      return decision
    }
    await this.blocks.poll()
    const workload = this.workload()
    const nowMs = this.blocks.now()
    const snapshot: ScalingSnapshot = {
      nowMs,
      outstandingTasks: workload.outstandingTasks,
      slotsPerBlock: workload.slotsPerBlock,
      blocks: this.blocks.snapshotBlocks(),
      peakOutstandingTasks: this.peak(nowMs, workload.outstandingTasks),
      drainingBlocks: this.blocks.drainingCount,
    }
    const decision = decide(this.strategy, snapshot, {
      minBlocks: provider.minBlocks,
      maxBlocks: provider.maxBlocks,
      parallelism: provider.parallelism,
      maxIdleTimeMs: this.maxIdleTimeMs,
      drainLeadMs: this.drainLeadMs,
    })
    if (decision.drain.length > 0) {
      this.logger.info(`draining ${decision.drain.join(', ')} ahead of their walltime: ${decision.reason}`)
      await this.blocks.drain(decision.drain)
    }
    if (decision.scaleOut > 0) {
      this.logger.info(`scaling out by ${decision.scaleOut}: ${decision.reason}`)
      await this.blocks.scaleOut(decision.scaleOut)
    } else if (decision.scaleIn.length > 0) {
      this.logger.info(`scaling in ${decision.scaleIn.join(', ')}: ${decision.reason}`)
      await this.blocks.scaleIn(decision.scaleIn)
    } else {
      this.logger.debug(`scaling: no change (${decision.reason})`)
    }
    return decision
  }
}
