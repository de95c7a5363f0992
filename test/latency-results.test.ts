// Issue 6 section 2: a finished task is reported when it finishes, not when the longest task
// of the batch it travelled in ends. On every executor kind.
import t from 'tap'
import { TaskState } from 'tsflow'
import { spinFor } from './fixtures/latency.js'
import { EXECUTOR_KINDS, startKernel } from './helpers/executors.js'
import { waitFor } from './helpers/wait.js'

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: a 50 ms task batched with a 3 s task is reported while the 3 s task still runs`, async (t) => {
    // One worker and a deep prefetch, so a burst lands on that worker in batches.
    const kernel = await startKernel(t, kind, { workers: 1, prefetch: 32 })
    const spin = spinFor.with({ dfk: kernel })
    // A few no-op calls first: the worker has imported the app, and its tasks are known to be
    // quick, which is what lets them share a batch.
    for (let i = 0; i < 3; i++) t.equal(await spin(0), 0)

    // Submitted in one turn: the 50 ms and the 3 s task travel in the same batch.
    const short = spin(50)
    const long = spin(3000)
    const rest = Array.from({ length: 10 }, () => spin(0))
    await waitFor(() => short.done, 'the 50 ms task to be reported', 60_000, 5)
    t.equal(long.done, false, 'the 3 s task is still running when the 50 ms task is reported')
    t.equal(long.state, TaskState.running)
    t.equal(await short, 50)
    t.equal(await long, 3000)
    t.same(await Promise.all(rest), new Array(10).fill(0))
  })
}
