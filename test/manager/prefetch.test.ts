// How much a manager asks for: adaptive prefetch and the bound on payload bytes it holds.
import t from 'tap'
import { AUTO_PREFETCH_MAX, PrefetchPolicy } from '../../dist/manager/prefetch.js'
import { Scheduler } from '../../dist/manager/scheduler.js'
import type { Batch, WorkerPool } from '../../dist/manager/pool.js'
import { silentLogger } from '../../dist/util/logger.js'
import { TaskKind, type FunctionEntry } from 'tsflow/protocol'
import { encode } from '../../dist/serialize/codec.js'

t.test('auto prefetch follows measured task length', async (t) => {
  const policy = new PrefetchPolicy(2, 'auto')
  t.equal(policy.ceiling, AUTO_PREFETCH_MAX, 'registers its ceiling')
  t.equal(policy.value, 2, 'before any measurement: one extra task per worker')
  for (let i = 0; i < 20; i++) policy.observe(100, 1) // 10 µs tasks
  t.equal(policy.value, AUTO_PREFETCH_MAX, 'microsecond tasks: deep, up to the ceiling')
  const slow = new PrefetchPolicy(2, 'auto')
  for (let i = 0; i < 20; i++) slow.observe(1, 1000) // one-second tasks
  t.equal(slow.value, 1, 'one-second tasks: a single task beyond the workers at most')
  const middling = new PrefetchPolicy(4, 'auto')
  for (let i = 0; i < 20; i++) middling.observe(10, 10) // 1 ms tasks
  t.equal(middling.value, 40, 'about 10 ms of work per worker')
})

t.test('a fixed prefetch stays fixed', async (t) => {
  const policy = new PrefetchPolicy(2, 5)
  policy.observe(1000, 1)
  t.equal(policy.value, 5)
  t.equal(policy.ceiling, 5)
})

/** A pool that takes nothing, so tasks stay queued in the scheduler. */
function stalledPool(size: number): WorkerPool {
  return {
    size,
    start: () => {},
    idle: () => 0,
    starting: () => 0,
    room: () => 0,
    canTake: () => false,
    dispatch: (_batch: Batch) => {
      throw new Error('not expected')
    },
    cancelRunning: () => false,
  } as unknown as WorkerPool
}

t.test('past 64 MiB of held payload the manager asks for no prefetch', async (t) => {
  const prefetch = new PrefetchPolicy(2, 100)
  const scheduler = new Scheduler(stalledPool(2), { prefetch, maxBatch: 256, bashGraceMs: 0, where: 'test' }, silentLogger, () => {})
  const envelope = (id: number, bytes: number) => ({ id, try: 0, f: 0, k: TaskKind.js, payload: new Uint8Array(bytes) })
  const fns: FunctionEntry[] = [[0, encode({ t: 'ref', module: 'file:///a.js', key: 'a', name: 'a' })]]
  t.equal(scheduler.capacity(), 102, 'workers + prefetch when nothing is held')
  scheduler.accept([envelope(1, 1024)], fns)
  t.equal(scheduler.capacity(), 101, 'a small task takes one place')
  scheduler.accept([envelope(2, 64 * 1024 * 1024)])
  t.equal(scheduler.capacity(), 0, 'no prefetch beyond one task per worker while 64 MiB wait (2 workers, 2 held)')
  scheduler.cancel([2])
  t.equal(scheduler.capacity(), 101, 'room again once the large task is answered')
})
