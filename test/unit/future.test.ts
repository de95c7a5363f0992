import t from 'tap'
import { inspect } from 'node:util'
import { AppFuture, DataFuture, Future, type FutureTask } from '../../dist/dataflow/future.js'
import { File } from '../../dist/data/file.js'
import { ResultTimeout, TsflowError } from 'tsflow'
import type { TaskStateValue } from 'tsflow'

interface FakeTask extends FutureTask {
  state: TaskStateValue
  cancelCalls: number
}
let nextId = 1
function makeTask(appName = 'double'): FakeTask {
  const task: FakeTask = {
    id: nextId++,
    appName,
    state: 'pending',
    cancelCalls: 0,
    cancel() {
      task.cancelCalls++
      return true
    },
  }
  return task
}
function makeFuture<T = unknown>(appName?: string): { future: AppFuture<T>; task: FakeTask } {
  const task = makeTask(appName)
  return { future: new AppFuture<T>(task), task }
}
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

t.test('a new future is pending', async (t) => {
  const { future } = makeFuture()
  t.equal(future.done, false)
  t.equal(future.succeeded, false)
  t.equal(future.exception(), undefined)
  t.ok(future instanceof Future)
})

t.test('settles once: success', async (t) => {
  const { future } = makeFuture<number>()
  future.settle(true, 42)
  t.equal(future.done, true)
  t.equal(future.succeeded, true)
  t.equal(future.exception(), undefined)
  t.equal(future.settledResult(), 42)
  future.settle(false, new Error('too late'))
  future.settle(true, 43)
  t.equal(future.succeeded, true, 'a second settle is ignored')
  t.equal(future.settledResult(), 42)
  t.equal(await future, 42)
})

t.test('settles once: failure', async (t) => {
  const { future } = makeFuture<number>()
  const error = new TypeError('bad')
  future.settle(false, error)
  t.equal(future.done, true)
  t.equal(future.succeeded, false)
  t.equal(future.exception(), error)
  t.throws(() => future.settledResult(), error, 'settledResult throws the failure')
  future.settle(true, 1)
  t.equal(future.exception(), error, 'a later success is ignored')
  await t.rejects(future.result(), error)
})

t.test('a falsy or undefined failure value still counts as a failure', async (t) => {
  const { future } = makeFuture()
  future.settle(false, undefined)
  t.equal(future.done, true)
  t.equal(future.succeeded, false)
  let rejected = false
  await future.then(
    () => {},
    () => {
      rejected = true
    },
  )
  t.ok(rejected, 'awaiting it rejects')
})

t.test('onSettled listeners run in registration order, synchronously on settle', async (t) => {
  for (const count of [1, 2, 3, 10]) {
    const { future } = makeFuture()
    const calls: number[] = []
    for (let i = 0; i < count; i++) future.onSettled(() => calls.push(i))
    t.same(calls, [], `${count}: nothing runs before settling`)
    future.settle(true, 'v')
    t.same(
      calls,
      Array.from({ length: count }, (_, i) => i),
      `${count} listener(s) ran once, in order, before settle returned`,
    )
    future.settle(true, 'again')
    t.equal(calls.length, count, `${count}: listeners do not run twice`)
  }

  const { future } = makeFuture()
  future.settle(false, new Error('x'))
  let ran = false
  future.onSettled(() => {
    ran = true
  })
  t.ok(ran, 'a listener added after settling runs at once')

  const { future: reentrant } = makeFuture()
  const order: string[] = []
  reentrant.onSettled(() => {
    order.push('first')
    reentrant.onSettled(() => order.push('added while settling'))
  })
  reentrant.onSettled(() => order.push('second'))
  reentrant.settle(true, 1)
  // Listeners go through one work queue (so a cascade never recurses): one added while
  // settling runs after those already queued, still before settle returns.
  t.same(order, ['first', 'second', 'added while settling'], 'a listener added during settle runs before settle returns')
})

t.test('a cascade through 200,000 futures does not grow the stack, and a throwing listener strands none', async (t) => {
  const futures = Array.from({ length: 200_000 }, () => makeFuture().future)
  for (let i = 1; i < futures.length; i++) {
    const previous = futures[i - 1]!
    const next = futures[i]!
    previous.onSettled(() => next.settle(previous.succeeded, previous.succeeded ? 1 : previous.exception()))
  }
  futures[0]!.settle(false, new Error('head'))
  t.ok(futures.every((f) => f.done), 'every future settled')
  t.equal((futures[futures.length - 1]!.exception() as Error).message, 'head')

  const { future: a } = makeFuture()
  const { future: b } = makeFuture()
  a.onSettled(() => {
    throw new Error('listener bug')
  })
  a.onSettled(() => b.settle(true, 2))
  t.throws(() => a.settle(true, 1), /listener bug/, 'the first listener error reaches the settler')
  t.ok(b.done, 'after every other listener has run')
})

t.test('then / catch / finally and await', async (t) => {
  const { future } = makeFuture<number>()
  const doubled = future.then((value) => value * 2)
  t.ok(doubled instanceof Promise, 'then returns a Promise')
  setTimeout(() => future.settle(true, 21), 5)
  t.equal(await doubled, 42)
  t.equal(await future, 21, 'await works')
  t.equal(await Promise.resolve(future), 21, 'Promise.resolve adopts a future')
  const [x, y] = await Promise.all([future, Promise.resolve('y')])
  t.equal(x, 21, 'Promise.all accepts futures')
  t.equal(y, 'y')

  let finallyRan = false
  t.equal(
    await future.finally(() => {
      finallyRan = true
    }),
    21,
  )
  t.ok(finallyRan)

  const { future: failing } = makeFuture<number>()
  const error = new RangeError('nope')
  failing.settle(false, error)
  t.equal(await failing.catch((e: unknown) => e), error, 'catch gets the failure')
  let failedFinally = false
  await t.rejects(
    failing.finally(() => {
      failedFinally = true
    }),
    error,
  )
  t.ok(failedFinally, 'finally runs on failure and passes the failure on')
  await t.rejects(async () => {
    await failing
  }, error)
  t.equal(Object.prototype.toString.call(failing), '[object AppFuture]', 'toStringTag is the class name')
})

