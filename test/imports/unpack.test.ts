// The node cache of proxy imports (issue 9): a real FileConnector store holding real tars built
// here, real child processes competing for the lock, a real SIGKILL mid-unpack (the child blocks
// reading a FIFO that stands in the store for the package's bytes), foreign and dead holders.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { c as createTar } from 'tar'
import t, { type Test } from 'tap'
import { PackageUnpackError, PackageUnpackTimeout, ProtocolError } from 'tsflow'
import {
  cleanImportsCache,
  defaultCacheDir,
  ensureUnpacked,
  expandCacheDir,
  isUnpacked,
  packageDir,
  unlinkImportsCache,
  waitUnpackedSync,
} from 'tsflow/imports'
import type { ShippedPackageWire } from 'tsflow/protocol'
import { FileConnector, Store } from 'tsflow/proxy'
import { isAlive, waitFor } from '../helpers/wait.js'

const here = dirname(fileURLToPath(import.meta.url))
const CHILD = join(here, '..', 'fixtures', 'unpack-child.mjs')

interface Fixture {
  tar: Buffer
  hash: string
  files: Record<string, string>
}

function workspace(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-unpack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// A generated package: package.json plus `count` small modules, packed with tar as the pack
// side does (paths relative to the package root).
async function fixture(dir: string, name: string, count = 40): Promise<Fixture> {
  const source = join(dir, `src-${randomUUID().slice(0, 8)}`)
  const files: Record<string, string> = { 'package.json': JSON.stringify({ name, version: '1.0.0', main: 'index.js' }) }
  for (let i = 0; i < count; i++) files[`lib/m${i}.js`] = `module.exports = ${i} // ${name}\n`
  files['index.js'] = `module.exports = [${Array.from({ length: count }, (_, i) => `require('./lib/m${i}.js')`).join(', ')}]\n`
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(source, file)), { recursive: true })
    writeFileSync(join(source, file), text)
  }
  const file = `${source}.tar`
  await createTar({ cwd: source, file, portable: true }, Object.keys(files).sort())
  const tar = readFileSync(file)
  rmSync(source, { recursive: true })
  rmSync(file)
  return { tar, hash: sha256(tar), files }
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

function newStore(directory: string): Store {
  return new Store(`unpack-${randomUUID()}`, new FileConnector({ directory }), { metrics: true, register: false })
}

const getsOf = (store: Store): number => store.metrics!.aggregateTimes()['store.get']?.count ?? 0

async function ship(store: Store, name: string, fix: Fixture, bytes: Uint8Array = fix.tar): Promise<ShippedPackageWire> {
  const key = await store.put(bytes, { serializer: 'bytes' })
  return { name, version: '1.0.0', hash: fix.hash, key: { ...key }, size: bytes.byteLength, deps: {} }
}

function assertSameFiles(t: Test, root: string, fix: Fixture): void {
  for (const [file, text] of Object.entries(fix.files)) t.equal(readFileSync(join(root, file), 'utf8'), text, `${file} unpacked`)
}

// What a cache directory holds besides finished packages: locks, temp dirs, stale lock names.
function leftovers(cacheDir: string): string[] {
  if (!existsSync(cacheDir)) return []
  return readdirSync(cacheDir).filter((name) => /\.(lock|tmp-|lock\.stale-|done\.tmp-)/.test(name))
}

interface Child {
  process: ChildProcess
  lines: Record<string, unknown>[]
  line(predicate: (line: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>
  exited: Promise<number | null>
}

function startChild(t: Test, job: Record<string, unknown>): Child {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const lines: Record<string, unknown>[] = []
  let buffer = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    let newline
    while ((newline = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, newline)) as Record<string, unknown>)
      buffer = buffer.slice(newline + 1)
    }
  })
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
  return {
    process: child,
    lines,
    exited,
    async line(predicate, what) {
      await waitFor(() => lines.some(predicate), what, 60_000)
      return lines.find(predicate)!
    },
  }
}

