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
  /** when the block reaches its walltime (its managers said), on the snapshot's clock; unset if unknown */
  endMs?: number
}

export interface ScalingSnapshot {
  nowMs: number
  /** tasks submitted to the executor and not finished: queued plus running */
  outstandingTasks: number
  /** tasks one block runs at once (workers per manager x managers per block); at least 1 */
  slotsPerBlock: number
  /** the blocks still in play; final blocks and blocks already being scaled in or drained are ignored */
  blocks: readonly BlockSnapshot[]
  /**
   * The most tasks outstanding at any tick within the last maxIdleTimeMs (at least
   * outstandingTasks). Blocks are scaled in only below what this peak needs, so a load that
   * wavers around a block boundary does not start and stop a block over and over.
   */
  peakOutstandingTasks?: number
  /** blocks drained ahead of their walltime that have not ended yet: they still count against maxBlocks */
  drainingBlocks?: number
}

export interface ScalingLimits {
  minBlocks: number
  maxBlocks: number
  /** slots wanted per outstanding task, 0..1 */
  parallelism: number
  /** how long a block must have been idle (and alive) before it may be scaled in, ms */
  maxIdleTimeMs: number
  /**
   * A block this close to its end (ms) is drained (it gets no new tasks; running ones finish) and,
   * while work remains, replaced. At most half the block's life (from its submission to its end),
   * so a short walltime does not drain a block as soon as it starts. 0 or unset: never.
   */
  drainLeadMs?: number
}

export interface ScalingDecision {
  /** blocks to start */
  scaleOut: number
  /** blocks to stop, in the order they should go */
  scaleIn: string[]
  /** blocks close to their walltime, to drain now (they stop taking tasks and end on their own) */
  drain: string[]
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
  if (strategy === 'none') return { scaleOut: 0, scaleIn: [], drain: [], reason: "strategy 'none' keeps the blocks started at load" }

  const live = snapshot.blocks.filter((block) => !isFinalBlockState(block.status))
  // Blocks near their walltime no longer count as capacity: they are drained, and replaced if needed.
  const ending = live.filter((block) => endingSoon(block, snapshot.nowMs, limits.drainLeadMs ?? 0))
  const serving = ending.length === 0 ? live : live.filter((block) => !ending.includes(block))
  const drain = ending.map((block) => block.blockId)
  const needed = blocksNeeded(snapshot.outstandingTasks, snapshot.slotsPerBlock, limits.parallelism)
  const target = clampBlocks(needed, limits)
  const draining = (snapshot.drainingBlocks ?? 0) + ending.length
  const load =
    `${snapshot.outstandingTasks} outstanding task(s), ${usableSlots(snapshot.slotsPerBlock)} slot(s) per block, ` +
    `parallelism ${limits.parallelism}: want ${target} block(s) (min ${limits.minBlocks}, max ${limits.maxBlocks}), have ${serving.length}` +
    (draining > 0 ? ` (+${draining} draining before their walltime${drain.length > 0 ? `, newly: ${drain.join(', ')}` : ''})` : '')

  // Pending blocks count as capacity: starting more while they queue would overshoot the
  // moment they all start.
  if (serving.length < target) {
    const room = Math.max(0, limits.maxBlocks - serving.length - draining)
    const scaleOut = Math.min(target - serving.length, room)
    return { scaleOut, scaleIn: [], drain, reason: scaleOut < target - serving.length ? `${load}; maxBlocks leaves room for ${room}` : load }
  }

  // 'simple' gives blocks back only when the executor has nothing to do at all;
  // 'htex_auto_scale' also trims blocks the current work leaves idle.
  if (strategy === 'simple' && snapshot.outstandingTasks > 0) return { scaleOut: 0, scaleIn: [], drain, reason: load }
  // Hysteresis: keep what the recent peak needs, not only what this instant needs.
  const peak = Math.max(snapshot.outstandingTasks, snapshot.peakOutstandingTasks ?? 0)
  const keep = Math.max(target, clampBlocks(blocksNeeded(peak, snapshot.slotsPerBlock, limits.parallelism), limits))
  const surplus = serving.length - keep
  if (surplus <= 0) {
    return { scaleOut: 0, scaleIn: [], drain, reason: keep > target ? `${load}; keeping ${keep} for the recent peak of ${peak} task(s)` : load }
  }

  const victims = idleLongEnough(serving, snapshot.nowMs, limits.maxIdleTimeMs).slice(0, surplus)
  if (victims.length === 0) {
    return { scaleOut: 0, scaleIn: [], drain, reason: `${load}; no surplus block has been idle for ${limits.maxIdleTimeMs} ms yet` }
  }
  return { scaleOut: 0, scaleIn: victims.map((block) => block.blockId), drain, reason: load }
}

function clampBlocks(needed: number, limits: ScalingLimits): number {
  return Math.min(limits.maxBlocks, Math.max(limits.minBlocks, needed))
}

/** Whether the block is within the drain lead of its end (the lead capped at half its life). */
export function endingSoon(block: BlockSnapshot, nowMs: number, drainLeadMs: number): boolean {
  if (block.endMs === undefined || !(drainLeadMs > 0)) return false
  const lead = Math.min(drainLeadMs, (block.endMs - block.submittedAtMs) / 2)
  return block.endMs - nowMs <= lead
}

/** When a block became idle, or undefined while it is busy. */
export function idleSince(block: BlockSnapshot): number | undefined {
  if (block.idleSinceMs !== undefined) return Math.max(block.idleSinceMs, block.submittedAtMs)
  return block.connectedManagers === 0 ? block.submittedAtMs : undefined
}

/**
 * Blocks that may be scaled in, best candidates first: pending ones (furthest from being useful),
 * then the one ending soonest, then the longest idle. A block younger than maxIdleTimeMs is never a candidate, so a block
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
  // Among idle blocks, the one with the least time left first: it is worth the least.
  const end = (block: BlockSnapshot): number => block.endMs ?? Infinity
  candidates.sort(
    (a, b) =>
      rank(a.block) - rank(b.block) ||
      (end(a.block) === end(b.block) ? 0 : end(a.block) < end(b.block) ? -1 : 1) ||
      a.since - b.since ||
      (a.block.blockId < b.block.blockId ? -1 : a.block.blockId > b.block.blockId ? 1 : 0),
  )
  return candidates.map((candidate) => candidate.block)
}
