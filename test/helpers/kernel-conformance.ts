// The kernel's behaviour as users rely on it, run against every executor: each executor's
// test file calls kernelConformance() with a config that uses it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import {
  awaitAll,
  BashExitFailure,
  DataFlowKernel,
  DependencyError,
  File,
  JoinError,
  NoSuchExecutor,
  ResultTimeout,
  SerializationError,
  TaskCancelled,
  TaskState,
  WalltimeExceeded,
  type Config,
} from 'tsflow'
import * as apps from '../fixtures/apps.js'
import { isAlive, waitFor } from './wait.js'

export function kernelConformance(t: Test, makeConfig: (runDir: string) => Config): void {
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-conformance-'))
  let kernel: DataFlowKernel
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  t.before(async () => {
    kernel = await new DataFlowKernel(makeConfig(join(scratch, 'runinfo'))).start()
  })
  const on = { dfk: () => kernel }
  const w = <A extends unknown[], R>(a: apps.AppOf<A, R>) => a.with({ dfk: on.dfk() })

  t.test('an app call returns a future that resolves to the result', async (t) => {
    const future = w(apps.double)(21)
    t.type(future.taskId, 'number')
    t.equal(await future, 42)
    t.equal(future.state, TaskState.exec_done)
    t.equal(await future.result({ timeoutMs: 1000 }), 42)
  })

  t.test('app.map submits one call per argument list and awaitAll collects them in order with progress', async (t) => {
    const futures = apps.double.map(Array.from({ length: 200 }, (_, i) => [i] as [number]), { dfk: kernel })
    t.equal(futures.length, 200)
    const reports: number[] = []
    const values = await awaitAll(futures, { onProgress: (p) => reports.push(p.done), progressEveryMs: 0 })
    t.same(values, Array.from({ length: 200 }, (_, i) => 2 * i))
    t.equal(reports.at(-1), 200, 'the last progress report counts every future')
    const mixed = apps.add.map([[1, 2], [w(apps.double)(3), 4]] as never, { dfk: kernel })
    t.same(await awaitAll(mixed), [3, 10], 'futures among mapped arguments are awaited first')
  })

  t.test('futures nested in arrays, objects and inputs are awaited first', async (t) => {
    t.equal(await w(apps.add)(w(apps.double)(1), w(apps.double)(2)), 6)
    t.equal(await w(apps.sumNested)({ a: w(apps.double)(1), list: [w(apps.double)(2), 3] } as never), 9)
    const info = await apps.contextInfo.with({ dfk: kernel, inputs: [w(apps.double)(5), 'x'] })()
    t.same(info.inputs, [10, 'x'])
  })

  t.test('a failed dependency rejects the child with DependencyError whose cause chain reaches the root failure', async (t) => {
    const root = w(apps.failWithCause)('deep')
    const middle = w(apps.double)(root as never)
    const leaf = w(apps.add)(middle, 1)
    const error = (await leaf.then(() => undefined, (e: unknown) => e)) as DependencyError
    t.ok(error instanceof DependencyError, 'leaf fails with DependencyError')
    t.equal(leaf.state, TaskState.dep_fail)
    t.ok(error.cause instanceof DependencyError, 'its cause is the middle task failing the same way')
    const rootCause = error.rootCause as Error & { code?: string }
    t.equal(rootCause.message, 'outer deep')
    t.equal(rootCause.code, 'E_APP')
    t.ok((rootCause.cause as Error) instanceof RangeError, 'the remote cause keeps its class')
    t.equal((rootCause.cause as Error).message, 'inner deep')
    t.match(error.message, /outer deep/)
  })

  t.test('remote errors arrive with their name, own properties and remote stack', async (t) => {
    const error = (await w(apps.failCustom)().then(() => undefined, (e: unknown) => e)) as Error & { detail?: number }
    t.equal(error.name, 'CustomError')
    t.equal(error.message, 'custom failure')
    t.equal(error.detail, 42)
    t.match(error.stack ?? '', /fixtures\/apps/)
  })

  t.test('failed tries are retried up to the app\'s retries', async (t) => {
    t.equal(await w(apps.flaky)(2), 2, 'succeeds on the third try')
    const gaveUp = w(apps.flaky)(10)
    await t.rejects(gaveUp, /flaky: try 3 fails/, 'after 1 + 3 tries the last error is reported')
    t.equal(gaveUp.state, TaskState.failed)
  })

  t.test('walltime stops a task that runs too long', async (t) => {
    const started = Date.now()
    const error = await apps.spin.with({ dfk: kernel, walltime: 0.3 })(20_000).then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof WalltimeExceeded, `rejects with WalltimeExceeded (got ${String(error)})`)
    t.ok(Date.now() - started < 10_000, 'well before the task would have finished')
    t.equal(await apps.sleep.with({ dfk: kernel, walltime: 5 })(10), 10, 'a task within its walltime is unaffected')
    t.equal(await w(apps.double)(4), 8, 'the executor still runs tasks afterwards')
  })

  t.test('a bash app with a walltime has its process group killed', async (t) => {
    const pidFile = join(scratch, 'sleep.pid')
    const future = apps.sleepBash.with({ dfk: kernel, walltime: 0.5 })(pidFile, 60)
    await t.rejects(future, WalltimeExceeded)
    const pid = Number(readFileSync(pidFile, 'utf8'))
    await waitFor(() => !isAlive(pid), `bash process ${pid} to be killed`)
  })

  t.test('cancel() stops a task that has not started', async (t) => {
    const blocker = w(apps.sleep)(300)
    const waiting = w(apps.double)(blocker)
    t.equal(waiting.cancel(), true)
    await t.rejects(waiting, TaskCancelled)
    t.equal(waiting.state, TaskState.cancelled)
    t.equal(await blocker, 300)
    t.equal(blocker.cancel(), false, 'a finished task cannot be cancelled')
  })

  t.test('result({ timeoutMs }) gives up waiting without stopping the task', async (t) => {
    const slow = w(apps.sleep)(400)
    await t.rejects(slow.result({ timeoutMs: 20 }), ResultTimeout)
    t.equal(await slow, 400)
  })

  t.test('bash apps: stdout redirect, exit codes, pseudo-terminal', async (t) => {
    const out = join(scratch, 'echo.out')
    t.equal(await apps.echo.with({ dfk: kernel, stdout: out })('hello world'), 0)
    t.equal(readFileSync(out, 'utf8'), 'hello world\n')
    const error = (await w(apps.failingBash)(3).then(() => undefined, (e: unknown) => e)) as BashExitFailure
    t.ok(error instanceof BashExitFailure)
    t.equal(error.exitCode, 3)
    t.match(error.message, /exited with code 3/)
    t.match(error.message, /something broke/, 'the failure shows the end of stderr')
    const errFile = join(scratch, 'failing.err')
    const redirected = (await apps.failingBash.with({ dfk: kernel, stderr: errFile })(4).then(() => undefined, (e: unknown) => e)) as BashExitFailure
    t.equal(readFileSync(errFile, 'utf8'), 'something broke\n', 'stderr went to the file')
    t.match(redirected.message, /exited with code 4[\s\S]*something broke/, 'and the failure still quotes it')
    const ttyOut = join(scratch, 'tty.out')
    t.equal(await apps.terminalCheck.with({ dfk: kernel, stdout: ttyOut })(), 0)
    t.match(readFileSync(ttyOut, 'utf8'), /on-a-terminal/)
  })

  t.test('join apps resolve to the results of the futures they return', async (t) => {
    t.same(await w(apps.fanOut)(4), [0, 2, 4, 6])
    const error = await w(apps.fanOutFailing)().then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof JoinError)
    t.match((error as Error).message, /outer in join/)
  })

  t.test('memoization returns earlier results for identical calls', async (t) => {
    const first = await w(apps.stamped)(1)
    const again = w(apps.stamped)(1)
    t.same(await again, first)
    t.equal(again.state, TaskState.memo_done)
    t.not((await w(apps.stamped)(2)).stamp, first.stamp)
    const a = await w(apps.cachedIgnoring)('k', 1)
    t.equal(await w(apps.cachedIgnoring)('k', 2), a, 'ignored argument does not change the key')
    t.not(await w(apps.cachedIgnoring)('j', 1), a)
  })

  t.test('declared outputs become DataFutures that later tasks can wait on', async (t) => {
    const file = new File(join(scratch, 'out.txt'))
    const writer = apps.writeOutput.with({ dfk: kernel, outputs: [file] })('payload')
    t.equal(writer.outputs.length, 1)
    const info = await apps.contextInfo.with({ dfk: kernel, inputs: [writer.outputs[0]] })()
    t.equal(readFileSync(file.path, 'utf8'), 'payload', 'the reader ran after the writer')
    t.same(info.inputs.map(String), [file.path])
    t.equal(String(await writer.outputs[0]), file.path)
  })

  t.test('values that cannot travel fail only their own task, with a clear error', async (t) => {
    const bad = w(apps.identity)((() => 1) as never)
    const good = w(apps.double)(3)
    const error = await bad.then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof SerializationError, `arguments: ${String(error)}`)
    t.match((error as Error).message, /task #\d+ \(identity\)/)
    t.equal(await good, 6)
    const resultError = await w(apps.returnsFunction)().then(() => undefined, (e: unknown) => e)
    t.ok(resultError instanceof SerializationError, `results: ${String(resultError)}`)
  })

  t.test('an unknown executor label is reported, naming the labels that exist', async (t) => {
    const error = await apps.double.with({ dfk: kernel, executors: ['nowhere'] })(1).then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof NoSuchExecutor)
    t.match((error as Error).message, /nowhere/)
  })

  t.test('rich values round-trip through a task', async (t) => {
    const value = {
      map: new Map([[1, 'one']]),
      set: new Set(['a']),
      date: new Date(1_700_000_000_000),
      bytes: new Uint8Array([1, 2, 3]),
      floats: new Float64Array([1.5]),
      big: 12345678901234567890n,
      nothing: undefined,
      file: new File('/tmp/x.txt'),
    }
    const back = (await w(apps.identity)(value)) as typeof value
    t.same(back.map, value.map)
    t.same(back.set, value.set)
    t.equal(back.date.getTime(), value.date.getTime())
    t.same([...back.bytes], [1, 2, 3])
    t.same([...back.floats], [1.5])
    t.equal(back.big, value.big)
    t.ok('nothing' in back)
    t.ok(back.file instanceof File, 'File arrives as a File')
    t.equal(back.file.path, '/tmp/x.txt')
  })

  t.test('thousands of tasks all complete with the right results', async (t) => {
    const futures = Array.from({ length: 5000 }, (_, i) => w(apps.double)(i))
    const results = await Promise.all(futures)
    t.ok(results.every((value, i) => value === i * 2))
  })
}
