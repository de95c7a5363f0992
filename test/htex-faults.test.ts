// Failures of real HTEX processes, killed with real signals, as a workflow sees them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataFlowKernel, HighThroughputExecutor, InterchangeLost, LocalProvider, ManagerLost, TaskState, WorkerLost } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { isAlive, waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-faults-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const HEARTBEAT_PERIOD_MS = 200
const HEARTBEAT_THRESHOLD_MS = 1000

function htex(extra: ConstructorParameters<typeof HighThroughputExecutor>[0] = {}): HighThroughputExecutor {
  return new HighThroughputExecutor({
    maxWorkersPerNode: 2,
    heartbeatPeriodMs: HEARTBEAT_PERIOD_MS,
    heartbeatThresholdMs: HEARTBEAT_THRESHOLD_MS,
    strategyPeriodMs: 200,
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 1 }),
    ...extra,
  })
}

/** The process group of `pid` (a local block's processes share their script's group). */
function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
}

async function startKernel(t: Test, executor: HighThroughputExecutor, name: string): Promise<DataFlowKernel> {
  const kernel = await new DataFlowKernel({ runDir: join(scratch, name), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 2000 }))
  await waitFor(() => executor.managers().length > 0, 'a manager to register')
  return kernel
}

t.test('a manager killed with SIGKILL: its tasks fail with ManagerLost in time, retries run on a replacement block', async (t) => {
  const executor = htex()
  const kernel = await startKernel(t, executor, 'manager-kill')
  const [manager] = executor.managers()
  const doomed = [apps.sleep.with({ dfk: kernel })(30_000), apps.sleep.with({ dfk: kernel })(30_000)]
  await waitFor(() => doomed.every((f) => f.state === TaskState.running), 'both tasks to run')
  const killedAt = Date.now()
  process.kill(manager!.pid, 'SIGKILL')
  const errors = await Promise.all(doomed.map((f) => f.then(() => undefined, (e: unknown) => e)))
  const elapsed = Date.now() - killedAt
  for (const error of errors) {
    t.ok(error instanceof ManagerLost, `ManagerLost (got ${String(error)})`)
    const lost = error as ManagerLost
    t.equal(lost.managerId, manager!.managerId)
    t.equal(lost.host, manager!.host)
    t.ok(lost.lastHeartbeat > 0 && lost.lastHeartbeat <= killedAt + HEARTBEAT_PERIOD_MS, 'the last heartbeat is reported')
    // Whichever comes first: the heartbeat threshold, or the provider seeing the block's script end.
    t.match(lost.message, /no heartbeat|its block \S+ ended/)
  }
  t.comment(`tasks failed ${elapsed} ms after the kill (threshold ${HEARTBEAT_THRESHOLD_MS} ms)`)
  t.ok(elapsed <= HEARTBEAT_THRESHOLD_MS + 2000, `reported within the threshold plus a margin (${elapsed} ms)`)
  // The strategy replaces the dead block; a task with retries left survives the next loss.
  await waitFor(() => executor.managers().some((m) => m.managerId !== manager!.managerId), 'a replacement manager', 20_000)
  t.equal(await apps.flaky.with({ dfk: kernel })(0), 0, 'the replacement block runs tasks')
})

t.test('a block the provider saw end fails its tasks at once with ManagerLost naming the block, not after the heartbeat threshold', async (t) => {
  // A heartbeat threshold far beyond the wait below: only the block's end can explain the loss.
  const executor = htex({ heartbeatPeriodMs: 2000, heartbeatThresholdMs: 60_000, workerMode: 'processes' })
  const kernel = await startKernel(t, executor, 'block-ended')
  const [manager] = executor.managers()
  const doomed = [apps.sleep.with({ dfk: kernel })(60_000), apps.sleep.with({ dfk: kernel })(60_000)]
  await waitFor(() => doomed.every((f) => f.state === TaskState.running), 'both tasks to run')
  // The whole block (its script, the manager and the workers) dies at once, as when a batch job is killed.
  const blockGroup = processGroupOf(manager!.pid)
  const killedAt = Date.now()
  process.kill(-blockGroup, 'SIGKILL')
  let errors: unknown[] | undefined
  void Promise.all(doomed.map((f) => f.then(() => undefined, (e: unknown) => e))).then((e) => (errors = e))
  await waitFor(() => errors !== undefined, 'the tasks to fail', 20_000)
  t.comment(`tasks failed ${Date.now() - killedAt} ms after the block was killed (heartbeat threshold 60000 ms)`)
  for (const error of errors!) {
    t.ok(error instanceof ManagerLost, `ManagerLost (got ${String(error)})`)
    t.match((error as ManagerLost).message, new RegExp(`its block ${manager!.blockId} ended \\(the provider reports it failed`), 'the block is named')
    t.equal((error as ManagerLost).managerId, manager!.managerId)
  }
})

t.test('a task retried after ManagerLost completes on the replacement', async (t) => {
  const executor = htex()
  const kernel = await startKernel(t, executor, 'manager-retry')
  const [manager] = executor.managers()
  const task = apps.sleepThenReturn.with({ dfk: kernel })(1500, 'survived')
  await waitFor(() => (executor.managers()[0]?.outstanding ?? 0) >= 1, 'the task to reach the manager')
  process.kill(manager!.pid, 'SIGKILL')
  t.equal(await task, 'survived', 'retried (retries: 2) on the new block')
})

t.test('a worker process that dies mid-task fails only that task with WorkerLost; the worker is replaced', async (t) => {
  const executor = htex({ workerMode: 'processes' })
  const kernel = await startKernel(t, executor, 'worker-exit')
  const error = (await apps.exitWorker.with({ dfk: kernel })(3).then(() => undefined, (e: unknown) => e)) as WorkerLost
  t.ok(error instanceof WorkerLost, `WorkerLost (got ${String(error)})`)
  t.equal(error.exitCode, 3)
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => apps.double.with({ dfk: kernel })(i)))
  t.same(results, Array.from({ length: 20 }, (_, i) => i * 2), 'later tasks run')
})

t.test('the interchange dying rejects every pending future with InterchangeLost; nothing hangs', async (t) => {
  const executor = htex()
  const kernel = await startKernel(t, executor, 'interchange-kill')
  const interchangePid = (executor as unknown as { interchange: { child: { pid: number } } }).interchange.child.pid
  const running = apps.sleep.with({ dfk: kernel })(30_000)
  const queued = Array.from({ length: 10 }, () => apps.sleep.with({ dfk: kernel })(30_000))
  await waitFor(() => (executor.managers()[0]?.outstanding ?? 0) >= 1, 'a task to reach the manager')
  process.kill(interchangePid, 'SIGKILL')
  for (const future of [running, ...queued]) {
    const error = await future.then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof InterchangeLost, `InterchangeLost (got ${String(error)})`)
  }
  t.match(String((await running.then(() => undefined, (e: unknown) => e)) as Error), /interchange\.log/, 'the error points at the log')
  t.match(String((await running.then(() => undefined, (e: unknown) => e)) as Error), /killed by SIGKILL \(tsflow never sends it SIGKILL: most likely the kernel's out-of-memory killer, see `dmesg`/, 'a SIGKILL points at the out-of-memory killer')
  const managerPid = executor.managers()[0]?.pid
  const started = Date.now()
  await kernel.cleanup({ deadlineMs: 2000 })
  t.ok(Date.now() - started < 15_000, 'cleanup returns')
  if (managerPid) await waitFor(() => !isAlive(managerPid), 'the orphaned manager to exit', 20_000)
})
