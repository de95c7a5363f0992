// Iteration planning as a pure function: batch sizes from made-up measured rates.
import t from 'tap'
import {
  ESTIMATE_THRESHOLD,
  estimateBatch,
  FIRST_BATCH,
  MAX_BATCH,
  MAX_ESTIMATE_ITERATIONS,
  MAX_EXPONENTIAL_ITERATIONS,
  planNext,
  type Measurement,
} from '../../dist/perf/plan.js'
import type { IterateMode } from '../../dist/perf/args.js'

const estimate = { mode: 'estimate' } as const
const exponential = { mode: 'exponential' } as const

/** Runs the planner against a machine that completes `rate(tasks)` tasks/s; returns the batch sizes. */
function simulate(mode: typeof estimate | typeof exponential, target: number, rate: (tasks: number, index: number) => number): { sizes: number[]; stop: string | undefined } {
  const done: Measurement[] = []
  for (;;) {
    const plan = planNext(mode, target, done)
    if (plan.next === undefined) return { sizes: done.map((m) => m.tasks), stop: plan.stop }
    done.push({ tasks: plan.next, completeSeconds: plan.next / rate(plan.next, done.length) })
  }
}

t.test('estimate: a small first batch, then one sized to fill the target at the measured rate', async (t) => {
  t.same(planNext(estimate, 120, []), { next: FIRST_BATCH })
  // 20 tasks in 2 s (start-up dominated: 10/s) -> 1,200 tasks for 120 s.
  t.same(planNext(estimate, 120, [{ tasks: 20, completeSeconds: 2 }]), { next: 1200 })
  // 1,200 tasks in 0.6 s (2,000/s) -> 240,000.
  t.same(planNext(estimate, 120, [{ tasks: 20, completeSeconds: 2 }, { tasks: 1200, completeSeconds: 0.6 }]), { next: 240_000 })
})

t.test('estimate stops once a batch after the first lasted 75% of the target', async (t) => {
  const first = { tasks: 20, completeSeconds: 200 }
  t.same(planNext(estimate, 120, [first]).next, 12, 'one batch is never enough, even a long one')
  const enough = { tasks: 240_000, completeSeconds: ESTIMATE_THRESHOLD * 120 }
  t.same(planNext(estimate, 120, [first, enough]), { next: undefined, stop: 'target reached' })
  const short = { tasks: 240_000, completeSeconds: ESTIMATE_THRESHOLD * 120 - 0.01 }
  t.not(planNext(estimate, 120, [first, short]).next, undefined, 'just under the threshold runs again')
})

t.test('estimate converges on a steady machine in three batches', async (t) => {
  // Start-up makes the first batch slow; afterwards a steady 5,000 tasks/s.
  const run = simulate(estimate, 30, (_tasks, index) => (index === 0 ? 40 : 5000))
  t.same(run.sizes, [20, 1200, 150_000])
  t.equal(run.stop, 'target reached')
})

t.test('estimate gives up after a bounded number of batches', async (t) => {
  // A machine that keeps getting twice as fast (still warming up): every batch lasts half the target.
  const run = simulate(estimate, 10, (_tasks, index) => 100 * 2 ** index)
  t.equal(run.sizes.length, MAX_ESTIMATE_ITERATIONS)
  t.equal(run.stop, 'iteration limit')
})

t.test('estimate sizes are whole, at least 1 and at most MAX_BATCH', async (t) => {
  t.equal(estimateBatch({ tasks: 1, completeSeconds: 1000 }, 0.5), 1, 'very slow: still one task')
  t.equal(estimateBatch({ tasks: 3, completeSeconds: 0.7 }, 1), 4, 'rounded down')
  t.equal(estimateBatch({ tasks: 20, completeSeconds: 0 }, 120), MAX_BATCH, 'a batch within clock resolution does not divide by zero')
  t.equal(estimateBatch({ tasks: 10_000_000, completeSeconds: 1 }, 120), MAX_BATCH)
})

t.test('exponential: doubles from the first batch until one lasts the target', async (t) => {
  t.same(planNext(exponential, 10, []), { next: FIRST_BATCH })
  t.same(planNext(exponential, 10, [{ tasks: 20, completeSeconds: 0.1 }]), { next: 40 })
  t.same(planNext(exponential, 10, [{ tasks: 20, completeSeconds: 10 }]), { next: undefined, stop: 'target reached' })
  // 1,000 tasks/s and a 1 s target: 20, 40, ... 1,280 (1.28 s).
  const run = simulate(exponential, 1, () => 1000)
  t.same(run.sizes, [20, 40, 80, 160, 320, 640, 1280])
  t.equal(run.stop, 'target reached')
})

t.test('exponential stops at the iteration limit on an impossibly fast machine', async (t) => {
  const run = simulate(exponential, 1e9, () => 1e12)
  t.equal(run.sizes.length, MAX_EXPONENTIAL_ITERATIONS)
  t.equal(run.stop, 'iteration limit')
  t.ok(run.sizes.every((size) => size <= MAX_BATCH))
})

t.test('an explicit list runs exactly those batches, whatever the rates', async (t) => {
  const list: IterateMode = { mode: 'list', sizes: [50, 200, 7] }
  const done: Measurement[] = []
  const sizes: number[] = []
  for (let plan = planNext(list, 0.001, done); plan.next !== undefined; plan = planNext(list, 0.001, done)) {
    sizes.push(plan.next)
    done.push({ tasks: plan.next, completeSeconds: 100 })
  }
  t.same(sizes, [50, 200, 7])
  t.same(planNext(list, 1, done), { next: undefined, stop: 'list done' })
})
