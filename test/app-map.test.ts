import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { awaitAll, awaitAllSettled, ConfigError, DataFlowKernel, ThreadPoolExecutor, type Progress } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-map-'))
let kernel: DataFlowKernel
t.teardown(async () => {
  await kernel?.cleanup({ deadlineMs: 5000 })
  rmSync(scratch, { recursive: true, force: true })
})
t.before(async () => {
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }).start()
})

t.test('map takes any iterable of argument lists and applies its options to every call', async (t) => {
  function* lists() {
    for (let i = 0; i < 5; i++) yield [i] as [number]
  }
  const futures = apps.double.map(lists(), { dfk: kernel, priority: 3 })
  t.same(await awaitAll(futures), [0, 2, 4, 6, 8])
  t.same(apps.double.map([], { dfk: kernel }), [], 'an empty list submits nothing')
})

t.test('map refuses what is not a list of argument lists, naming the item', async (t) => {
  t.throws(() => apps.double.map(7 as never, { dfk: kernel }), /double\.map\(\) needs an array \(or iterable\) of argument lists/)
  const total = () => Object.values(kernel.taskCounts()).reduce((a, b) => a + b, 0)
  const before = total()
  t.throws(() => apps.double.map([[1], 2] as never, { dfk: kernel }), /double\.map\(\): item 1 is not an argument list \(got number\)/)
  t.equal(total(), before + 1, 'the item before the bad one was submitted as a call')
  t.throws(() => apps.double.map([[1]], { dfk: kernel, walltime: -1 } as never), ConfigError, 'bad options fail before any call is submitted')
})

t.test('awaitAll fails fast with the first failure; failFast false collects every failure', async (t) => {
  const futures = apps.failWithCause.map([['a'], ['b']], { dfk: kernel })
  await t.rejects(awaitAll([apps.double.with({ dfk: kernel })(1), ...futures]), /a|b/)
  const all = apps.failWithCause.map([['a'], ['b']], { dfk: kernel })
  const error = (await awaitAll(all, { failFast: false }).catch((e: unknown) => e)) as AggregateError
  t.ok(error instanceof AggregateError, 'two failures make an AggregateError')
  t.equal(error.errors.length, 2)
  t.match(error.message, /2 of 2 futures failed/)
})

t.test('awaitAllSettled never rejects and keeps the order; plain values and promises count too', async (t) => {
  const settled = await awaitAllSettled([apps.double.with({ dfk: kernel })(2), apps.failWithCause.with({ dfk: kernel })('x'), Promise.resolve(5), 9])
  t.same(settled.map((s) => s.ok), [true, false, true, true])
  t.same(settled.filter((s) => s.ok).map((s) => (s as { value: unknown }).value), [4, 5, 9])
  const reports: Progress[] = []
  t.same(await awaitAll([], { onProgress: (p) => reports.push(p) }), [])
  t.equal(reports.length, 1, 'an empty wait reports once')
  t.equal(reports[0]!.total, 0)
})

t.test('a throwing progress callback ends the wait with its error', async (t) => {
  const futures = apps.double.map([[1], [2]], { dfk: kernel })
  await t.rejects(awaitAll(futures, { progressEveryMs: 0, onProgress: () => { throw new Error('progress broke') } }), /progress broke/)
  await awaitAll(futures)
})

t.test('awaitAll refuses a non-iterable', async (t) => {
  await t.rejects(awaitAll(3 as never), /awaitAll\(\) needs an array/)
})
