import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { createSharedMemory, listSharedMemory, openSharedMemory, renameSharedMemory, unlinkSharedMemory, writeSharedMemory } from 'tsflow/native'
import { NativeError } from 'tsflow'
import { dispose, factoryOf, isResolved, ShmConnector, Store, type ObjectKey } from 'tsflow/proxy'
import { makeOwned } from '../fixtures/ownership-apps.js'
import { makeProxy } from '../fixtures/shm-apps.js'
import * as apps from '../fixtures/proxy-apps.js'
import { startKernel } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'
import { connectorConformance } from './connector-conformance.js'

// Every connector here gets a prefix under this one, so the test sees (and cleans) only its own
// segments, whatever else runs on the machine.
const base = `shmtest${process.pid}`
let n = 0
const freshPrefix = () => `${base}_${n++}`
const ours = (prefix = base) => listSharedMemory(`tsflow-${prefix}`)
t.teardown(() => {
  for (const name of ours()) unlinkSharedMemory(name)
})
// After each test (its connectors closed), nothing of ours may be left in /dev/shm; the last test
// reports any test that left something.
const leftovers: string[] = []
t.afterEach((t) => {
  for (const name of ours()) {
    leftovers.push(`${t.name}: ${name}`)
    unlinkSharedMemory(name)
  }
})

connectorConformance(t, {
  name: 'shm',
  create: () => new ShmConnector({ prefix: freshPrefix() }),
  extra: async (t, connector) => {
    const c = connector as ShmConnector
    t.equal(c.label, `shm(${c.prefix})`)
    const key = await c.put(Uint8Array.of(1, 2))
    t.same(c.segments(), [`/tsflow-${c.prefix}-${key.id}`], 'one segment named tsflow-<prefix>-<id>, no temporary one left')
    await c.evict(key)
    t.same(ours(c.prefix), [], 'evict unlinks it')
  },
})

const distUrl = (path: string) => new URL(`../../dist/${path}`, import.meta.url).href

/** Runs a child node process with `script` (an ES module body); killed at teardown if still running. */
function child(t: Test, script: string): { process: ChildProcess; output: () => string; exited: Promise<unknown[]> } {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  let output = ''
  proc.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  return { process: proc, output: () => output, exited: once(proc, 'exit') }
}

t.test('shm: get maps the segment, it does not copy it (100 MB)', async (t) => {
  const c = new ShmConnector({ prefix: freshPrefix() })
  t.teardown(() => c.close())
  const size = 100 * 2 ** 20
  const key = await c.put(new Uint8Array(size).fill(7))
  const rssBefore = process.memoryUsage().rss
  const first = c.getSync(key)
  const second = await c.get(key)
  const grown = process.memoryUsage().rss - rssBefore
  t.equal(first.length, size)
  t.ok(grown < 30 * 2 ** 20, `two gets of 100 MB grew the resident set by ${(grown / 2 ** 20).toFixed(1)} MB, not by a copy`)
  // Two gets are two mappings of the same pages: a write through one is seen by the other, and
  // by a third mapping made directly. A copy would see none of it.
  first[size - 1] = 42
  t.equal(second[size - 1], 42, 'a write through one get shows in the other')
  t.equal(openSharedMemory(c.segmentName(key))[32 + size - 1], 42, 'and in the segment itself')
  t.equal(second[0], 7)
  await c.evict(key)
  t.equal(first[0], 7, 'a mapping stays readable after evict (only the name goes)')
  await t.rejects(c.get(key), ObjectNotFound)
})

t.test('shm: data is 16-byte aligned, so typed arrays can view it in place', async (t) => {
  const c = new ShmConnector({ prefix: freshPrefix() })
  t.teardown(() => c.close())
  const key = await c.put(new Uint8Array(new Float64Array([1.5, 2.5]).buffer))
  const bytes = c.getSync(key)
  t.equal(bytes.byteOffset % 16, 0)
  t.same([...new Float64Array(bytes.buffer, bytes.byteOffset, 2)], [1.5, 2.5])
})

t.test('shm: a store over shm resolves proxies synchronously', async (t) => {
  const store = new Store(`shm-store-${process.pid}`, new ShmConnector({ prefix: freshPrefix() }))
  t.teardown(() => store.close())
  const proxy = await store.proxy({ answer: 42, list: [1, 2, 3] })
  t.equal(proxy.answer, 42, 'a plain property access resolves it (getSync)')
  t.same(proxy.list, [1, 2, 3])
})

