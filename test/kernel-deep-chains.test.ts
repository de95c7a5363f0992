// Deep dependency chains (issue 6, section 1): a failure or a cancel at the head of a chain of
// 100,000 tasks cascades without recursion, on the thread executor and on HTEX.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  DataFlowKernel,
  DependencyError,
  HighThroughputExecutor,
  LocalProvider,
  TaskCancelled,
  TaskState,
  ThreadPoolExecutor,
  type AppFuture,
  type Config,
} from 'tsflow'
import * as apps from './fixtures/kernel-apps.js'

const DEPTH = 100_000

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    }),
  ])
}

function chainOn(kernel: DataFlowKernel, head: AppFuture<number>, depth: number): AppFuture<number>[] {
  const chain: AppFuture<number>[] = new Array(depth)
  let previous = head
  for (let i = 0; i < depth; i++) {
    previous = apps.inc.with({ dfk: kernel })(previous)
    chain[i] = previous
  }
  return chain
}

function checkCascade(t: Test, chain: AppFuture<number>[], head: AppFuture<number>, rootMessage: RegExp): void {
  let unsettled = 0
  let wrongState = 0
  let wrongError = 0
  for (const future of chain) {
    if (!future.done) unsettled++
    else if (future.state !== TaskState.dep_fail) wrongState++
    else if (!(future.exception() instanceof DependencyError)) wrongError++
  }
  t.equal(unsettled, 0, 'every future of the chain is settled')
  t.equal(wrongState, 0, 'every task of the chain ends in dep_fail')
  t.equal(wrongError, 0, 'every future rejects with DependencyError')
  const last = chain[chain.length - 1]!.exception() as DependencyError
  t.same(last.dependencyTaskIds, [chain[chain.length - 2]!.taskId], 'the last error names its direct dependency')
  t.ok(last.cause instanceof DependencyError, 'cause is the direct dependency\'s DependencyError')
  t.match(String((last.rootCause as Error).message), rootMessage, 'rootCause is the head\'s failure')
  t.equal(last.rootTaskId, head.taskId, 'and names the head task')
  t.match(last.message, rootMessage, 'the message names the root cause')
  t.match(last.message, new RegExp(`dependency #${chain[chain.length - 2]!.taskId} failed`), 'and the direct dependency')
  t.ok(last.message.length < 600, `the message stays short at depth ${chain.length} (${last.message.length} chars)`)
}

function deepChains(t: Test, makeConfig: (runDir: string) => Config): void {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-deep-'))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  t.before(async () => {
    kernel = await new DataFlowKernel(makeConfig(join(scratch, 'runinfo'))).start()
  })

  t.test(`a failing head fails a chain of ${DEPTH} tasks with DependencyError`, async (t) => {
    const head = apps.fail.with({ dfk: kernel! })('deep') as unknown as AppFuture<number>
    const chain = chainOn(kernel!, head, DEPTH)
    await withTimeout(kernel!.waitForCurrentTasks(), 60_000, 'the chain to settle')
    t.equal(head.state, TaskState.failed)
    checkCascade(t, chain, head, /failed at the head: deep/)
    t.equal(kernel!.outstanding, 0)
  })

  t.test(`cancelling the head of a chain of ${DEPTH} tasks fails the whole chain`, async (t) => {
    const blocker = apps.sleep.with({ dfk: kernel! })(100)
    const head = apps.inc.with({ dfk: kernel! })(blocker)
    const chain = chainOn(kernel!, head, DEPTH)
    t.equal(head.cancel(), true, 'the head is cancelled while it waits')
    t.equal(head.state, TaskState.cancelled)
    checkCascade(t, chain, head, new RegExp(`task #${head.taskId} .*cancelled|cancelled`))
    t.ok((chain[0]!.exception() as DependencyError).rootCause instanceof TaskCancelled, 'the root cause is TaskCancelled')
    await withTimeout(kernel!.waitForCurrentTasks(), 60_000, 'the blocker to finish')
    t.equal(await blocker, 100, 'the executor still runs tasks')
    t.equal(await apps.inc.with({ dfk: kernel! })(1), 2)
  })
}

t.test('thread executor', async (t) => {
  deepChains(t, (runDir) => ({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }))

  t.test(`a successful chain of ${DEPTH} tasks completes`, async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-deep-ok-'))
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 1 })] }).start()
    t.teardown(async () => {
      await kernel.cleanup({ deadlineMs: 5000 })
      rmSync(scratch, { recursive: true, force: true })
    })
    const blocker = apps.sleep.with({ dfk: kernel })(50)
    const chain = chainOn(kernel, blocker, DEPTH)
    t.equal(await withTimeout(chain[DEPTH - 1]!.result(), 170_000, 'the chain to finish'), 50 + DEPTH)
  })
})

t.test('a chain of memoized tasks settles at once without recursion', async (t) => {
  // Every task answered from the memo table finishes inside the call that settled its
  // dependency: the deepest synchronous cascade the kernel has on success.
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-deep-memo-'))
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }).start()
  t.teardown(async () => {
    await kernel.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  const depth = 20_000
  const values = await Promise.all(Array.from({ length: depth }, (_, i) => apps.cachedInc.with({ dfk: kernel })(i + 1)))
  t.equal(values[depth - 1], depth + 1, 'memo table filled')
  const head = apps.sleep.with({ dfk: kernel })(1)
  let previous: AppFuture<number> = head
  const chain: AppFuture<number>[] = []
  for (let i = 0; i < depth; i++) chain.push((previous = apps.cachedInc.with({ dfk: kernel })(previous)))
  t.equal(await withTimeout(previous.result(), 60_000, 'the memoized chain'), depth + 1)
  t.ok(chain.every((f) => f.state === TaskState.memo_done), 'every link was answered from the memo table')
})

t.test('HTEX', async (t) => {
  deepChains(t, (runDir) => ({
    runDir,
    executors: [
      new HighThroughputExecutor({
        maxWorkersPerNode: 2,
        heartbeatPeriodMs: 500,
        // Failing 100,000 tasks keeps the event loop busy for a second or more on a loaded
        // machine; client liveness is not what these tests are about.
        heartbeatThresholdMs: 30_000,
        provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
      }),
    ],
  }))
})