// A store object that never answers until written: the object's file is a FIFO, so the
// FileConnector's read blocks in the reader (a real slow store, not a stand-in).
async function fifoObject(store: Store, storeDir: string): Promise<{ key: { id: string }; path: string }> {
  const key = { id: `fifo-${randomUUID()}` }
  const path = join(storeDir, key.id)
  execFileSync('mkfifo', [path])
  writeFileSync(`${path}.ready`, '')
  return { key, path }
}

t.test('names: the default cache directory, placeholders, package directories by name, version and hash', async (t) => {
  const uid = String(process.getuid!())
  let shm = false
  try {
    accessSync('/dev/shm', constants.W_OK)
    shm = statSync('/dev/shm').isDirectory()
  } catch {
    // no writable /dev/shm: the temporary directory
  }
  t.equal(defaultCacheDir(), shm ? `/dev/shm/tsflow-imports-${uid}` : join(tmpdir(), `tsflow-imports-${uid}`))
  t.equal(expandCacheDir(undefined, {}), defaultCacheDir(), 'no cacheDir: the default')
  t.equal(expandCacheDir('/scratch/{host}/b{block}/imports', { block: '3', host: 'n7' }), '/scratch/n7/b3/imports')
  const saved = process.env.TSFLOW_BLOCK_ID
  process.env.TSFLOW_BLOCK_ID = '12'
  t.teardown(() => (saved === undefined ? delete process.env.TSFLOW_BLOCK_ID : (process.env.TSFLOW_BLOCK_ID = saved)))
  t.equal(expandCacheDir('/c/{block}-{host}'), `/c/12-${hostname()}`, 'the worker block id and host name by default')

  const hash = 'ab'.repeat(32)
  const pkg = { name: '@scope/name', version: '2.0.0-rc.1', hash, key: { id: 'k' }, size: 1, deps: {} }
  t.equal(packageDir('/c', pkg), `/c/@scope+name@2.0.0-rc.1-${hash.slice(0, 16)}`, 'a scope becomes one path component')
  t.equal(packageDir('/c', { ...pkg, name: 'plain', version: undefined }), `/c/plain-${hash.slice(0, 16)}`)
  t.equal(packageDir('/c', { ...pkg, name: '../evil' }), `/c/_.+evil@2.0.0-rc.1-${hash.slice(0, 16)}`, 'never leaves the cache directory')
  t.throws(() => packageDir('/c', { ...pkg, hash: '../../etc' }), ProtocolError, 'a hash that is not a sha256 is refused')
})

t.test('unpacks once: the files as packed, a done marker, no lock or temp dir; later calls (other stores, same cache) fetch nothing', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const fix = await fixture(dir, '@s/alpha')
  const store = newStore(join(dir, 'store'))
  const pkg = await ship(store, '@s/alpha', fix)

  // Concurrent callers in one process share one unpack.
  const roots = await Promise.all(Array.from({ length: 5 }, () => ensureUnpacked(pkg, store, cacheDir)))
  t.same(new Set(roots), new Set([packageDir(cacheDir, pkg)]), 'every caller gets the package root')
  t.equal(getsOf(store), 1, 'fetched once')
  assertSameFiles(t, roots[0]!, fix)
  t.ok(isUnpacked(roots[0]!))
  const marker = JSON.parse(readFileSync(`${roots[0]}.done`, 'utf8'))
  t.match(marker, { name: '@s/alpha', hash: fix.hash, files: Object.keys(fix.files).length, pid: process.pid })
  t.same(leftovers(cacheDir), [], 'no lock, temp dir or stray marker left')

  const later = newStore(join(dir, 'store'))
  t.equal(await ensureUnpacked(pkg, later, cacheDir), roots[0], 'the cache is reused')
  t.equal(getsOf(later), 0, 'without fetching')
  t.equal(waitUnpackedSync(pkg, cacheDir, 1000), roots[0], 'waitUnpackedSync returns at once when done')

  // A marker whose root was lost is not trusted: unpacked again.
  rmSync(roots[0]!, { recursive: true })
  t.notOk(isUnpacked(roots[0]!))
  t.equal(await ensureUnpacked(pkg, later, cacheDir), roots[0])
  t.equal(getsOf(later), 1, 'fetched again')
  assertSameFiles(t, roots[0]!, fix)
})

