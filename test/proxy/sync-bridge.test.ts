import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConnectorError, ErrorCode, ObjectNotFound } from 'tsflow'
import { FileConnector, isResolved, Store, SyncBridge, unregisterStore, withSyncGet } from 'tsflow/proxy'
import { asyncOnly } from '../helpers/async-only.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-sync-bridge-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
let n = 0
const fileConnector = () => new FileConnector({ directory: join(scratch, `d${n++}`) })
const ECHO = new URL('../fixtures/bridge-connector.mjs', import.meta.url).href
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()

/** What `fn` throws (or a failure if it does not). */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (error) {
    return error as Error & { code?: string }
  }
  throw new Error('expected a throw')
}

t.test('a file connector read through the bridge: same bytes, missing key is ObjectNotFound, closed is closed', async (t) => {
  const c = fileConnector()
  const bridge = new SyncBridge(c.toConfig(), c.label)
  t.teardown(() => bridge.close())
  t.notOk(bridge.started, 'no thread before the first read')
  const key = await c.put(Uint8Array.of(1, 2, 3))
  t.same([...bridge.get(key)], [1, 2, 3])
  t.ok(bridge.started)
  const big = new Uint8Array(32 << 20).map((_, i) => i % 253)
  const bigKey = await c.put(big)
  t.ok(Buffer.from(bridge.get(bigKey)).equals(big), 'a 32 MB object arrives whole')
  await c.evict(key)
  const error = thrown(() => bridge.get(key))
  t.ok(error instanceof ObjectNotFound, 'ObjectNotFound, rebuilt from the thread')
  t.equal(error.code, ErrorCode.OBJECT_NOT_FOUND)
  t.match(error.message, c.label, 'names the connector')
  t.match(error.message, key.id, 'names the key')
  await bridge.close()
  t.notOk(bridge.started, 'the thread is gone')
  t.throws(() => bridge.get(bigKey), { code: ErrorCode.CONNECTOR, message: /closed/ })
})

t.test('errors keep their class, code, message and cause across the bridge', async (t) => {
  const bridge = new SyncBridge({ type: 'test-echo' }, 'test-echo(here)', { modules: [ECHO] })
  t.teardown(() => bridge.close())
  t.equal(text(bridge.get({ id: 'hello' })), 'hello', 'the connector type came from the extra module')
  const missing = thrown(() => bridge.get({ id: 'missing' }))
  t.ok(missing instanceof ObjectNotFound)
  t.match(missing.message, "'missing'")
  const broken = thrown(() => bridge.get({ id: 'broken' }))
  t.ok(broken instanceof ConnectorError)
  t.notOk(broken instanceof ObjectNotFound)
  t.match(broken.message, 'the disk is on fire')
  t.equal((broken.cause as Error | undefined)?.message, 'EIO', 'the cause came along')
  const plain = thrown(() => bridge.get({ id: 'thrown' }))
  t.ok(plain instanceof TypeError, 'a built-in error class is kept')
  t.equal(plain.message, 'not a tsflow error')
})

t.test('a connector the thread cannot rebuild, or a module it cannot load, is each read\'s error', async (t) => {
  const unknown = new SyncBridge({ type: 'no-such-connector' }, 'no-such-connector()')
  t.teardown(() => unknown.close())
  t.equal(thrown(() => unknown.get({ id: 'x' })).code, ErrorCode.CONFIG, 'the registry says the type is unknown')
  t.equal(thrown(() => unknown.get({ id: 'y' })).code, ErrorCode.CONFIG, 'and says it again')
  const badModule = new SyncBridge({ type: 'test-echo' }, 'test-echo(here)', { modules: [join(scratch, 'no-such-module.mjs')] })
  t.teardown(() => badModule.close())
  const error = thrown(() => badModule.get({ id: 'x' }))
  t.equal(error.code, 'ERR_MODULE_NOT_FOUND')
  t.match(error.message, 'no-such-module.mjs')
})

t.test('a read that takes longer than timeoutMs fails with ConnectorError; its late answer is dropped', async (t) => {
  const bridge = new SyncBridge({ type: 'test-echo' }, 'test-echo(here)', { modules: [ECHO], timeoutMs: 2000 })
  t.teardown(() => bridge.close())
  const error = thrown(() => bridge.get({ id: 'slow', delayMs: 2500 }))
  t.ok(error instanceof ConnectorError)
  t.match(error.message, /test-echo\(here\).*'slow'.*within 2000 ms/)
  // The slow answer arrives while this read waits: it must not be taken for this one.
  t.equal(text(bridge.get({ id: 'after', delayMs: 1000 })), 'after')
  t.equal(text(bridge.get({ id: 'next' })), 'next')
  t.throws(() => new SyncBridge({ type: 'test-echo' }, 'x', { timeoutMs: 0 }), { code: ErrorCode.USAGE })
})

t.test('withSyncGet: a proxy of an async-only connector resolves on a plain property access', async (t) => {
  const fileAsyncOnly = asyncOnly(fileConnector())
  // Registered, so the proxy resolves through this store (not one rebuilt from the config).
  const noBridge = new Store(`async-only-${process.pid}`, fileAsyncOnly)
  const proxy = await noBridge.proxy({ answer: 42 })
  t.throws(() => proxy.answer, { code: ErrorCode.PROXY_RESOLVE }, 'without the bridge a sync use fails')
  unregisterStore(noBridge.name) // not closed: that would close the connector used below

  const connector = withSyncGet(fileAsyncOnly)
  t.equal(connector, fileAsyncOnly, 'the same connector, given getSync')
  const store = new Store(`with-sync-get-${process.pid}`, connector)
  t.teardown(() => store.close())
  const again = await store.proxy({ answer: 42, nested: { list: [1, 2] } })
  t.equal(again.answer, 42, 'resolved through the bridge')
  t.ok(isResolved(again))
  t.same(again.nested.list, [1, 2])
  const file = fileConnector()
  t.equal(withSyncGet(file), file, 'a connector with getSync is left as it is')
  t.equal(file.getSync, FileConnector.prototype.getSync)
  await store.close()
  t.throws(() => connector.getSync({ id: 'x' }), { code: ErrorCode.CONNECTOR, message: /closed/ }, 'closing the connector closed its bridge')
  const unused = withSyncGet(asyncOnly(fileConnector()))
  await unused.close()
  t.throws(() => unused.getSync({ id: 'x' }), { code: ErrorCode.CONNECTOR, message: /closed/ }, 'a closed connector starts no bridge')
})

t.test('the bridge thread does not keep a process alive', async (t) => {
  const proxyUrl = new URL('../../dist/proxy/index.js', import.meta.url).href
  const script = `
    const { FileConnector, SyncBridge } = await import(${JSON.stringify(proxyUrl)})
    const c = new FileConnector({ directory: ${JSON.stringify(join(scratch, 'child'))} })
    const key = await c.put(Uint8Array.of(5))
    console.log('read', new SyncBridge(c.toConfig(), c.label).get(key)[0])
    // not closed: the process must still end here
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  clearTimeout(timer)
  t.equal(output.trim(), 'read 5')
  t.same({ code, signal }, { code: 0, signal: null }, 'exited by itself')
})
