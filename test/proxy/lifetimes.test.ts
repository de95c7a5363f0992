import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ErrorCode } from 'tsflow'
import { ContextLifetime, FileConnector, LeaseLifetime, LocalConnector, StaticLifetime, Store, factoryOf, resolve } from 'tsflow/proxy'
import { waitFor } from '../helpers/wait.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-lifetimes-'))
const store = new Store(`lifetimes-${process.pid}`, new LocalConnector())
t.teardown(async () => {
  await store.close()
  rmSync(scratch, { recursive: true, force: true })
})

const keyOf = (proxy: unknown) => factoryOf(proxy).key
const exists = (proxy: unknown) => store.exists(keyOf(proxy))
const codeOf = async (run: () => unknown): Promise<string | undefined> => {
  try {
    await run()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

/** The data files of a file connector's directory (not ready markers or partial writes). */
function dataFiles(directory: string): string[] {
  return readdirSync(directory).filter((name) => !name.endsWith('.ready') && !name.includes('.partial-'))
}

/** Runs an ES module script with the package importable as `tsflow/proxy`; its stdout. */
function runScript(script: string, flags: string[] = []): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  return { status: child.status, signal: child.signal, stdout: child.stdout, stderr: child.stderr }
}

t.test('context lifetime: closing evicts every object bound to it, then refuses new ones', async (t) => {
  const lifetime = new ContextLifetime(store, { name: 'stage-1' })
  const a = await store.proxy({ a: 1 }, { lifetime })
  const [b, c] = await store.proxyBatch([[1], [2]], { lifetime })
  const key = await store.put('plain put', { lifetime })
  const later = await store.proxy('bound later')
  lifetime.addProxy(later)
  t.equal(lifetime.size, 5)
  for (const proxy of [a, b, c, later]) t.ok(await exists(proxy), 'stored while the lifetime runs')
  t.notOk(lifetime.done())

  await lifetime.close()
  t.ok(lifetime.done())
  for (const proxy of [a, b, c, later]) t.notOk(await exists(proxy), 'evicted when it closed')
  t.notOk(await store.exists(key))
  await lifetime.close()
  t.pass('a second close is harmless')

  const error = await store.proxy({ too: 'late' }, { lifetime }).catch((e: unknown) => e as Error & { code?: string })
  t.equal((error as { code?: string }).code, ErrorCode.LIFETIME_ENDED, 'a closed lifetime refuses new objects')
  t.match((error as Error).message, "context 'stage-1'")
  t.equal(await codeOf(() => lifetime.addKey({ id: 'k' })), ErrorCode.LIFETIME_ENDED)
  t.equal(await codeOf(() => store.proxy(1, { lifetime: {} as never })), ErrorCode.CONFIG, 'something that is not a lifetime is a config error')
})

t.test('context lifetime: a closed lifetime leaves nothing behind in the connector', async (t) => {
  const directory = join(scratch, 'refused')
  const files = new Store(`lifetimes-file-${process.pid}`, new FileConnector({ directory }))
  t.teardown(() => files.close())
  const lifetime = new ContextLifetime(files)
  await files.proxy(new Float64Array(10), { lifetime })
  t.equal(dataFiles(directory).length, 1)
  await lifetime.close()
  t.equal(await codeOf(() => files.put('x', { lifetime })), ErrorCode.LIFETIME_ENDED)
  t.same(dataFiles(directory), [], 'evicted on close, and the refused put stored nothing')
})

t.test('context lifetime: `await using` and `using` end it with their scope', async (t) => {
  let kept: unknown
  {
    await using lifetime = new ContextLifetime(store)
    kept = await store.proxy({ scoped: true }, { lifetime })
    t.ok(await exists(kept))
  }
  t.notOk(await exists(kept), '`await using` waited for the eviction')

  let synced: unknown
  let ended: ContextLifetime | undefined
  {
    using lifetime = new ContextLifetime(store)
    ended = lifetime
    synced = await store.proxy({ scoped: 'sync' }, { lifetime })
  }
  t.ok(ended.done(), '`using` ended it at once')
  await waitFor(async () => !(await exists(synced)), 'the sync dispose to evict in the background')
})

t.test('evict-on-first-resolve composes with a lifetime', async (t) => {
  const lifetime = new ContextLifetime(store)
  const once = await store.proxy({ read: 'once' }, { evict: true, lifetime })
  const kept = await store.proxy({ read: 'many' }, { lifetime })
  await resolve(once)
  t.notOk(await exists(once), 'gone after its first resolve')
  t.ok(await exists(kept))
  await lifetime.close()
  t.notOk(await exists(kept), 'closing evicts the rest; the object already gone is not an error')
})

t.test('lease lifetime: objects are evicted when the lease runs out; extend and renew move the end', async (t) => {
  const lease = new LeaseLifetime(store, { expiryMs: 60_000, name: 'long' })
  const before = lease.expiresAt
  lease.extend(1000)
  t.equal(lease.expiresAt, before + 1000, 'extend pushes the end later')
  lease.renew(120_000)
  t.ok(lease.expiresAt >= before + 60_000 - 1000, 'renew sets it from now')
  const held = await store.proxy({ leased: true }, { lifetime: lease })
  await lease.close()
  t.notOk(await exists(held), 'closing a lease early evicts too')
  t.equal(await codeOf(() => lease.extend(10)), ErrorCode.LIFETIME_ENDED, 'an ended lease cannot be extended')

  const short = new LeaseLifetime(store, { expiryMs: 30, name: 'short' })
  const a = await store.proxy({ a: 'short' }, { lifetime: short })
  await waitFor(() => short.done(), 'the lease to run out')
  await waitFor(async () => !(await exists(a)), 'the object to be evicted at expiry')
  t.equal(await codeOf(() => store.proxy(1, { lifetime: short })), ErrorCode.LIFETIME_ENDED, 'an expired lease refuses new objects')

  const renewed = new LeaseLifetime(store, { expiryMs: 30 })
  renewed.renew(60_000)
  const b = await store.proxy({ b: 'renewed' }, { lifetime: renewed })
  const shortLived = new LeaseLifetime(store, { expiryMs: 30 })
  await waitFor(() => shortLived.done(), 'a lease made at the same time to run out')
  t.notOk(renewed.done(), 'the renewed lease runs on')
  t.ok(await exists(b))
  await renewed.close()

  t.equal(await codeOf(() => new LeaseLifetime(store, {} as never)), ErrorCode.CONFIG, 'expiryMs is required')
  t.equal(await codeOf(() => new LeaseLifetime(store, { expiryMs: 0 })), ErrorCode.CONFIG)
  t.equal(await codeOf(() => new LeaseLifetime(store, { expiryMs: 10, extra: 1 } as never)), ErrorCode.CONFIG)
})

t.test('lease lifetime: its timer does not keep the process alive', async (t) => {
  const child = runScript(`
    import { LeaseLifetime, LocalConnector, Store } from 'tsflow/proxy'
    const store = new Store('lease-exit', new LocalConnector())
    const lease = new LeaseLifetime(store, { expiryMs: 3_600_000 })
    await store.proxy({ x: 1 }, { lifetime: lease })
    console.log('armed')
  `)
  t.equal(child.signal, null, `the process ended by itself (stderr: ${child.stderr})`)
  t.equal(child.status, 0)
  t.match(child.stdout, 'armed')
})

t.test('static lifetime: one per process; its objects are evicted when the process runs out of work', async (t) => {
  t.equal(new StaticLifetime(), new StaticLifetime(), 'the same instance every time')
  const directory = join(scratch, 'static')
  const child = runScript(`
    import { FileConnector, StaticLifetime, Store } from 'tsflow/proxy'
    const store = new Store('static-exit', new FileConnector({ directory: ${JSON.stringify(directory)} }))
    const lifetime = new StaticLifetime()
    await store.proxy({ x: 1 }, { lifetime })
    await store.put('two', { lifetime })
    console.log('stored', (await import('node:fs')).readdirSync(${JSON.stringify(directory)}).filter((f) => f.endsWith('.ready')).length)
  `)
  t.equal(child.status, 0, child.stderr)
  t.match(child.stdout, 'stored 2', 'both objects were there while the process ran')
  t.same(dataFiles(directory), [], 'and evicted at beforeExit')

  const lifetime = new StaticLifetime()
  const proxy = await store.proxy({ kept: 'until close' }, { lifetime })
  t.ok(await exists(proxy))
  await lifetime.close()
  t.notOk(await exists(proxy), 'close() evicts earlier')
})
