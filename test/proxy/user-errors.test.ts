// What a new user gets wrong with the data layer, and what they are told: each mistake gives an
// error naming the option path and what to do (or a warning), never a hang or a bare "not found".
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { DataFlowKernel, ErrorCode, HighThroughputExecutor, ThreadPoolExecutor, submitScoped } from 'tsflow'
import { FileConnector, LocalConnector, Store, ZmqConnector, borrow, borrowCount, dispose } from 'tsflow/proxy'
import * as apps from '../fixtures/proxy-apps.js'
import { startKernel } from '../helpers/executors.js'
import { redisMissing, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-user-errors-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test("a 'local' store's proxy passed to a task says why the worker cannot read it", async (t) => {
  const kernel = await startKernel(t, 'threads')
  const store = new Store(`local-user-${process.pid}`, new LocalConnector())
  t.teardown(() => store.close())
  const data = await store.proxy(new Float64Array([1, 2, 3]))
  const error = await apps.inspect.with({ dfk: kernel })(data, 0).then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string; cause?: { code?: string } },
  )
  t.equal(error?.code, ErrorCode.PROXY_RESOLVE)
  t.equal(error?.cause?.code, ErrorCode.OBJECT_NOT_FOUND)
  t.match(error?.message, /a local connector's objects live in the memory of the thread that put them.*use a connector the workers reach \('file'/)
  // Where objects were put, a miss is an ordinary miss, without the hint.
  const local = store.connector
  await t.rejects(local.get({ id: 'never-stored' }), { code: ErrorCode.OBJECT_NOT_FOUND, message: /has no object 'never-stored'; it was never stored/ })
})

t.test('a connector option error names where the option is', async (t) => {
  t.throws(() => new Store('s', { type: 'file' }), { code: ErrorCode.CONFIG, message: /^store\.connector\.directory is required/ })
  t.throws(() => new Store('s', { type: 'files', directory: scratch }), { code: ErrorCode.CONFIG, message: /^store\.connector\.type must be one of .*did you mean 'file'\?/ })
  t.throws(() => new Store('s', { type: 'redis', hostnme: 'db01' }), { message: /^store\.connector\.hostnme is not a known option; did you mean 'host'\?/ })
  t.throws(() => new FileConnector({} as never), { message: /^connector\.directory is required/ }, 'a connector made by hand keeps its own path')
})

