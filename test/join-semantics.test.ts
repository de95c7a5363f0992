// Join apps (issue 6, section 3): a join function that returns one future, not a list, still
// shows `joining` while it waits and rejects with JoinError when that future fails.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DataFlowKernel, DependencyError, JoinError, TaskState, ThreadPoolExecutor, type AppFuture } from 'tsflow'
import * as apps from './fixtures/kernel-apps.js'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-join-'))
const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }).start()
t.teardown(async () => {
  await kernel.cleanup({ deadlineMs: 5000 })
  rmSync(scratch, { recursive: true, force: true })
})

t.test('a join app returning a single failing future rejects with JoinError and shows joining', async (t) => {
  const blocker = apps.sleep.with({ dfk: kernel })(200)
  const gate = apps.inc.with({ dfk: kernel })(blocker)
  const joined = apps.joinOneGated.with({ dfk: kernel })(new apps.Holder(gate))
  await waitFor(() => joined.state === TaskState.joining, 'the join app to be joining')
  t.equal(gate.cancel(), true, 'the future it waits on fails (its dependency is cancelled)')
  const error = (await joined.then(() => undefined, (e: unknown) => e)) as JoinError
  t.ok(error instanceof JoinError, `rejects with JoinError (got ${String(error)})`)
  t.equal(error.failedTaskIds.length, 1)
  t.ok(error.errors[0] instanceof DependencyError, 'its error is the inner future\'s failure')
  t.equal(joined.state, TaskState.failed)
  await blocker
})

t.test('a join app returning a single succeeding future resolves to its value', async (t) => {
  const joined: AppFuture<number> = apps.joinOneOk.with({ dfk: kernel })(41)
  t.equal(await joined, 42)
  t.equal(joined.state, TaskState.exec_done)
})
