// The executor option proxy: { store, threshold } on the thread executor and HTEX: large arguments
// and results go through the store (seen as files appearing in a FileConnector's directory), small
// ones do not, tasks and futures see plain values, and nothing is left in the store.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, watch } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataFlowKernel, ErrorCode, HighThroughputExecutor, proxy, Store, ThreadPoolExecutor } from 'tsflow'
import { FileConnector, isProxy } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-exec-apps.js'
import { EXECUTOR_KINDS, makeExecutor, startKernel } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-proxy-option-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

/** Objects put into a FileConnector directory, as the file system reports them (each put creates `<id>.ready`). */
function watchPuts(t: Test, directory: string): { puts: Set<string>; left: () => string[] } {
  mkdirSync(directory, { recursive: true })
  const puts = new Set<string>()
  const watcher = watch(directory, (_event, name) => {
    if (name?.endsWith('.ready')) puts.add(name)
  })
  t.teardown(() => watcher.close())
  return { puts, left: () => readdirSync(directory) }
}

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: large arguments and results travel through the store, small ones do not`, async (t) => {
    const directory = join(scratch, `${kind}-objects`)
    const { puts, left } = watchPuts(t, directory)
    // A store config: the executor builds the store when it starts and closes it at shutdown.
    const kernel = await startKernel(t, kind, { proxy: { store: { name: `option-${kind}-${process.pid}`, connector: { type: 'file', directory } }, threshold: '100kB' } })
    const dfk = { dfk: kernel }

    // Small: no put.
    t.same(await apps.look.with(dfk)([1, 2, 3], 1), { isProxy: false, isArray: true, typeOf: 'object', kind: '[object Array]', length: 3, plain: 1 })
    t.equal(await apps.sum.with(dfk)(new Float64Array(1000).fill(2)), 2000)
    t.same(await apps.ones.with(dfk)(100), new Float64Array(100).fill(1), 'a small result comes back as it is')

    // A large argument: put once, and the task sees the value itself, not a proxy.
    const big = new Float64Array(200_000).fill(1)
    t.same(await apps.look.with(dfk)(big, 7), { isProxy: false, isArray: false, typeOf: 'object', kind: '[object Float64Array]', length: 200_000, plain: 7 })
    await waitFor(() => puts.size >= 1, 'the put of the large argument')
    t.equal(puts.size, 1, 'only the large argument was put (the small tasks before it put nothing)')
    t.same(left(), [], 'the argument was evicted before the future settled')

    // A large result: stored by the worker, fetched and evicted by the executor, a plain value for the future.
    const result = await apps.ones.with(dfk)(50_000)
    t.ok(result instanceof Float64Array && !isProxy(result), 'the future resolves to the value itself')
    t.equal(result.length, 50_000)
    await waitFor(() => puts.size >= 2, 'the put of the large result')
    t.equal(puts.size, 2)
    t.same(left(), [], 'the result was evicted once the caller fetched it')

    // A large string both ways: still a string for the task and for the future.
    const text = await apps.repeat.with(dfk)('x'.repeat(150_000), 2)
    t.equal(typeof text, 'string')
    t.equal(text.length, 300_000)
    await waitFor(() => puts.size >= 4, 'the puts of the string argument and result')
    t.equal(puts.size, 4)

    // The large result of one task as the large argument of the next (a future as argument).
    t.equal(await apps.sum.with(dfk)(apps.ones.with(dfk)(60_000)), 60_000)

    // A failing task: its proxied argument is evicted all the same.
    const failure = await apps.fails.with(dfk)(big).then(
      () => undefined,
      (error: unknown) => error as Error,
    )
    t.match(failure?.message, /failed on purpose after seeing 200000 numbers/)
    t.same(left(), [], 'a failed task releases its argument before its future settles')

    // A fan-out: one object passed to four tasks at once is stored once, evicted after the last.
    const before = puts.size
    const shared = new Float64Array(150_000).fill(1)
    t.same(await Promise.all([1, 2, 3, 4].map(() => apps.sum.with(dfk)(shared))), [150_000, 150_000, 150_000, 150_000])
    t.same(left(), [], 'evicted once the last of the tasks was reported')
    // One more put, seen after any the fan-out made (the file system reports them in order).
    t.equal(await apps.sum.with(dfk)(new Float64Array(150_000).fill(2)), 300_000)
    await waitFor(() => puts.size >= before + 2, 'the puts of the fan-out and of the task after it')
    t.equal(puts.size, before + 2, 'the fan-out stored its argument once')
    t.same(left(), [], 'nothing is left in the store after the futures settled')
  })
}

t.test('a task cancelled before it ran has its proxied argument evicted by the executor', async (t) => {
  const directory = join(scratch, 'cancel-objects')
  const { puts, left } = watchPuts(t, directory)
  const store = new Store(`cancel-${process.pid}`, new FileConnector({ directory }))
  t.teardown(() => store.close())
  const kernel = await startKernel(t, 'threads', { workers: 1, proxy: { store, threshold: 1000 } })
  const dfk = { dfk: kernel }
  const busy = join(scratch, 'release')
  const blocker = apps.waitForFile.with(dfk)(busy)
  const blocker2 = apps.waitForFile.with(dfk)(busy)
  const queued = apps.look.with(dfk)(new Float64Array(10_000), 1)
  await waitFor(() => puts.size >= 1, 'the put of the queued task argument')
  await waitFor(() => left().length > 0, 'the stored argument')
  t.ok(queued.cancel(), 'the queued task can be cancelled')
  await queued.then(
    () => t.fail('a cancelled task does not succeed'),
    (error: unknown) => t.equal((error as { code?: string }).code, ErrorCode.CANCELLED),
  )
  await waitFor(() => left().length === 0, 'the argument of the cancelled task to be evicted')
  t.same(left(), [], 'the executor evicted the argument no worker resolved')
  mkdirSync(busy)
  await blocker
  await blocker2
})

t.test('bad option values are refused naming the option path', async (t) => {
  const directory = join(scratch, 'bad')
  const cases: [string, () => unknown, RegExp][] = [
    ['threshold', () => ({ store: { name: 'bad', connector: { type: 'file', directory } }, threshold: '1 parsec' }), /executors\[0\]\.proxy\.threshold must be a size in bytes/],
    ['negative', () => ({ store: { name: 'bad', connector: { type: 'file', directory } }, threshold: -1 }), /executors\[0\]\.proxy\.threshold/],
    ['no store', () => ({ threshold: '1MB' }), /executors\[0\]\.proxy\.store is required/],
    ['unknown key', () => ({ store: { name: 'bad', connector: { type: 'file', directory } }, treshold: 5 }), /executors\[0\]\.proxy\.treshold is not a known option; did you mean 'threshold'/],
    ['local', () => ({ store: { name: 'bad', connector: { type: 'local' } } }), /executors\[0\]\.proxy\.store\.connector is a 'local' connector/],
    ['connector type', () => ({ store: { name: 'bad', connector: { type: 'nfs' } } }), /executors\[0\]\.proxy\.store\.connector\.type must be a registered connector type/],
    ['store', () => ({ store: 'big' }), /executors\[0\]\.proxy\.store must be a Store or a store config/],
  ]
  for (const [what, option, message] of cases) {
    for (const make of [
      () => new ThreadPoolExecutor({ proxy: option() as never }),
      () => new HighThroughputExecutor({ proxy: option() as never }),
    ]) {
      let error: (Error & { code?: string }) | undefined
      try {
        new DataFlowKernel({ runDir: join(scratch, 'bad-run'), executors: [make()] })
      } catch (e) {
        error = e as Error & { code?: string }
      }
      t.equal(error?.code, ErrorCode.CONFIG, `${what}: a ConfigError`)
      t.match(error?.message, message, what)
    }
  }
  // A plain-object executor config goes through the same check.
  t.throws(
    () => new DataFlowKernel({ executors: [{ type: 'threads', proxy: { store: { name: 'bad', connector: { type: 'file', directory } }, threshold: '12 apples' } }] }),
    /executors\[0\]\.proxy\.threshold must be a size in bytes/,
  )
  const described = new ThreadPoolExecutor({ proxy: { store: { name: 'bad', connector: { type: 'file', directory } }, threshold: '2MB' } })
  described.validate('executors[0]')
  t.same(described.describe().proxy, { threshold: 2_000_000 }, 'describe() reports the threshold in bytes')
  const local = new Store(`local-${process.pid}`, new proxy.LocalConnector())
  t.teardown(() => local.close())
  t.throws(() => new DataFlowKernel({ executors: [new ThreadPoolExecutor({ proxy: { store: local } })] }), /executors\[0\]\.proxy\.store\.connector is a 'local' connector/)
})

// Shared memory: objects are segments in /dev/shm (watched there), zero-copy for readers on the node.
for (const kind of ['threads', 'htex-processes'] as const) {
  t.test(`${kind}: the option with the shm connector leaves no segment behind`, async (t) => {
    const prefix = `opt${process.pid}${kind.replace('-', '')}`
    const connector = new proxy.ShmConnector({ prefix })
    const store = new Store(`shm-option-${kind}-${process.pid}`, connector)
    t.teardown(() => store.close())
    const seen = new Set<string>()
    const watcher = watch('/dev/shm', (_event, name) => {
      if (name?.startsWith(`tsflow-${prefix}-`) && !name.includes('.tmp')) seen.add(name)
    })
    t.teardown(() => watcher.close())
    const kernel = await startKernel(t, kind, { proxy: { store, threshold: '100kB' } })
    const dfk = { dfk: kernel }
    t.equal(await apps.sum.with(dfk)(apps.ones.with(dfk)(50_000)), 50_000, 'a large result, then the same as a large argument')
    await waitFor(() => seen.size >= 2, 'the segments of the result and of the argument')
    t.same(connector.segments(), [], 'no segment is left')
  })
}

t.test('a retried task stores its argument again and leaves nothing behind', async (t) => {
  const directory = join(scratch, 'retry-objects')
  const { puts, left } = watchPuts(t, directory)
  const run = mkdtempSync(join(scratch, 'retry-run-'))
  const store = { name: `retry-${process.pid}`, connector: { type: 'file', directory } }
  let kernel: DataFlowKernel | undefined
  t.teardown(() => kernel?.cleanup({ deadlineMs: 5000 }))
  kernel = await new DataFlowKernel({ runDir: run, retries: 1, executors: [makeExecutor('htex-processes', { proxy: { store, threshold: 1000 } })] }).start()
  t.equal(await apps.flaky.with({ dfk: kernel })(new Float64Array(10_000)), 10_000, 'the retry succeeded')
  await waitFor(() => puts.size >= 2, 'a put for each try')
  t.same(left(), [], 'nothing is left after the retried task')
})

// The peer connector: the caller serves the arguments it put; HTEX worker processes serve the
// results they put; a worker thread cannot own objects, so its large result comes back inline.
for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: the option with the zmq connector`, async (t) => {
    const store = new Store(`zmq-option-${kind}-${process.pid}`, new proxy.ZmqConnector({ address: '127.0.0.1' }))
    t.teardown(() => store.close())
    const kernel = await startKernel(t, kind, { proxy: { store, threshold: '100kB' } })
    const dfk = { dfk: kernel }
    const result = await apps.ones.with(dfk)(50_000)
    t.ok(result instanceof Float64Array && result.length === 50_000, 'a large result arrives as the value')
    t.equal(await apps.sum.with(dfk)(result), 50_000, 'and goes to the next task as a large argument')
  })
}
