// Task arguments (issue 6, section 1): cyclic structures run and arrive as cycles, a getter that
// throws fails only its task, and values the codec would turn into {} are refused by name. Run
// on the thread executor and on HTEX.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  DataFlowKernel,
  HighThroughputExecutor,
  LocalProvider,
  SerializationError,
  TaskState,
  ThreadPoolExecutor,
  type AppFuture,
  type Config,
} from 'tsflow'
import * as apps from './fixtures/kernel-apps.js'

async function failure(future: AppFuture<unknown>): Promise<Error> {
  return (await future.then(
    () => new Error('expected the task to fail'),
    (e: unknown) => e,
  )) as Error
}

function argumentSuite(t: Test, makeConfig: (runDir: string) => Config): void {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-args-'))
  let kernel: DataFlowKernel
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  t.before(async () => {
    kernel = await new DataFlowKernel(makeConfig(join(scratch, 'runinfo'))).start()
  })

  t.test('a cyclic argument runs and arrives with its cycle, futures inside substituted', async (t) => {
    const o: { name: string; self?: unknown; list: unknown[]; dep?: unknown } = { name: 'loop', list: [] }
    o.self = o
    o.list.push(o)
    t.same(await apps.cycleInfo.with({ dfk: kernel })(o as never), { name: 'loop', selfIsCycle: true, listHoldsParent: true })

    const withFuture: { name: string; self?: unknown; list: unknown[]; dep?: unknown } = { name: 'dep', list: [] }
    withFuture.self = withFuture
    withFuture.list.push(withFuture)
    withFuture.dep = apps.inc.with({ dfk: kernel })(1)
    const info = await apps.cycleInfo.with({ dfk: kernel })(withFuture as never)
    t.same(info, { name: 'dep', selfIsCycle: true, listHoldsParent: true, dep: 2 }, 'the future is replaced and the cycle kept')

    const array: unknown[] = [1]
    array.push(array)
    const back = (await apps.identity.with({ dfk: kernel })(array)) as unknown[]
    t.equal(back[1], back, 'a self-containing array comes back as one')
  })

  t.test('a getter that throws rejects that task only', async (t) => {
    const bad = {
      ok: 1,
      get broken(): number {
        throw new Error('getter exploded')
      },
    }
    let future: AppFuture<unknown> | undefined
    t.doesNotThrow(() => {
      future = apps.identity.with({ dfk: kernel })(bad)
    }, 'the call itself does not throw')
    const error = await failure(future!)
    t.ok(error instanceof SerializationError, `rejects with SerializationError (got ${String(error)})`)
    t.match(error.message, new RegExp(`argument 0 \\(at \\.broken\\) of task #${future!.taskId} \\(identity\\)`))
    t.match(error.message, /getter exploded/)
    t.match((error.cause as Error).message, 'getter exploded', 'cause is the getter\'s error')
    t.equal(future!.state, TaskState.failed)
    t.equal(kernel.taskCounts().unsched, 0, 'no task left unscheduled')
    await kernel.waitForCurrentTasks()
    t.equal(kernel.outstanding, 0)
  })

  t.test('generators, iterators and weak references are refused naming the argument', async (t) => {
    const refusedCases: [string, unknown, RegExp][] = [
      ['a generator', (function* () { yield 1 })(), /argument 0 of task #\d+ \(identity\) cannot be used: a generator object cannot be sent/],
      ['a Map iterator in an object', { it: new Map([[1, 2]]).keys() }, /argument 0 \(at \.it\) of task #\d+ \(identity\).*iterator \(Map Iterator\)/],
      ['a Set iterator in an array', [1, new Set([1]).values()], /argument 0 \(at \[1\]\).*iterator \(Set Iterator\)/],
      ['an async generator', (async function* () { yield 1 })(), /async generator/],
      ['a WeakRef', new WeakRef({}), /a WeakRef cannot be sent/],
      ['a function nested in an object', { nested: { fn: function helper() {} } }, /argument 0 \(at \.nested\.fn\).*a function 'helper' cannot be sent/],
      ['a Promise', Promise.resolve(1), /a Promise cannot be sent/],
    ]
    for (const [what, value, message] of refusedCases) {
      const future = apps.identity.with({ dfk: kernel })(value)
      const error = await failure(future)
      t.ok(error instanceof SerializationError, `${what}: SerializationError (got ${String(error)})`)
      t.match(error.message, message, `${what}: the message names the argument and what to do`)
    }
    const inputs = apps.identity.with({ dfk: kernel, inputs: ['ok', new Set([1]).entries()] })(1)
    t.match((await failure(inputs)).message, /inputs \(at \[1\]\) of task #\d+/, 'inputs are checked too')
  })

  t.test('the codec refuses what the argument scan cannot see (inside a Map, a result)', async (t) => {
    const inMap = apps.identity.with({ dfk: kernel })(new Map([['gen', (function* () {})()]]))
    const error = await failure(inMap)
    t.ok(error instanceof SerializationError, `SerializationError (got ${String(error)})`)
    t.match(error.message, new RegExp(`task #${inMap.taskId} \\(identity\\).*a generator object cannot be sent`))
    const result = await failure(apps.returnsGenerator.with({ dfk: kernel })())
    t.ok(result instanceof SerializationError, `a generator returned by a task is refused (got ${String(result)})`)
    t.match(result.message, /generator object cannot be sent/)
    t.equal(await apps.inc.with({ dfk: kernel })(1), 2, 'the executor still runs tasks')
  })
}

t.test('thread executor', async (t) => {
  argumentSuite(t, (runDir) => ({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }))
})

t.test('HTEX', async (t) => {
  argumentSuite(t, (runDir) => ({
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