t.test('gzipped objects: the hash may be of the tar or of the stored bytes', async (t) => {
  const dir = workspace(t)
  const fix = await fixture(dir, 'gz')
  const store = newStore(join(dir, 'store'))
  const gz = gzipSync(fix.tar)
  const ofTar = await ship(store, 'gz', fix, gz)
  assertSameFiles(t, await ensureUnpacked(ofTar, store, join(dir, 'c1')), fix)
  const ofGz = { ...ofTar, hash: sha256(gz) }
  assertSameFiles(t, await ensureUnpacked(ofGz, store, join(dir, 'c2')), fix)
})

t.test('a missing or corrupted object: a clear error naming package, key, directory and cause; no lock or partial dir; a later try works', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const storeDir = join(dir, 'store')
  const fix = await fixture(dir, 'broken')
  const store = newStore(storeDir)
  const good = await ship(store, 'broken', fix)

  const missing = { ...good, key: { id: 'no-such-object' } }
  const error = await ensureUnpacked(missing, store, cacheDir).catch((e: unknown) => e)
  t.type(error, PackageUnpackError)
  t.match((error as Error).message, /package 'broken'.*'no-such-object'.*broken@1\.0\.0-[0-9a-f]{16}.*cannot fetch it from store.*has no object 'no-such-object'/s)
  t.same(readdirSync(cacheDir), [], 'nothing left in the cache')

  // Bytes that are not the manifest's: refused by the hash check.
  const garbage = Buffer.alloc(2048, 'not a tar at all ')
  const replaced = { ...good, key: { ...(await store.put(garbage, { serializer: 'bytes' })) } }
  await t.rejects(ensureUnpacked(replaced, store, cacheDir), { code: 'E_PACKAGE_UNPACK', message: /do not match the manifest's sha256/ })
  t.same(readdirSync(cacheDir), [])

  // A damaged tar whose hash matches (damaged before packing, or verify off): tar's strict mode.
  const damaged = Buffer.from(fix.tar)
  damaged.fill(0x41, 0, 512)
  const bad = { ...good, hash: sha256(damaged), key: { ...(await store.put(damaged, { serializer: 'bytes' })) } }
  await t.rejects(ensureUnpacked(bad, store, cacheDir), { code: 'E_PACKAGE_UNPACK', message: /not a valid tar archive/ })
  t.same(readdirSync(cacheDir), [], 'no temp dir, no lock, no package dir')
  await t.rejects(ensureUnpacked(replaced, store, cacheDir, { verify: false }), { code: 'E_PACKAGE_UNPACK', message: /not a valid tar archive/ })
  t.same(readdirSync(cacheDir), [])

  assertSameFiles(t, await ensureUnpacked(good, store, cacheDir), fix)
})

t.test('concurrent unpackers in several processes: exactly one fetch and unpack, all get the same root', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const storeDir = join(dir, 'store')
  const fix = await fixture(dir, 'shared', 400)
  const pkg = await ship(newStore(storeDir), 'shared', fix)
  const go = join(dir, 'go')
  const children = Array.from({ length: 4 }, () => startChild(t, { mode: 'ensure', pkg, storeDir, cacheDir, go }))
  await Promise.all(children.map((child) => child.line((l) => l.ready === true, 'child ready')))
  writeFileSync(go, '')
  const results = await Promise.all(children.map((child) => child.line((l) => 'root' in l || 'error' in l, 'child result')))
  t.same(
    results.map((r) => r.error),
    results.map(() => undefined),
    'no child failed',
  )
  t.same(new Set(results.map((r) => r.root)), new Set([packageDir(cacheDir, pkg)]), 'one root for all')
  t.equal(
    results.reduce((sum, r) => sum + (r.gets as number), 0),
    1,
    'one fetch among all processes',
  )
  t.same(await Promise.all(children.map((child) => child.exited)), [0, 0, 0, 0])
  assertSameFiles(t, packageDir(cacheDir, pkg), fix)
  t.same(leftovers(cacheDir), [])
})