t.test("misspelt call options and ProxyStore's option names are refused, not ignored", async (t) => {
  const store = new Store(`options-user-${process.pid}`, new LocalConnector())
  t.teardown(() => store.close())
  // From JavaScript a typo in { evict: true } would leave the object in the store for good.
  await t.rejects(store.proxy([1], { evicted: true } as never), { code: ErrorCode.CONFIG, message: /^store\.proxy\(\) options\.evicted is not a known option; did you mean 'evict'\?/ })
  await t.rejects(store.proxy([1], { evict: 'yes' } as never), { message: /^store\.proxy\(\) options\.evict must be true or false/ })
  t.throws(() => store.future({ timeout: 5 } as never), { message: /^store\.future\(\) options\.timeout is not a known option; did you mean 'timeoutMs'\?/ })
  t.equal((store.connector as LocalConnector).size, 0, 'nothing was stored by the refused calls')
  t.throws(() => new FileConnector({ store_dir: scratch } as never), { message: /^connector\.store_dir is not a known option; that is ProxyStore's name: use 'directory'/ })
  t.throws(() => new Store('s', { type: 'redis', hostname: 'db01' }), { message: /hostname is not a known option; that is ProxyStore's name: use 'host'/ })
})

t.test('`await using store` closes the store, after the owned proxies declared later are disposed', async (t) => {
  const directory = join(scratch, 'using')
  let outside: Store | undefined
  {
    await using store = new Store(`using-user-${process.pid}`, new FileConnector({ directory }))
    outside = store
    await using _owned = await store.owned(new Float64Array(100))
    t.equal(readdirSync(directory).length, 2, 'the object and its ready marker')
  }
  t.same(readdirSync(directory), [], 'the owned proxy evicted its object before the store closed')
  await t.rejects(outside!.put(1), { code: ErrorCode.USAGE, message: /is closed/ })
})

t.test('executor option mistakes are refused at config time, naming the path and the fix', async (t) => {
  const directory = join(scratch, 'option')
  const file = new FileConnector({ directory })
  const store = new Store(`option-user-${process.pid}`, file)
  t.teardown(() => store.close())
  const cases: [string, unknown, RegExp][] = [
    ['a Store instead of { store }', store, /^executors\[0\]\.proxy must be \{ store, threshold\? \}, not a Store itself: write proxy: \{ store \}/],
    ['a connector type typo', { store: { name: 'x', connector: { type: 'fiel', directory } } }, /^executors\[0\]\.proxy\.store\.connector\.type must be a registered connector type.*did you mean 'file'\?/],
    ['a missing connector option', { store: { name: 'x', connector: { type: 'file' } } }, /^executors\[0\]\.proxy\.store\.connector\.directory is required/],
    ['a connector option typo', { store: { name: 'x', connector: { type: 'file', dir: directory } } }, /^executors\[0\]\.proxy\.store\.connector\.dir is not a known option; did you mean 'directory'\?/],
    ['a bad multi child', { store: { name: 'x', connector: { type: 'multi', connectors: { big: { connector: { type: 'file' } } } } } }, /^executors\[0\]\.proxy\.store\.connector\.connectors\.big\.connector\.directory is required/],
  ]
  for (const [what, option, message] of cases) {
    for (const make of [() => new ThreadPoolExecutor({ proxy: option as never }), () => new HighThroughputExecutor({ proxy: option as never })]) {
      t.throws(() => new DataFlowKernel({ runDir: join(scratch, 'run'), executors: [make()] }), { code: ErrorCode.CONFIG, message }, what)
    }
  }
})

t.test('the executor option takes a connector instance in a store config', async (t) => {
  const directory = join(scratch, 'instance')
  const kernel = await startKernel(t, 'threads', { proxy: { store: { name: `instance-${process.pid}`, connector: new FileConnector({ directory }) }, threshold: 1000 } })
  const result = await apps.inspect.with({ dfk: kernel })(new Float64Array(10_000).fill(1), 0)
  t.same(result, { isProxy: false, resolved: null, sum: 10_000 }, 'the large argument went through the store, the task saw the value')
  t.same(readdirSync(directory), [], 'and was evicted')
})

t.test('values that cannot be stored are refused when the proxy is made, saying what to do', async (t) => {
  const store = new Store(`refuse-user-${process.pid}`, new LocalConnector())
  t.teardown(() => store.close())
  await t.rejects(store.proxy(() => 1), { code: ErrorCode.SERIALIZATION, message: /a function cannot be sent/ })
  await t.rejects(store.proxy(null), { code: ErrorCode.USAGE, message: /cannot proxy null: there is nothing to fetch later; pass it directly/ })
  // Forgetting `await` on store.proxy(): the proxy is a Promise of one.
  await t.rejects(store.proxy(store.proxy([1]) as unknown), { code: ErrorCode.SERIALIZATION, message: /a Promise cannot be sent to a worker; await it first/ })
})

t.test('forgetting `await` on store.proxy() fails the task saying to await it', async (t) => {
  const kernel = await startKernel(t, 'threads')
  const store = new Store(`await-user-${process.pid}`, new FileConnector({ directory: join(scratch, 'await') }))
  t.teardown(() => store.close())
  const pending = store.proxy(new Float64Array([1, 2]))
  await t.rejects(apps.inspect.with({ dfk: kernel })(pending as never, 0), { code: ErrorCode.SERIALIZATION, message: /argument 0 of task #\d+ \(inspect\) cannot be used: a Promise cannot be sent to a worker; await it first/ })
  await pending
})

/** Runs the fixture workflow that leaves its store open; resolves to its stderr once main() warned. */
async function leaveOpen(t: Test, connector: object): Promise<string> {
  const script = fileURLToPath(new URL('../fixtures/open-store-main.mjs', import.meta.url))
  let stderr = ''
  let stdout = ''
  const child = spawn(process.execPath, [script, JSON.stringify(connector)], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  await waitFor(() => stderr.includes('await store.close()') || child.exitCode !== null, 'the warning about the open store')
  t.match(stdout, /body done/)
  t.equal(child.exitCode, null, 'the process is still running, held by the connector')
  return stderr
}

t.test('a zmq store left open: main() says why the script does not end', async (t) => {
  const stderr = await leaveOpen(t, { type: 'zmq' })
  t.match(stderr, /the workflow body returned, but store 'left-open' is still open and its connector zmq\(tcp:\/\/127\.0\.0\.1:\d+\) keeps this process running.*await store\.close\(\)/)
  t.equal(new ZmqConnector().keepsProcessAlive, false, 'a zmq connector that serves nothing does not hold the process')
})

const missing = redisMissing()
t.test('a redis store left open: main() says why the script does not end', { skip: missing ?? false }, async (t) => {
  const redis = await startRedis(t)
  const stderr = await leaveOpen(t, { type: 'redis', host: redis.host, port: redis.port })
  t.match(stderr, new RegExp(`store 'left-open' is still open and its connector redis\\(${redis.host}:${redis.port}\\) keeps this process running`))
})

t.test('disposing an owner whose borrow went to a task without submitScoped says what to use', async (t) => {
  const kernel = await startKernel(t, 'threads')
  const store = new Store(`scoped-user-${process.pid}`, new FileConnector({ directory: join(scratch, 'scoped') }))
  t.teardown(() => store.close())
  const owned = await store.owned(new Float64Array([1, 2, 3]))
  t.same(await apps.inspect.with({ dfk: kernel })(borrow(owned), 0), { isProxy: true, resolved: true, sum: 6 })
  await t.rejects(dispose(owned), { code: ErrorCode.BORROW, rule: 'borrowed', message: /has 1 borrow\(s\); release them first \(a borrow passed to a task comes back when the task settles only if it was called with submitScoped\)/ })
  t.same(await submitScoped(apps.inspect.with({ dfk: kernel }), borrow(owned), 1), { isProxy: true, resolved: true, sum: 7 })
  t.same(borrowCount(owned), { shared: 1, mut: 0 }, 'the scoped borrow came back; the other is still out')
})
