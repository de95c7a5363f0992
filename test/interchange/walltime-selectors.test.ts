// The interchange core (no sockets, a clock the test moves): tasks with a declared walltime go
// only to managers whose block has time left for them, tasks of a manager lost at its block's
// end fail with BlockWalltimeReached (a free retry for the kernel), and the two manager selectors.

import t from 'tap'

import { ErrorCode } from 'tsflow'
import { InterchangeCore, TaskQueue } from 'tsflow/interchange'
import { stamp, type InterchangeToClient, type InterchangeToManager, type ManagerSelectorName, type TaskEnvelope } from 'tsflow/protocol'
import { FNS, makeTasks } from './harness.js'

const MARGIN = 1000

function harness(managerSelector: ManagerSelectorName = 'packed') {
  let now = 5_000_000
  const toClient: InterchangeToClient[] = []
  const toManagers: { key: string; message: InterchangeToManager }[] = []
  const core = new InterchangeCore(
    { heartbeatPeriodMs: 1000, heartbeatThresholdMs: 60_000, clock: () => now, managerSelector, walltimeMarginMs: MARGIN },
    { toClient: (m) => toClient.push(m), toManager: (key, message) => toManagers.push({ key, message }) },
  )
  const register = (id: string, blockId: string, workers: number, prefetch = 0, leftMs?: number) =>
    core.onManagerMessage(id, {
      t: 'register',
      managerId: id,
      host: `host-${id}`,
      blockId,
      workers,
      prefetch,
      pid: 1,
      ...(leftMs !== undefined ? { leftMs } : {}),
      ...stamp(),
    })
  /** submits tasks, flushes, and returns the ids each manager got in this flush */
  const submit = (tasks: TaskEnvelope[]) => {
    toManagers.length = 0
    core.onClientMessage({ t: 'submit', tasks, fns: FNS })
    core.flush()
    const got: Record<string, number[]> = {}
    for (const { key, message } of toManagers) if (message.t === 'tasks') (got[key] ??= []).push(...message.tasks.map((task) => task.id))
    return got
  }
  const failures = () => toClient.flatMap((m) => (m.t === 'failed' ? m.failures : []))
  return { core, register, submit, failures, advance: (ms: number) => (now += ms), now: () => now }
}

const withWalltime = (id: number, wt?: number): TaskEnvelope => {
  const task = makeTasks(id, 1)[0]!
  if (wt !== undefined) task.wt = wt
  return task
}

t.test('a task goes only to a block with its walltime plus the margin left; others wait for one', async (t) => {
  const { core, register, submit, advance } = harness()
  register('short', 'S', 8, 0, 10_000)
  t.equal(core.managerInfos()[0]!.endMs, 5_010_000, "the block's end is on the interchange's clock: now + the time the manager said was left")
  // 9 s + 1 s margin fits the 10 s left; 20 s does not; a task without walltime goes anywhere.
  const got = submit([withWalltime(0, 9), withWalltime(1, 20), withWalltime(2), withWalltime(3, 20), withWalltime(4, 5)])
  t.same(got, { short: [0, 2, 4] })
  t.equal(core.queue.size, 2, 'the long tasks stay queued')

  register('long', 'L', 8, 0, 3_600_000)
  t.same(submit([]), { long: [1, 3] }, 'a block with enough time left takes them, in their order')

  // Close to its end (within the margin) a block takes nothing at all, not even tasks without a walltime.
  advance(9_200)
  register('long2', 'L', 1, 0, 3_600_000)
  const late = submit(makeTasks(10, 12))
  t.notOk(late.short, 'the block at its end gets no task')
  t.equal(late.long2?.length, 1)
  t.equal((late.long?.length ?? 0) + (late.long2?.length ?? 0), 7, 'the others fill their idle workers')
})

t.test('a manager without an end time (no walltime known) takes every task', async (t) => {
  const { register, submit } = harness()
  register('m', 'B', 4)
  t.same(submit([withWalltime(0, 1e6), withWalltime(1, 1)]), { m: [0, 1] })
})