t.test('a crashed unpacker (SIGKILL while it holds the lock): the next caller takes over and cleans its temp dir', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const storeDir = join(dir, 'store')
  const store = newStore(storeDir)
  const fix = await fixture(dir, 'crashy')
  const slow = await fifoObject(store, storeDir)
  const pkg: ShippedPackageWire = { name: 'crashy', version: '1.0.0', hash: fix.hash, key: slow.key, size: fix.tar.byteLength, deps: {} }
  const root = packageDir(cacheDir, pkg)

  const child = startChild(t, { mode: 'ensure', pkg, storeDir, cacheDir })
  const pid = child.process.pid!
  await waitFor(() => {
    try {
      return JSON.parse(readFileSync(`${root}.lock`, 'utf8')).pid === pid && leftovers(cacheDir).some((name) => name.includes('.tmp-'))
    } catch {
      return false
    }
  }, 'the child to hold the lock and have made its temp dir')
  child.process.kill('SIGKILL')
  await child.exited
  t.notOk(isAlive(pid), 'the unpacker is gone')
  t.ok(existsSync(`${root}.lock`), 'its lock stayed behind')

  // The store now answers with the real bytes (the put replaces the FIFO).
  await store.connector.put(fix.tar, slow.key)
  t.equal(await ensureUnpacked(pkg, store, cacheDir, { timeoutMs: 30_000 }), root)
  assertSameFiles(t, root, fix)
  t.same(leftovers(cacheDir), [], 'the dead holder\'s lock and temp dir are gone')
})

t.test('a lock from another host: waited for while refreshed (timeout names holder and lock), taken over once stale by mtime', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const fix = await fixture(dir, 'remote')
  const store = newStore(join(dir, 'store'))
  const pkg = await ship(store, 'remote', fix)
  const root = packageDir(cacheDir, pkg)
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(`${root}.lock`, JSON.stringify({ pid: 4242, host: 'elsewhere.example', started: new Date().toISOString() }))
  mkdirSync(`${root}.tmp-4242-deadbeef/lib`, { recursive: true })
  writeFileSync(`${root}.tmp-4242-deadbeef/lib/half.js`, 'module.exports =')

  const error = await ensureUnpacked(pkg, store, cacheDir, { timeoutMs: 300 }).catch((e: unknown) => e)
  t.type(error, PackageUnpackTimeout)
  t.match((error as Error).message, new RegExp(`package 'remote'.*${root.replace(/[.+]/g, '\\$&')}\\.lock is held by pid 4242 on host elsewhere\\.example`, 's'))
  t.ok(existsSync(`${root}.lock`), 'a live foreign lock is left alone')
  t.equal(getsOf(store), 0)

  const old = new Date(Date.now() - 10 * 60_000)
  utimesSync(`${root}.lock`, old, old)
  t.equal(await ensureUnpacked(pkg, store, cacheDir), root, 'a lock nobody refreshed for staleLockMs is taken over')
  assertSameFiles(t, root, fix)
  t.same(leftovers(cacheDir), [], 'the foreign temp dir and lock are gone')
})

t.test('a lock of a dead process on this host is taken over at once, however fresh', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const fix = await fixture(dir, 'orphan')
  const store = newStore(join(dir, 'store'))
  const pkg = await ship(store, 'orphan', fix)
  const root = packageDir(cacheDir, pkg)
  const gone = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((done) => gone.on('exit', done))
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(`${root}.lock`, JSON.stringify({ pid: gone.pid, host: hostname(), started: new Date().toISOString() }))
  t.equal(await ensureUnpacked(pkg, store, cacheDir, { staleLockMs: 3_600_000 }), root)
  t.same(leftovers(cacheDir), [])
})

