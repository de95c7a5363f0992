// Issue 6 section 2: a short task never waits behind a long one while a worker is idle. The
// pattern of Parsl's regression test 1606 (wait_for_current_tasks while short tasks finish):
// one long task and many short ones submitted together; the short ones must all be done long
// before the long one, on every executor kind.
import t from 'tap'
import { spinFor, sleepFor } from './fixtures/latency.js'
import { EXECUTOR_KINDS, startKernel } from './helpers/executors.js'
import { waitFor } from './helpers/wait.js'

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: short tasks submitted with a long one finish on the idle worker while the long one runs`, async (t) => {
    // A deep prefetch: the manager holds a backlog it could bind to a busy worker.
    const kernel = await startKernel(t, kind, { workers: 2, prefetch: 32 })
    // Both workers up and with the app module imported (two overlapping tasks take both).
    t.same(await Promise.all([sleepFor.with({ dfk: kernel })(300), sleepFor.with({ dfk: kernel })(300)]), [300, 300])

    const spin = spinFor.with({ dfk: kernel })
    const long = spin(4000)
    const shorts = Array.from({ length: 20 }, () => spin(10))
    await waitFor(() => shorts.every((future) => future.done), 'the short tasks to be done', 60_000, 5)
    t.equal(long.done, false, 'every short task was done while the long one still ran')
    await kernel.waitForCurrentTasks()
    t.ok(long.done && shorts.every((future) => future.done), 'waitForCurrentTasks returns with every task done')
    t.equal(await long, 4000)
    t.same(await Promise.all(shorts), new Array(20).fill(10))

    // A short task submitted while a long one runs takes the other worker at once.
    const long2 = spin(4000)
    await waitFor(() => long2.state === 'running', 'the second long task to run', 60_000, 5)
    const short = spin(10)
    await waitFor(() => short.done, 'the short task to be done', 60_000, 5)
    t.equal(long2.done, false, 'the short task did not wait for the long one')
    t.equal(await long2, 4000)
  })
}
