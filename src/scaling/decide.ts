import { isFinalBlockState, type BlockState } from '../providers/base.js'

/**
 * The scaling decision as a pure function: a snapshot of the executor's load and blocks in, how
 * many blocks to start and which to stop out. No clock, no I/O: the runner (strategy.ts) gathers
 * the snapshot and carries the decision out, and tests can probe every rule directly.
 */

export const STRATEGIES = ['none', 'simple', 'htex_auto_scale'] as const
export type StrategyName = (typeof STRATEGIES)[number]

export interface BlockSnapshot {
  blockId: string
  status: BlockState
  /** when the block was submitted, on the snapshot's clock */
  submittedAtMs: number
  /**
   * Since when the block's managers have had no task; undefined while any of them has one. A
   * block with no connected manager (still starting, or lost them) counts as idle since it was
   * submitted: it serves nothing.
   */
  idleSinceMs?: number
  connectedManagers: number
}

export interface ScalingSnapshot {
  nowMs: number
  /** tasks submitted to the executor and not finished: queued plus running */
  outstandingTasks: number
  /** tasks one block runs at once (workers per manager x managers per block); at least 1 */
  slotsPerBlock: number
  /** the blocks still in play; final blocks and blocks already being scaled in are ignored */
  blocks: readonly BlockSnapshot[]
}

export interface ScalingLimits {
  minBlocks: number
  maxBlocks: number
  /** slots wanted per outstanding task, 0..1 */
  parallelism: number
  /** how long a block must have been idle (and alive) before it may be scaled in, ms */
  maxIdleTimeMs: number
}

export interface ScalingDecision {
  /** blocks to start */
  scaleOut: number
  /** blocks to stop, in the order they should go */
  scaleIn: string[]
  /** one line saying why, for the log */
  reason: string
}

/**
 * Blocks needed to give `outstandingTasks` a slot each, scaled by `parallelism`; at least one
 * while there is any work (parallelism 0 means "as few as possible", not "none").
 */
export function blocksNeeded(outstandingTasks: number, slotsPerBlock: number, parallelism: number): number {
  if (!(outstandingTasks > 0)) return 0
  const slots = usableSlots(slotsPerBlock)
  // The epsilon keeps float noise from asking for a block too many (10 * 0.3 = 3.0000000000000004).
  return Math.max(1, Math.ceil((outstandingTasks * parallelism) / slots - 1e-9))
}

/** slotsPerBlock as a whole number >= 1: an executor that cannot tell yet (NaN, 0) gets one slot per block. */
function usableSlots(slotsPerBlock: number): number {
  return Number.isFinite(slotsPerBlock) && slotsPerBlock >= 1 ? Math.floor(slotsPerBlock) : 1
}

/** The blocks a strategy wants when the executor starts: initBlocks, within maxBlocks. */
export function initialBlocks(initBlocks: number, maxBlocks: number): number {
  return Math.max(0, Math.min(initBlocks, maxBlocks))
}

export function decide(strategy: StrategyName, snapshot: ScalingSnapshot, limits: ScalingLimits): ScalingDecision {
  if (strategy === 'none') return { scaleOut: 0, scaleIn: [], reason: "strategy 'none' keeps the blocks started at load" }

  const live = snapshot.blocks.filter((block) => !isFinalBlockState(block.status))
  const needed = blocksNeeded(snapshot.outstandingTasks, snapshot.slotsPerBlock, limits.parallelism)
  const target = Math.min(limits.maxBlocks, Math.max(limits.minBlocks, needed))
  const load =
    `${snapshot.outstandingTasks} outstanding task(s), ${usableSlots(snapshot.slotsPerBlock)} slot(s) per block, ` +
    `parallelism ${limits.parallelism}: want ${target} block(s) (min ${limits.minBlocks}, max ${limits.maxBlocks}), have ${live.length}`

  // Pending blocks count as capacity: starting more while they queue would overshoot the
  // moment they all start.
  if (live.length < target) return { scaleOut: target - live.length, scaleIn: [], reason: load }

  // 'simple' gives blocks back only when the executor has nothing to do at all;
  // 'htex_auto_scale' also trims blocks the current work leaves idle.
  if (strategy === 'simple' && snapshot.outstandingTasks > 0) return { scaleOut: 0, scaleIn: [], reason: load }
  const surplus = live.length - target
  if (surplus <= 0) return { scaleOut: 0, scaleIn: [], reason: load }

  const victims = idleLongEnough(live, snapshot.nowMs, limits.maxIdleTimeMs).slice(0, surplus)
  if (victims.length === 0) {
    return { scaleOut: 0, scaleIn: [], reason: `${load}; no surplus block has been idle for ${limits.maxIdleTimeMs} ms yet` }
  }
  return { scaleOut: 0, scaleIn: victims.map((block) => block.blockId), reason: load }
}

/** When a block became idle, or undefined while it is busy. */
export function idleSince(block: BlockSnapshot): number | undefined {
  if (block.idleSinceMs !== undefined) return Math.max(block.idleSinceMs, block.submittedAtMs)
  return block.connectedManagers === 0 ? block.submittedAtMs : undefined
}

/**
 * Blocks that may be scaled in, best candidates first: pending ones (furthest from being useful),
 * then the longest idle. A block younger than maxIdleTimeMs is never a candidate, so a block
 * started for a burst is not stopped before it had the chance to take part in it.
 */
function idleLongEnough(blocks: readonly BlockSnapshot[], nowMs: number, maxIdleTimeMs: number): BlockSnapshot[] {
  const candidates: { block: BlockSnapshot; since: number }[] = []
  for (const block of blocks) {
    const since = idleSince(block)
    if (since === undefined) continue
    if (nowMs - since < maxIdleTimeMs || nowMs - block.submittedAtMs < maxIdleTimeMs) continue
    candidates.push({ block, since })
  }
  const rank = (block: BlockSnapshot): number => (block.status === 'pending' ? 0 : 1)
  candidates.sort(
    (a, b) =>
      rank(a.block) - rank(b.block) ||
      a.since - b.since ||
      (a.block.blockId < b.block.blockId ? -1 : a.block.blockId > b.block.blockId ? 1 : 0),
  )
  return candidates.map((candidate) => candidate.block)
}