t.test('waitUnpackedSync blocks another process until this one has unpacked; times out naming the holder', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const storeDir = join(dir, 'store')
  const store = newStore(storeDir)
  const fix = await fixture(dir, 'sync-wait')
  const slow = await fifoObject(store, storeDir)
  const pkg: ShippedPackageWire = { name: 'sync-wait', version: '1.0.0', hash: fix.hash, key: slow.key, size: fix.tar.byteLength, deps: {} }
  const root = packageDir(cacheDir, pkg)

  // This process takes the lock and blocks on the store...
  const unpacking = ensureUnpacked(pkg, store, cacheDir)
  unpacking.catch(() => {})
  await waitFor(() => existsSync(`${root}.lock`), 'the lock to be taken')
  t.throws(() => waitUnpackedSync(pkg, cacheDir, 50), { code: 'E_PACKAGE_UNPACK_TIMEOUT', message: new RegExp(`held by pid ${process.pid} on host`) })

  // ...while another process waits synchronously.
  const child = startChild(t, { mode: 'waitSync', pkg, cacheDir, timeoutMs: 60_000 })
  await child.line((l) => l.waiting === true, 'the child to wait')
  t.notOk(isUnpacked(root), 'not unpacked while the store has not answered')
  await writeFile(slow.path, fix.tar)
  t.equal(await unpacking, root)
  const result = await child.line((l) => 'root' in l || 'error' in l, 'the child to return')
  t.same(result, { root }, 'the waiting process sees the same root')
  t.equal(await child.exited, 0)

  const other = { ...pkg, hash: 'cd'.repeat(32) }
  t.throws(() => waitUnpackedSync(other, cacheDir, 20), { code: 'E_PACKAGE_UNPACK_TIMEOUT', message: /no process holds its lock/ })
})

t.test('cleanImportsCache: removes unused packages and crash leftovers, spares locked, kept and recent ones; unlinkImportsCache removes all', async (t) => {
  const dir = workspace(t)
  const cacheDir = join(dir, 'cache')
  const store = newStore(join(dir, 'store'))
  const [a, b] = await Promise.all([fixture(dir, 'a'), fixture(dir, 'b')])
  const pkgA = await ship(store, 'a', a)
  const pkgB = await ship(store, 'b', b)
  const rootA = await ensureUnpacked(pkgA, store, cacheDir)
  const rootB = await ensureUnpacked(pkgB, store, cacheDir)
  // A crashed unpacker's leftovers for a third package: an old lock of another host, a temp dir.
  const rootC = packageDir(cacheDir, { ...pkgA, name: 'c', hash: 'ef'.repeat(32) })
  writeFileSync(`${rootC}.lock`, JSON.stringify({ pid: 7, host: 'elsewhere.example', started: '2020-01-01T00:00:00Z' }))
  const old = new Date(Date.now() - 10 * 60_000)
  utimesSync(`${rootC}.lock`, old, old)
  mkdirSync(`${rootC}.tmp-7-cafe`)

  t.same(cleanImportsCache(cacheDir, { olderThanMs: 3_600_000, keep: [pkgA.hash, pkgB.hash] }).removed, [rootC], 'recent and kept ones stay; leftovers go')
  t.same(cleanImportsCache(cacheDir, { keep: [pkgB.hash] }).removed, [rootA])
  t.notOk(existsSync(rootA) || existsSync(`${rootA}.done`))

  // A live lock (this process, fresh): someone is working on it; left alone.
  writeFileSync(`${rootB}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() }))
  t.same(cleanImportsCache(cacheDir).removed, [])
  t.ok(isUnpacked(rootB) && existsSync(join(rootB, 'index.js')))
  rmSync(`${rootB}.lock`)
  t.same(cleanImportsCache(cacheDir).removed, [rootB])
  t.same(readdirSync(cacheDir), [])

  // Unpacked again after a cleanup: fetched again.
  t.equal(await ensureUnpacked(pkgA, store, cacheDir), rootA)
  unlinkImportsCache(cacheDir)
  t.notOk(existsSync(cacheDir))
  t.same(cleanImportsCache(cacheDir).removed, [], 'a missing cache directory is empty')
})