t.test('the put-back keeps priority and arrival order', async (t) => {
  const queue = new TaskQueue()
  const tasks = makeTasks(0, 6, (id) => (id % 2 ? 5 : 0))
  for (const task of tasks) queue.push(task)
  const first = [queue.shift()!, queue.shift()!, queue.shift()!]
  t.same(first.map((task) => task.id), [1, 3, 5])
  queue.putBack(first)
  t.same([...Array(6)].map(() => queue.shift()!.id), [1, 3, 5, 0, 2, 4])
})

t.test("tasks held by a manager lost at its block's end fail with BlockWalltimeReached, earlier with ManagerLost", async (t) => {
  const { core, register, submit, failures, advance } = harness()
  register('early', 'E', 1, 0, 100_000)
  register('ending', 'X', 1, 0, 10_000)
  t.same(submit(makeTasks(0, 2)), { early: [0], ending: [1] })
  advance(9_500) // within the margin of block X's end
  core.onClientMessage({ t: 'block_ended', blockId: 'X', reason: 'the provider reports it failed: reached its walltime' })
  core.onClientMessage({ t: 'block_ended', blockId: 'E', reason: 'the provider reports it failed: killed' })
  core.flush()
  const byId = new Map(failures().map((f) => [f.id, f]))
  t.equal(byId.get(1)?.error.code, ErrorCode.BLOCK_WALLTIME)
  t.match(byId.get(1)?.error.message, /task #1 was stopped because block X reached the end of its walltime/)
  t.equal(byId.get(0)?.error.code, ErrorCode.MANAGER_LOST, 'a block ended long before its walltime is an ordinary loss')
})

t.test("packed: a block that already has work is filled first, an idle block's worker before any prefetch", async (t) => {
  const { register, submit } = harness('packed')
  register('a', 'A', 2, 2)
  register('b', 'B', 2)
  const order = [submit(makeTasks(0, 1)), submit(makeTasks(1, 1)), submit(makeTasks(2, 1))]
  t.same(order, [{ a: [0] }, { a: [1] }, { b: [2] }], 'A fills its workers before B gets anything; then B before A prefetches')
  t.same(submit(makeTasks(3, 1)), { b: [3] }, 'B is busy now too: its idle worker comes before any prefetch')
  t.same(submit(makeTasks(4, 3)), { a: [4, 5] }, 'then prefetch, busy blocks first')
})

t.test('packed: under a trickle, one block does all the work and the other stays idle', async (t) => {
  const { core, register, submit } = harness('packed')
  register('a', 'A', 2)
  register('b', 'B', 2)
  const seen = new Set<string>()
  for (let id = 0; id < 50; id++) {
    const got = submit(makeTasks(id, 1))
    for (const key of Object.keys(got)) seen.add(key)
    core.onManagerMessage(Object.keys(got)[0]!, { t: 'results', results: [{ id, try: 0, payload: Buffer.from('r') }], capacity: 2 })
  }
  t.same([...seen], ['a'], 'every task went to block A')
})

t.test('spread: round robin over managers, idle workers anywhere first (the dispatch before selectors)', async (t) => {
  const { core, register, submit } = harness('spread')
  register('a', 'A', 2, 2)
  register('b', 'B', 2)
  t.same([submit(makeTasks(0, 1)), submit(makeTasks(1, 1)), submit(makeTasks(2, 1))], [{ a: [0] }, { b: [1] }, { a: [2] }])
})

t.test('spread: a trickle keeps every block busy', async (t) => {
  const { core, register, submit } = harness('spread')
  register('a', 'A', 2)
  register('b', 'B', 2)
  const seen = new Set<string>()
  for (let id = 10; id < 20; id++) {
    const got = submit(makeTasks(id, 1))
    for (const key of Object.keys(got)) seen.add(key)
    core.onManagerMessage(Object.keys(got)[0]!, { t: 'results', results: [{ id, try: 0, payload: Buffer.from('r') }], capacity: 2 })
  }
  t.same([...seen].sort(), ['a', 'b'], 'a trickle keeps both blocks busy')
})