t.test('native seam: renameSharedMemory replaces atomically, listSharedMemory filters by prefix', async (t) => {
  const prefix = `tsflow-${base}_native-`
  const a = `/${prefix}a`
  const b = `/${prefix}b`
  t.teardown(() => [a, b].forEach((name) => listSharedMemory(name.slice(1)).length && unlinkSharedMemory(name)))
  createSharedMemory(a, 8)[0] = 1
  createSharedMemory(b, 8)[0] = 2
  const oldB = openSharedMemory(b)
  t.same(listSharedMemory(prefix).sort(), [a, b])
  renameSharedMemory(a, b)
  t.same(listSharedMemory(prefix), [b], 'the source name is gone')
  t.equal(openSharedMemory(b)[0], 1, 'the target name now opens the renamed segment')
  t.equal(oldB[0], 2, 'a mapping of the replaced segment keeps working')
  const error = t.throws(() => renameSharedMemory(a, b), NativeError) as NativeError
  t.equal(error.syscall, 'rename')
  t.match(error.message, `'${a}' does not exist`)
  t.throws(() => renameSharedMemory('no-slash', b), TypeError, 'names are checked like the other shm calls')
})

t.test('native seam: writeSharedMemory writes its parts in order into a new segment and never over one', async (t) => {
  const name = `/tsflow-${base}_write-a`
  t.teardown(() => listSharedMemory(name.slice(1)).length && unlinkSharedMemory(name))
  writeSharedMemory(name, [Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3)])
  t.same([...openSharedMemory(name)], [1, 2, 3], 'the segment holds the parts one after another')
  const error = t.throws(() => writeSharedMemory(name, [Uint8Array.of(9)]), NativeError) as NativeError
  t.equal(error.syscall, 'open')
  t.match(error.message, `'${name}' already exists`)
  t.same([...openSharedMemory(name)], [1, 2, 3], 'an existing segment is left as it was')
  t.throws(() => writeSharedMemory('no-slash', []), TypeError, 'names are checked like the other shm calls')
})

t.test("shm: with the 'bytes' serializer a store hands out the mapping itself", async (t) => {
  const c = new ShmConnector({ prefix: freshPrefix() })
  const store = new Store(`shm-bytes-${process.pid}`, c, { serializer: 'bytes', cacheSize: 0 })
  t.teardown(() => store.close())
  const key = await store.put(new Uint8Array(1 << 20).fill(3))
  const value = await store.get<Uint8Array>(key)
  c.getSync(key)[5] = 99
  t.equal(value[5], 99, 'the value a store get returned is the shared segment, not a copy')
})

for (const kind of ['threads', 'htex-processes'] as const) {
  t.test(`shm: proxies resolve in tasks (${kind}), and evict: true unlinks from the worker`, async (t) => {
    const c = new ShmConnector({ prefix: freshPrefix() })
    const store = new Store(`shm-tasks-${kind}-${process.pid}`, c)
    t.teardown(() => store.close())
    const kernel = await startKernel(t, kind)
    const data = await store.proxy(new Float64Array(100_000).fill(1))
    t.same(await apps.inspect.with({ dfk: kernel })(data, 5), { isProxy: true, resolved: true, sum: 100_005 })
    t.notOk(isResolved(data), 'the caller never mapped it')
    const once = await store.proxy({ value: 'once' }, { evict: true })
    t.equal(await apps.readKey.with({ dfk: kernel })(once), 'once')
    t.notOk(await c.exists(factoryOf(once).key), 'the worker evicted (unlinked) it after resolving')
    t.equal(c.segments().length, 1, 'only the first object is left, until the store closes')
  })
}

t.test('shm: objects a worker process puts come back as proxies, and go when disposed or when the worker exits', async (t) => {
  const c = new ShmConnector({ prefix: freshPrefix() })
  const store = new Store(`shm-results-${process.pid}`, c)
  t.teardown(() => store.close())
  const kernel = await startKernel(t, 'htex-processes')
  const owned = await makeOwned.with({ dfk: kernel })(store.toConfig(), 1000, 3)
  t.equal(c.segments().length, 1, 'the worker process put the result in shm')
  t.equal(owned.reduce((a, b) => a + b, 0), 3000, 'the caller reads it (owned proxy, resolved synchronously)')
  await dispose(owned)
  t.same(c.segments(), [], 'disposing the owned proxy unlinked it')
  const plain = await makeProxy.with({ dfk: kernel })(store.toConfig(), 1000, 2)
  t.equal(plain[999], 2)
  t.equal(c.segments().length, 1, 'a plain proxy result stays while its writer runs')
  await new ShmConnector(c.toConfig() as never).close()
  t.equal(c.segments().length, 1, "closing a connector of the same prefix leaves it: its writer is alive and owns it")
  await kernel.cleanup({ deadlineMs: 10_000 })
  // HTEX stops its worker processes with SIGTERM: no 'exit' handler runs there.
  await store.close()
  t.same(c.segments(), [], "closing the store after the executor stopped removed the stopped worker's object")
})