t.test('result() without a timeout', async (t) => {
  const { future } = makeFuture<string>()
  setTimeout(() => future.settle(true, 'done'), 5)
  t.equal(await future.result(), 'done')
  t.equal(await future.result({ timeoutMs: 1 }), 'done', 'a settled future answers at once, whatever the timeout')
})

t.test('result({ timeoutMs }) rejects with ResultTimeout and the future can still resolve', async (t) => {
  const { future, task } = makeFuture<number>('slowApp')
  task.state = 'running'
  const started = Date.now()
  let timeout: unknown
  try {
    await future.result({ timeoutMs: 30 })
  } catch (error) {
    timeout = error
  }
  t.ok(Date.now() - started >= 25, 'waited about the timeout')
  t.ok(timeout instanceof ResultTimeout, 'rejects with ResultTimeout')
  t.ok(timeout instanceof TsflowError)
  t.equal((timeout as ResultTimeout).code, 'E_RESULT_TIMEOUT')
  t.equal(
    (timeout as Error).message,
    `task #${future.taskId} had no result after 30 ms (state: running); the task itself goes on`,
    'names the task, the timeout and the state',
  )
  t.equal(future.done, false, 'the future is still pending')

  future.settle(true, 99)
  t.equal(await future, 99, 'the future resolves later')
  t.equal(await future.result({ timeoutMs: 30 }), 99)
})

t.test('result({ timeoutMs }) resolves or rejects with the task outcome when it comes in time', async (t) => {
  const { future } = makeFuture<number>()
  setTimeout(() => future.settle(true, 7), 5)
  t.equal(await future.result({ timeoutMs: 5_000 }), 7)

  const { future: failing } = makeFuture<number>()
  const error = new Error('task failed')
  setTimeout(() => failing.settle(false, error), 5)
  await t.rejects(failing.result({ timeoutMs: 5_000 }), error, 'the task failure, not a timeout')
})

t.test('no unhandled rejection when a failed future is never awaited', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled)
  })

  // Failed, never looked at.
  makeFuture().future.settle(false, new Error('nobody awaits this'))
  // Failed with listeners only (how the kernel watches futures).
  const { future: watched } = makeFuture()
  watched.onSettled(() => {})
  watched.settle(false, new Error('watched by a listener'))
  // Its DataFutures fail too, and nobody awaits those either.
  const { future: parent } = makeFuture()
  const data = new DataFuture(parent, new File('/out.txt'))
  parent.settle(false, new Error('parent failed'))
  t.equal(data.done, true)
  // A result() that timed out (and was handled) and whose task then failed.
  const { future: late } = makeFuture()
  await late.result({ timeoutMs: 1 }).catch(() => {})
  late.settle(false, new Error('failed after the timeout'))
  // result() with a timeout, failing before the timeout, handled by the caller.
  const { future: early } = makeFuture()
  const pending = early.result({ timeoutMs: 10_000 }).catch(() => 'handled')
  early.settle(false, new Error('failed early'))
  t.equal(await pending, 'handled')

  await tick()
  await sleep(50)
  await tick()
  t.same(unhandled, [], 'no unhandledRejection was raised')
})

t.test('AppFuture exposes its task', async (t) => {
  const { future, task } = makeFuture<number>('train')
  t.equal(future.taskId, task.id)
  t.equal(future.appName, 'train')
  t.equal(future.state, 'pending')
  task.state = 'running'
  t.equal(future.state, 'running', 'state is live')
  t.equal(future.cancel(), true, 'cancel delegates to the task')
  t.equal(task.cancelCalls, 1)
  t.same(future.outputs, [])
  t.equal(inspect(future), `AppFuture<task #${task.id} train: running>`)
})

t.test('DataFuture', async (t) => {
  const file = new File('/results/out.txt')
  const { future: parent, task } = makeFuture('produce')
  const data = new DataFuture(parent, file)
  t.equal(data.parent, parent)
  t.equal(data.file, file)
  t.equal(data.taskId, parent.taskId)
  t.equal(data.state, 'pending')
  t.equal(data.filepath, '/results/out.txt')
  t.equal(data.done, false)
  task.state = 'exec_done'
  parent.settle(true, 'ignored value')
  t.equal(data.done, true)
  t.equal(await data, file, 'resolves to the File when the task succeeds')
  t.equal(data.state, 'exec_done')
  t.equal(inspect(data), `DataFuture<file:///results/out.txt from task #${task.id}: exec_done>`)

  const { future: failingParent } = makeFuture()
  const failingData = new DataFuture(failingParent, file)
  const error = new Error('producer failed')
  failingParent.settle(false, error)
  await t.rejects(failingData.result(), error, "fails with the parent's error")
  t.equal(failingData.exception(), error)

  const { future: early } = makeFuture()
  early.settle(true, 1)
  const late = new DataFuture(early, file)
  t.equal(late.done, true, 'a DataFuture of an already-settled future settles at once')
  t.equal(late.settledResult(), file)
})
