// The pure scaling decision's walltime rules: blocks near their end are drained and, while work
// remains, replaced ahead of time; scale-in keeps room for the recent peak (no flip-flop); among
// idle blocks the one ending soonest goes first. Plus the manager's own reading of its block's end.

import t from 'tap'

import { decide, endingSoon, type BlockSnapshot, type ScalingLimits, type ScalingSnapshot } from '../../dist/scaling/index.js'
import { blockEnd, BLOCK_START_ENV, BLOCK_WALLTIME_ENV } from 'tsflow/protocol'

const NOW = 10_000_000
const IDLE = 60_000
const LEAD = 30_000

const block = (blockId: string, extra: Partial<BlockSnapshot> = {}): BlockSnapshot => ({
  blockId,
  status: 'running',
  submittedAtMs: NOW - 3_600_000,
  connectedManagers: 1,
  ...extra,
})
const snap = (outstandingTasks: number, blocks: BlockSnapshot[], extra: Partial<ScalingSnapshot> = {}): ScalingSnapshot => ({
  nowMs: NOW,
  outstandingTasks,
  slotsPerBlock: 4,
  blocks,
  ...extra,
})
const limits = (extra: Partial<ScalingLimits> = {}): ScalingLimits => ({ minBlocks: 0, maxBlocks: 4, parallelism: 1, maxIdleTimeMs: IDLE, drainLeadMs: LEAD, ...extra })

t.test('a busy block within the drain lead of its end is drained and replaced while work remains', async (t) => {
  const d = decide('htex_auto_scale', snap(4, [block('0', { endMs: NOW + LEAD - 1 })]), limits())
  t.same(d.drain, ['0'])
  t.equal(d.scaleOut, 1, 'a replacement starts before the end')
  t.match(d.reason, /draining before their walltime, newly: 0/)
  for (const strategy of ['simple', 'htex_auto_scale'] as const) {
    t.same(decide(strategy, snap(4, [block('0', { endMs: NOW + LEAD - 1 })]), limits()).scaleOut, 1, `${strategy} replaces too`)
  }
})

t.test('no drain before the lead, without an end time, or with no lead configured', async (t) => {
  t.same(decide('htex_auto_scale', snap(4, [block('0', { endMs: NOW + LEAD + 1 })]), limits()).drain, [])
  t.same(decide('htex_auto_scale', snap(4, [block('0')]), limits()).drain, [])
  t.same(decide('htex_auto_scale', snap(4, [block('0', { endMs: NOW + 1 })]), limits({ drainLeadMs: 0 })).drain, [])
  t.same(decide('none', snap(4, [block('0', { endMs: NOW + 1 })]), limits()).drain, [], "'none' changes nothing")
})

t.test('no replacement when no work remains; minBlocks is kept', async (t) => {
  const d = decide('htex_auto_scale', snap(0, [block('0', { endMs: NOW + 1000 })]), limits())
  t.same([d.drain, d.scaleOut], [['0'], 0])
  t.equal(decide('htex_auto_scale', snap(0, [block('0', { endMs: NOW + 1000 })]), limits({ minBlocks: 1 })).scaleOut, 1)
})

t.test('draining blocks count against maxBlocks', async (t) => {
  const d = decide('htex_auto_scale', snap(8, [block('0', { endMs: NOW + 1000 }), block('1')]), limits({ maxBlocks: 2 }))
  t.same([d.drain, d.scaleOut], [['0'], 0], 'no room: the replacement waits for the drained block to end')
  t.match(d.reason, /maxBlocks leaves room for 0/)
  const later = decide('htex_auto_scale', snap(8, [block('1')], { drainingBlocks: 1 }), limits({ maxBlocks: 3 }))
  t.equal(later.scaleOut, 1, 'a block drained earlier still holds its place')
})

t.test('the lead is capped at half the block life, so a short walltime is not drained at once', async (t) => {
  const short = block('0', { submittedAtMs: NOW - 1000, endMs: NOW + 9000 }) // 10 s block, lead 30 s
  t.notOk(endingSoon(short, NOW, LEAD), 'half its life (5 s) is left: not yet')
  t.ok(endingSoon(short, NOW + 4000, LEAD), '5 s left: now')
  t.same(decide('htex_auto_scale', snap(4, [short]), limits()).drain, [])
})

t.test('hysteresis: a block is scaled in only below what the recent peak needed', async (t) => {
  const blocks = [block('0'), block('1', { idleSinceMs: NOW - 2 * IDLE })]
  t.same(decide('htex_auto_scale', snap(3, blocks), limits()).scaleIn, ['1'], 'without history the idle block goes')
  const d = decide('htex_auto_scale', snap(3, blocks, { peakOutstandingTasks: 6 }), limits())
  t.same(d.scaleIn, [], 'the peak needed two blocks: both stay')
  t.match(d.reason, /keeping 2 for the recent peak of 6/)
})

t.test('packing: of the idle blocks, the one ending soonest goes first; busy ones never', async (t) => {
  const blocks = [
    block('busy', { endMs: NOW + 100_000 }),
    block('late', { idleSinceMs: NOW - 5 * IDLE, endMs: NOW + 3_000_000 }),
    block('soon', { idleSinceMs: NOW - 2 * IDLE, endMs: NOW + 1_000_000 }),
    block('never', { idleSinceMs: NOW - 3 * IDLE }),
  ]
  t.same(decide('htex_auto_scale', snap(1, blocks), limits()).scaleIn, ['soon', 'late', 'never'])
})

t.test("the manager's block end: --block-end-ms, then SLURM_JOB_END_TIME, then the block's start + walltime", async (t) => {
  const start = 1_700_000_000_000
  const managerStart = start + 4000
  t.same(blockEnd({ blockEndMs: 123 }, {}, managerStart), { endMs: 123, source: '--block-end-ms' })
  t.same(blockEnd({ walltimeSeconds: 60 }, { SLURM_JOB_END_TIME: String((start + 50_000) / 1000) }, managerStart), {
    endMs: start + 50_000,
    source: 'SLURM_JOB_END_TIME',
  })
  t.same(blockEnd({ walltimeSeconds: 60 }, { [BLOCK_START_ENV]: String(start) }, managerStart)?.endMs, start + 60_000, "the job's start, not the manager's")
  t.same(blockEnd({}, { [BLOCK_START_ENV]: String(start), [BLOCK_WALLTIME_ENV]: '30' }, managerStart)?.endMs, start + 30_000, 'walltime from the script')
  t.match(blockEnd({ walltimeSeconds: 60 }, {}, managerStart), { endMs: managerStart + 60_000, source: /manager's start/ })
  t.equal(blockEnd({}, {}, managerStart), undefined, 'no walltime known: no end')
  t.equal(blockEnd({}, { SLURM_JOB_END_TIME: '0' }, managerStart), undefined, 'an unset Slurm end (0) is ignored')
})