t.test('shm: close unlinks what this instance put; a rebuilt instance owns only its own', async (t) => {
  const prefix = freshPrefix()
  const a = new ShmConnector({ prefix })
  const b = new ShmConnector(a.toConfig() as never)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  const kept = await a.put(Uint8Array.of(1))
  const evicted = await a.put(Uint8Array.of(2))
  await a.evict(evicted)
  const others = await b.put(Uint8Array.of(3))
  t.equal(ours(prefix).length, 2)
  await b.close()
  t.same(ours(prefix), [a.segmentName(kept)], "closing b unlinked b's object only")
  t.ok(await a.exists(kept))
  t.notOk(await a.exists(others))
  await a.close()
  t.same(ours(prefix), [], "closing a unlinked a's")
})

t.test('shm: names are validated', async (t) => {
  t.throws(() => new ShmConnector({ prefix: 'has-dash' }), { code: ErrorCode.CONFIG, message: /connector\.prefix/ })
  t.throws(() => new ShmConnector({ prefix: 'a/b' }), { code: ErrorCode.CONFIG })
  t.throws(() => new ShmConnector({ prefix: 'x'.repeat(65) }), { code: ErrorCode.CONFIG })
  t.throws(() => new ShmConnector({ prefx: 'x' } as never), { message: /did you mean 'prefix'/ })
  const c = new ShmConnector({ prefix: freshPrefix() })
  t.teardown(() => c.close())
  await t.rejects(c.put(Uint8Array.of(1), { id: '../escape' }), { code: ErrorCode.CONNECTOR, message: /shm\(.*'\.\.\/escape'/ })
  await t.rejects(c.put(Uint8Array.of(1), { id: 'a.tmp-1-x' }), ConnectorError, "no '.' (temporary names use it)")
  await t.rejects(c.get({ id: 'x'.repeat(250) }), ConnectorError, 'a name over NAME_MAX')
  t.ok(c.newKey().id.length > 10, 'new keys are nanoids')
})

t.test('shm: a process that exits normally leaves nothing; one killed by SIGKILL leaves segments that cleanup removes', async (t) => {
  const prefix = freshPrefix()
  const body = (exit: string) => `
    const { ShmConnector } = await import(${JSON.stringify(distUrl('proxy/index.js'))})
    const c = new ShmConnector({ prefix: ${JSON.stringify(prefix)} })
    const d = new ShmConnector(c.toConfig())
    const keys = [await c.put(new Uint8Array(1000).fill(1)), await d.put(Uint8Array.of(2)), ...(await c.putBatch([Uint8Array.of(3)]))]
    // A worker thread of this process puts one more and is terminated (no 'exit' in the thread).
    const { Worker } = await import('node:worker_threads')
    const thread = new Worker(\`
      Promise.all([import('node:worker_threads'), import(\${JSON.stringify(${JSON.stringify(distUrl('proxy/index.js'))})})]).then(async ([{ parentPort }, { ShmConnector }]) => {
        const key = await new ShmConnector(\${JSON.stringify(c.toConfig())}).put(Uint8Array.of(4))
        parentPort.postMessage(key)
        setInterval(() => {}, 1000)
      })
    \`, { eval: true })
    keys.push(await new Promise((resolve) => thread.once('message', resolve)))
    await thread.terminate()
    process.stdout.write(JSON.stringify(keys) + '\\n')
    ${exit}
  `
  const normal = child(t, body('setTimeout(() => {}, 10)'))
  const [code] = await normal.exited
  t.equal(code, 0)
  t.equal(JSON.parse(normal.output()).length, 4, 'the child put four objects, one from a worker thread')
  t.same(ours(prefix), [], "a normal exit unlinked them, the terminated thread's too (no close called)")

  const killed = child(t, body('setInterval(() => {}, 1000)'))
  await waitFor(() => killed.output().includes('\n'), 'the child to put its objects')
  const keys = JSON.parse(killed.output()) as ObjectKey[]
  const reader = new ShmConnector({ prefix })
  t.same([...(await reader.get(keys[0]!))].slice(0, 2), [1, 1], 'another process reads what the child put')
  t.same(ShmConnector.cleanup({ prefix }), [], 'cleanup keeps the segments of a writer that is still running')
  killed.process.kill('SIGKILL')
  await killed.exited
  t.equal(ours(prefix).length, 4, 'SIGKILL left its segments behind')
  t.equal(ShmConnector.cleanup({ prefix }).length, 4, "cleanup removes a dead writer's segments")
  t.same(ours(prefix), [])

  const keeper = child(t, body('').replace('{ prefix:', '{ unlinkOnExit: false, prefix:'))
  await keeper.exited
  const left = JSON.parse(keeper.output()) as ObjectKey[]
  t.same([...(await reader.get(left[1]!))], [2], 'with unlinkOnExit: false the objects outlive their writer')
  for (const key of left) await reader.evict(key)
})

t.test('shm: cleanup leaves segments that are not tsflow objects alone', async (t) => {
  const prefix = freshPrefix()
  const foreign = `/tsflow-${prefix}-foreign`
  t.teardown(() => unlinkSharedMemory(foreign))
  createSharedMemory(foreign, 64).fill(1)
  t.same(ShmConnector.cleanup({ prefix, all: true }), [], 'no tsflow header: not ours, even with all')
  t.same(ours(prefix), [foreign])
  t.throws(() => ShmConnector.cleanup({ prefix: 'a-b' }), { code: ErrorCode.CONFIG, message: /cleanup\.prefix/ })
})

t.test('shm: a writer killed mid-put leaves no visible object, only a temporary segment', async (t) => {
  const prefix = freshPrefix()
  const size = 32 * 2 ** 20
  // The child puts (and evicts the previous) in a loop, so most of its time is spent inside put,
  // between creating the temporary segment and renaming it: a kill lands there most of the time.
  const script = `
    const { ShmConnector } = await import(${JSON.stringify(distUrl('proxy/index.js'))})
    const c = new ShmConnector({ prefix: ${JSON.stringify(prefix)} })
    const bytes = new Uint8Array(${size}).fill(9)
    let previous
    for (;;) {
      const key = c.putSync(bytes)
      if (previous) await c.evict(previous)
      previous = key
      process.stdout.write('put\\n')
    }
  `
  const reader = new ShmConnector({ prefix })
  let leftTemporary = 0
  for (let attempt = 0; attempt < 8 && leftTemporary === 0; attempt++) {
    const writer = child(t, script)
    await waitFor(() => writer.output().split('\n').length > 3, 'the writer to finish a few puts')
    await waitFor(() => ours(prefix).some((name) => name.includes('.tmp-')), 'a put in progress', 20_000, 1)
    writer.process.kill('SIGKILL')
    await writer.exited
    const names = ours(prefix)
    const temporary = names.filter((name) => name.includes('.tmp-'))
    leftTemporary += temporary.length
    for (const name of reader.segments()) {
      const bytes = reader.getSync({ id: name.slice(`/tsflow-${prefix}-`.length) })
      t.ok(bytes.length === size && bytes.every((b) => b === 9), `visible object ${name} is whole`)
    }
    t.equal(ShmConnector.cleanup({ prefix }).length, names.length, "cleanup removed the dead writer's segments, temporary ones too")
  }
  t.ok(leftTemporary > 0, 'a kill landed mid-put and left a temporary segment, never a visible partial object')
})

t.test('shm: a reader in another process sees whole objects only while this one replaces them', async (t) => {
  const c = new ShmConnector({ prefix: freshPrefix() })
  t.teardown(() => c.close())
  const key = c.newKey()
  const size = 1 << 20
  await c.put(new Uint8Array(size).fill(1), key)
  const reader = child(
    t,
    `
    const { ShmConnector } = await import(${JSON.stringify(distUrl('proxy/index.js'))})
    const c = new ShmConnector(${JSON.stringify(c.toConfig())})
    let whole = 0, torn = 0, stop = false
    process.stdin.on('data', () => { stop = true }).resume()
    while (!stop) {
      const b = await c.get(${JSON.stringify(key)})
      // all bytes equal <=> the buffer equals itself shifted by one (a memcmp, no per-byte callback)
      if (b.length !== ${size} || !b.subarray(1).equals(b.subarray(0, ${size} - 1))) torn++
      else whole++
      if ((whole + torn) % 10 === 0) { process.stdout.write('reads ' + (whole + torn) + '\\n'); await new Promise((r) => setImmediate(r)) }
    }
    console.log(JSON.stringify({ whole, torn }))
    process.exit(0)
  `,
  )
  const reads = () => Number(/reads (\d+)\n(?!.*reads)/s.exec(reader.output())?.[1] ?? 0)
  for (let round = 2; reads() < 100 && round < 5000 && reader.process.exitCode === null; round++) {
    await c.put(new Uint8Array(size).fill(round % 250), key)
    await new Promise((resolve) => setImmediate(resolve))
  }
  reader.process.stdin!.write('stop\n')
  await reader.exited
  const seen = JSON.parse(reader.output().trim().split('\n').at(-1)!) as { whole: number; torn: number }
  t.ok(seen.whole >= 100, 'the reader read while the object was being replaced')
  t.equal(seen.torn, 0, `no torn read (${seen.whole} whole reads)`)
})

t.test('shm: no test left a segment in /dev/shm', async (t) => {
  t.same(leftovers, [])
})
