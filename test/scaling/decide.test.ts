// The pure scaling decision: every rule probed directly with hand-made snapshots and an explicit
// clock (nowMs), then invariants checked over many random snapshots.
// Build first: `npx tsc -p tsconfig.build.json`.

import t from 'tap'

import {
  blocksNeeded,
  decide,
  initialBlocks,
  type BlockSnapshot,
  type ScalingLimits,
  type ScalingSnapshot,
  type StrategyName,
} from '../../dist/scaling/index.js'

const NOW = 1_000_000
const IDLE = 60_000

function block(blockId: string, extra: Partial<BlockSnapshot> = {}): BlockSnapshot {
  // Default: running for a long time, one manager, busy.
  return { blockId, status: 'running', submittedAtMs: NOW - 10 * IDLE, connectedManagers: 1, ...extra }
}
/** Running, connected, idle since `ago` ms. */
const idle = (blockId: string, ago: number, extra: Partial<BlockSnapshot> = {}): BlockSnapshot =>
  block(blockId, { idleSinceMs: NOW - ago, ...extra })

function snap(outstandingTasks: number, blocks: BlockSnapshot[], slotsPerBlock = 4, nowMs = NOW): ScalingSnapshot {
  return { nowMs, outstandingTasks, slotsPerBlock, blocks }
}
function limits(extra: Partial<ScalingLimits> = {}): ScalingLimits {
  return { minBlocks: 0, maxBlocks: 10, parallelism: 1, maxIdleTimeMs: IDLE, ...extra }
}
const both: StrategyName[] = ['simple', 'htex_auto_scale']

t.test('blocksNeeded: slots per task, parallelism, rounding', async (t) => {
  t.equal(blocksNeeded(0, 4, 1), 0, 'no work, no blocks')
  t.equal(blocksNeeded(1, 4, 1), 1)
  t.equal(blocksNeeded(4, 4, 1), 1)
  t.equal(blocksNeeded(5, 4, 1), 2, 'a partial block rounds up')
  t.equal(blocksNeeded(10, 4, 0.5), 2, '10 tasks at 0.5 want 5 slots')
  t.equal(blocksNeeded(1000, 4, 0), 1, 'parallelism 0 still wants one block while there is work')
  t.equal(blocksNeeded(1, 4, 0.01), 1, 'a tiny share rounds up to one block')
  t.equal(blocksNeeded(10, 1, 0.3), 3, 'float noise (10 * 0.3 = 3.0000000000000004) does not add a block')
  t.equal(blocksNeeded(3, 1, 0.7), 3, '2.1 rounds up')
  t.equal(blocksNeeded(8, 2.9, 1), 4, 'fractional slots count as whole slots (2)')
  t.equal(blocksNeeded(3, 0, 1), 3, 'unknown slots (0) count as 1')
  t.equal(blocksNeeded(3, Number.NaN, 1), 3, 'unknown slots (NaN) count as 1')
  t.equal(blocksNeeded(Number.NaN, 4, 1), 0, 'a nonsense task count means no demand')
})

t.test('initialBlocks respects maxBlocks', async (t) => {
  t.equal(initialBlocks(2, 5), 2)
  t.equal(initialBlocks(7, 5), 5)
  t.equal(initialBlocks(0, 5), 0)
})

t.test("'none' never changes anything", async (t) => {
  t.same(decide('none', snap(100, []), limits()), { scaleOut: 0, scaleIn: [], drain: [], reason: "strategy 'none' keeps the blocks started at load" })
  const d = decide('none', snap(0, [idle('0', 10 * IDLE), idle('1', 10 * IDLE)]), limits())
  t.same([d.scaleOut, d.scaleIn], [0, []])
})

for (const strategy of both) {
  t.test(`${strategy}: scales out to the demand, within maxBlocks`, async (t) => {
    t.equal(decide(strategy, snap(10, []), limits()).scaleOut, 3, '10 tasks / 4 slots')
    t.equal(decide(strategy, snap(10, [block('0')]), limits()).scaleOut, 2, 'existing blocks count')
    t.equal(decide(strategy, snap(1000, []), limits()).scaleOut, 10, 'capped at maxBlocks')
    t.equal(decide(strategy, snap(1000, [block('0'), block('1')]), limits({ maxBlocks: 2 })).scaleOut, 0, 'already at maxBlocks')
    t.equal(decide(strategy, snap(10, []), limits({ parallelism: 0.5 })).scaleOut, 2, 'parallelism 0.5')
    t.equal(decide(strategy, snap(10, []), limits({ parallelism: 0 })).scaleOut, 1, 'parallelism 0')
    t.match(decide(strategy, snap(10, []), limits()).reason, /10 outstanding task\(s\), 4 slot\(s\) per block, parallelism 1: want 3 block\(s\)/)
  })

  t.test(`${strategy}: keeps minBlocks even without work`, async (t) => {
    t.equal(decide(strategy, snap(0, []), limits({ minBlocks: 2 })).scaleOut, 2)
    t.equal(decide(strategy, snap(0, [idle('0', 0)]), limits({ minBlocks: 2 })).scaleOut, 1)
  })

  t.test(`${strategy}: pending blocks count as capacity (no scale out while they cover the demand)`, async (t) => {
    const pending = [block('0', { status: 'pending', connectedManagers: 0, submittedAtMs: NOW - 1000 }), block('1', { status: 'pending', connectedManagers: 0, submittedAtMs: NOW - 1000 })]
    const covered = decide(strategy, snap(8, pending), limits())
    t.same([covered.scaleOut, covered.scaleIn], [0, []], '8 tasks fit into 2 pending blocks')
    t.equal(decide(strategy, snap(12, pending), limits()).scaleOut, 1, 'only the uncovered part starts a block')
    const unknown = [block('0', { status: 'unknown' })]
    t.equal(decide(strategy, snap(4, unknown), limits()).scaleOut, 0, "a block in state 'unknown' still counts")
  })

  t.test(`${strategy}: ended blocks are not capacity`, async (t) => {
    const ended = [block('0', { status: 'failed' }), block('1', { status: 'completed' }), block('2', { status: 'cancelled' })]
    t.equal(decide(strategy, snap(4, ended), limits()).scaleOut, 1)
  })

  t.test(`${strategy}: with no work, idle blocks beyond minBlocks go after maxIdleTimeMs, longest idle first`, async (t) => {
    const blocks = [idle('0', IDLE + 5), idle('1', IDLE + 50), idle('2', IDLE + 20)]
    t.same(decide(strategy, snap(0, blocks), limits({ minBlocks: 1 })).scaleIn, ['1', '2'])
    t.same(decide(strategy, snap(0, blocks), limits()).scaleIn, ['1', '2', '0'])
    t.same(decide(strategy, snap(0, blocks), limits({ minBlocks: 3 })).scaleIn, [], 'minBlocks kept')
  })

  t.test(`${strategy}: idle timing follows the snapshot's clock exactly`, async (t) => {
    const blocks = [block('0', { idleSinceMs: 500_000, submittedAtMs: 100_000 })]
    t.same(decide(strategy, snap(0, blocks, 4, 500_000 + IDLE - 1), limits()).scaleIn, [], '1 ms short of maxIdleTimeMs')
    t.same(decide(strategy, snap(0, blocks, 4, 500_000 + IDLE), limits()).scaleIn, ['0'], 'exactly maxIdleTimeMs')
    t.match(decide(strategy, snap(0, blocks, 4, 500_000 + 1), limits()).reason, /no surplus block has been idle for 60000 ms yet/)
  })

  t.test(`${strategy}: a block younger than maxIdleTimeMs is never scaled in`, async (t) => {
    // Idle since it was submitted, even claims an older idle start: age is what counts.
    const young = block('0', { submittedAtMs: NOW - IDLE + 1, idleSinceMs: NOW - 10 * IDLE })
    t.same(decide(strategy, snap(0, [young]), limits()).scaleIn, [])
    const old = block('0', { submittedAtMs: NOW - IDLE, idleSinceMs: NOW - 10 * IDLE })
    t.same(decide(strategy, snap(0, [old]), limits()).scaleIn, ['0'])
  })

  t.test(`${strategy}: busy blocks are never scaled in`, async (t) => {
    const blocks = [block('0'), block('1', { connectedManagers: 3 })]
    t.same(decide(strategy, snap(0, blocks), limits()).scaleIn, [])
  })

  t.test(`${strategy}: a block without managers counts as idle since it was submitted; pending ones go first`, async (t) => {
    const blocks = [
      idle('run', 5 * IDLE),
      block('pend', { status: 'pending', connectedManagers: 0, submittedAtMs: NOW - 2 * IDLE }),
      block('lost', { connectedManagers: 0, submittedAtMs: NOW - 3 * IDLE }),
    ]
    t.same(decide(strategy, snap(0, blocks), limits()).scaleIn, ['pend', 'run', 'lost'])
    t.same(decide(strategy, snap(0, blocks), limits({ minBlocks: 2 })).scaleIn, ['pend'])
  })

  t.test(`${strategy}: ties go by block id, so decisions are repeatable`, async (t) => {
    const blocks = [idle('b', 2 * IDLE), idle('a', 2 * IDLE), idle('c', 2 * IDLE)]
    t.same(decide(strategy, snap(0, blocks), limits({ minBlocks: 1 })).scaleIn, ['a', 'b'])
  })

  t.test(`${strategy}: no ping-pong between ticks`, async (t) => {
    // A burst: scale out, then the next ticks see the new pending blocks and do nothing.
    const first = decide(strategy, snap(12, []), limits())
    t.equal(first.scaleOut, 3)
    const started = ['0', '1', '2'].map((id) => block(id, { status: 'pending', connectedManagers: 0, submittedAtMs: NOW }))
    const later = decide(strategy, snap(12, started, 4, NOW + 1000), limits())
    t.same([later.scaleOut, later.scaleIn], [0, []], 'pending blocks cover the burst')
    // The burst ends quickly; the fresh blocks are left alone until they are maxIdleTimeMs old.
    const quiet = started.map((b) => ({ ...b, status: 'running' as const, connectedManagers: 1, idleSinceMs: NOW + 2000 }))
    t.same(decide(strategy, snap(0, quiet, 4, NOW + 3000), limits()).scaleIn, [], 'too young to go')
    t.same(decide(strategy, snap(0, quiet, 4, NOW + 2000 + IDLE), limits()).scaleIn, ['0', '1', '2'], 'idle long enough')
    // After scaling in, the same load asks for nothing new.
    const after = decide(strategy, snap(0, [], 4, NOW + 2000 + IDLE), limits())
    t.same([after.scaleOut, after.scaleIn], [0, []])
  })
}

t.test('simple keeps idle blocks while any work is outstanding; htex_auto_scale trims them', async (t) => {
  // 4 blocks, 2 busy, 2 idle for long; 8 tasks at 4 slots need 2 blocks.
  const blocks = [block('0'), block('1'), idle('2', 2 * IDLE), idle('3', 3 * IDLE)]
  t.same(decide('simple', snap(8, blocks), limits()).scaleIn, [])
  t.same(decide('htex_auto_scale', snap(8, blocks), limits()).scaleIn, ['3', '2'])
  t.same(decide('htex_auto_scale', snap(9, blocks), limits()).scaleIn, ['3'], '9 tasks need 3 blocks')
  t.same(decide('htex_auto_scale', snap(8, blocks), limits({ minBlocks: 4 })).scaleIn, [], 'minBlocks kept')
})

t.test('more live blocks than maxBlocks: the idle surplus goes', async (t) => {
  const blocks = [idle('0', 2 * IDLE), idle('1', 2 * IDLE), block('2')]
  t.same(decide('htex_auto_scale', snap(100, blocks), limits({ maxBlocks: 1 })).scaleIn, ['0', '1'])
})

t.test('invariants over random snapshots', async (t) => {
  // A small seeded generator keeps failures reproducible.
  let seed = 12345
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const states = ['pending', 'running', 'running', 'unknown', 'completed', 'failed', 'cancelled'] as const
  let checked = 0
  let outs = 0
  let ins = 0
  for (let i = 0; i < 3000; i++) {
    const maxBlocks = 1 + Math.floor(random() * 8)
    const lim = limits({ maxBlocks, minBlocks: Math.floor(random() * (maxBlocks + 1)), parallelism: pick([0, 0.25, 0.5, 1, random()]), maxIdleTimeMs: pick([0, 1000, IDLE]) })
    const blocks = Array.from({ length: Math.floor(random() * 10) }, (_, n): BlockSnapshot => {
      const submittedAtMs = NOW - Math.floor(random() * 3 * IDLE)
      const connectedManagers = Math.floor(random() * 3)
      const b: BlockSnapshot = { blockId: String(n), status: pick(states), submittedAtMs, connectedManagers }
      if (random() < 0.6) b.idleSinceMs = submittedAtMs + Math.floor(random() * (NOW - submittedAtMs))
      return b
    })
    const s = snap(pick([0, 0, 1, 5, 40, 1000]), blocks, pick([1, 2, 4, 8]))
    const strategy = pick(['none', 'simple', 'htex_auto_scale'] as const)
    const d = decide(strategy, s, lim)
    const live = blocks.filter((b) => !['completed', 'failed', 'cancelled'].includes(b.status))
    const context = JSON.stringify({ strategy, s, lim, d })
    const fail = (what: string): void => void t.fail(`${what}: ${context}`)
    if (d.scaleOut < 0 || !Number.isInteger(d.scaleOut)) fail('scaleOut is a non-negative integer')
    if (d.scaleOut > 0 && d.scaleIn.length > 0) fail('never both directions at once')
    if (d.scaleOut > 0 && live.length + d.scaleOut > lim.maxBlocks) fail('maxBlocks respected')
    if (new Set(d.scaleIn).size !== d.scaleIn.length) fail('no block chosen twice')
    if (live.length - d.scaleIn.length < Math.min(lim.minBlocks, live.length)) fail('minBlocks respected')
    if (strategy === 'none' && (d.scaleOut !== 0 || d.scaleIn.length !== 0)) fail("'none' does nothing")
    if (strategy === 'simple' && s.outstandingTasks > 0 && d.scaleIn.length > 0) fail("'simple' keeps blocks while there is work")
    for (const id of d.scaleIn) {
      const b = live.find((candidate) => candidate.blockId === id)
      if (!b) fail(`scaled in block ${id} is live`)
      else {
        const since = b.idleSinceMs ?? (b.connectedManagers === 0 ? b.submittedAtMs : undefined)
        if (since === undefined) fail(`block ${id} was busy`)
        else if (NOW - since < lim.maxIdleTimeMs || NOW - b.submittedAtMs < lim.maxIdleTimeMs) fail(`block ${id} idle long enough`)
      }
    }
    if (d.scaleOut > 0) outs++
    if (d.scaleIn.length > 0) ins++
    checked++
  }
  t.equal(checked, 3000, 'all random snapshots checked')
  t.ok(outs > 100 && ins > 100, `the snapshots exercise both directions (${outs} out, ${ins} in)`)
})
