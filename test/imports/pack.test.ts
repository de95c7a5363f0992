// Packing traced packages (issue 9): deterministic tars, the pack cache across runs, and shipping
// them into a real file store with the manifest that travels with an app's function.
import { createHash } from 'node:crypto'
import { chmodSync, cpSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import * as tar from 'tar'
import { PackagePackError } from 'tsflow'
import { cleanPackCache, createPackMemo, ensureUnpacked, packPackage, PACKAGE_KEY_PREFIX, shipPackages, traceImports, type ShipEvent, type TracedPackage } from 'tsflow/imports'
import { FileConnector, Store } from 'tsflow/proxy'

const here = dirname(fileURLToPath(import.meta.url))

function tempDir(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tsflow-pack-${prefix}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
}

/** A package directory with a subdirectory, an executable, a symlink, an empty directory and nested node_modules. */
function fixturePackage(dir: string, name = 'fixture-pkg'): TracedPackage {
  const root = join(dir, 'node_modules', name)
  write(join(root, 'package.json'), JSON.stringify({ name, version: '1.0.0', dependencies: { 'nested-dep': '^1' } }))
  write(join(root, 'index.js'), "module.exports = require('./lib/a.js')\n")
  write(join(root, 'lib', 'a.js'), 'module.exports = 42\n')
  write(join(root, 'lib', 'a-b.js'), 'module.exports = 43\n')
  write(join(root, 'bin', 'cli.js'), '#!/usr/bin/env node\n')
  chmodSync(join(root, 'bin', 'cli.js'), 0o775)
  mkdirSync(join(root, 'empty'))
  symlinkSync('lib/a.js', join(root, 'alias.js'))
  // one inode twice (pnpm-style hard links): each stays a plain file in the tar
  linkSync(join(root, 'lib', 'a-b.js'), join(root, 'lib', 'same-inode.js'))
  // the package's own node_modules: separate packages, never in its tar
  write(join(root, 'node_modules', 'nested-dep', 'package.json'), JSON.stringify({ name: 'nested-dep', version: '1.0.0' }))
  write(join(root, 'node_modules', 'nested-dep', 'index.js'), 'module.exports = 1\n')
  // a node_modules deeper down is the package's own files (not traced): kept
  write(join(root, 'lib', 'node_modules', 'private', 'index.js'), 'module.exports = 2\n')
  return { name, root, version: '1.0.0', native: false, importedBy: 'test', dependencies: { 'nested-dep': join(root, 'node_modules', 'nested-dep') } }
}

/** Every path under dir (posix, relative), sorted, with `dir/`'s own node_modules included. */
function listTree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).map((p) => p.split('\\').join('/')).sort()
}

async function extract(t: Test, bytes: Uint8Array): Promise<string> {
  const dir = tempDir(t, 'extract')
  const file = join(dir, 'package.tar')
  writeFileSync(file, bytes)
  const into = join(dir, 'pkg')
  mkdirSync(into)
  await tar.x({ file, cwd: into })
  return into
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

t.test('a package packs to the same bytes every time; content changes the hash, mtimes do not', async (t) => {
  const dir = tempDir(t, 'work')
  const pkg = fixturePackage(dir)
  const first = await packPackage(pkg, { packCacheDir: false })
  const second = await packPackage(pkg, { packCacheDir: false })
  t.equal(first.hash, second.hash, 'same directory, same hash')
  t.equal(first.hash, sha256(first.bytes), 'the hash is the sha256 of the bytes')
  t.equal(first.size, first.bytes.byteLength)
  t.same(first.bytes, second.bytes)
  t.notOk(first.compressed)

  const copy = join(dir, 'elsewhere')
  cpSync(dirname(pkg.root), copy, { recursive: true, verbatimSymlinks: true }) // new mtimes, new path
  const moved = await packPackage({ ...pkg, root: join(copy, 'fixture-pkg') }, { packCacheDir: false })
  t.equal(moved.hash, first.hash, 'a copy elsewhere, with other mtimes and no hard links, packs to the same hash')

  utimesSync(join(pkg.root, 'lib', 'a.js'), new Date('2020-02-02'), new Date('2020-02-02'))
  t.equal((await packPackage(pkg, { packCacheDir: false })).hash, first.hash, 'touching a file keeps the hash')

  chmodSync(join(pkg.root, 'lib', 'a.js'), 0o755)
  const executable = await packPackage(pkg, { packCacheDir: false })
  t.not(executable.hash, first.hash, 'making a file executable changes the hash')
  chmodSync(join(pkg.root, 'lib', 'a.js'), 0o664)
  t.equal((await packPackage(pkg, { packCacheDir: false })).hash, first.hash, 'group-writable or not: modes are normalised to 0644/0755')
  chmodSync(join(pkg.root, 'lib', 'a.js'), 0o600)
  t.equal((await packPackage(pkg, { packCacheDir: false })).hash, first.hash, 'private or not')
  chmodSync(join(pkg.root, 'lib', 'a.js'), 0o644)

  writeFileSync(join(pkg.root, 'lib', 'a.js'), 'module.exports = 41\n')
  t.not((await packPackage(pkg, { packCacheDir: false })).hash, first.hash, 'a content change changes the hash')
})

t.test("the tar round-trips: the package's files, links and directories, without its own node_modules", async (t) => {
  const dir = tempDir(t, 'work')
  const pkg = fixturePackage(dir)
  for (const compress of [false, true]) {
    const packed = await packPackage(pkg, { packCacheDir: false, compress })
    t.equal(packed.compressed, compress)
    const into = await extract(t, packed.bytes)
    const expected = listTree(pkg.root).filter((p) => p !== 'node_modules' && !p.startsWith('node_modules/'))
    t.same(listTree(into), expected, `${compress ? 'gzip' : 'tar'}: the same paths, the nested node_modules left out`)
    t.ok(expected.includes('lib/node_modules/private/index.js'), 'a deeper node_modules is part of the package')
    t.ok(expected.includes('empty'), 'an empty directory is kept')
    for (const path of expected) {
      const source = join(pkg.root, path)
      const stats = statSync(source)
      if (stats.isFile()) t.equal(readFileSync(join(into, path), 'utf8'), readFileSync(source, 'utf8'), `${path} content`)
    }
    t.equal(readlinkSync(join(into, 'alias.js')), 'lib/a.js', 'a symlink stays a symlink, its target as written')
    t.equal(statSync(join(into, 'bin', 'cli.js')).mode & 0o777, 0o755, 'an executable stays executable (0755)')
    t.equal(statSync(join(into, 'index.js')).mode & 0o777, 0o644)
  }
  const gz = await packPackage(pkg, { packCacheDir: false, compress: true })
  t.equal((await packPackage(pkg, { packCacheDir: false, compress: true })).hash, gz.hash, 'gzip output is deterministic too')
  t.not(gz.hash, (await packPackage(pkg, { packCacheDir: false })).hash, 'and names other bytes than the plain tar')
})

t.test('the pack cache: an unchanged package is not packed again; a changed one is', async (t) => {
  const dir = tempDir(t, 'work')
  const packCacheDir = join(tempDir(t, 'cache'), 'packs')
  const pkg = fixturePackage(dir)
  const first = await packPackage(pkg, { packCacheDir })
  t.notOk(first.cached, 'first run: packed')
  t.ok(first.file && first.file.startsWith(packCacheDir), 'kept in the pack cache')
  t.same(readFileSync(first.file!), first.bytes)
  const tarMtime = statSync(first.file!).mtimeMs

  const second = await packPackage(pkg, { packCacheDir })
  t.ok(second.cached, 'second run: from the pack cache')
  t.equal(second.hash, first.hash)
  t.same(second.bytes, first.bytes)
  t.equal(statSync(first.file!).mtimeMs, tarMtime, 'the cached tar was not rewritten')

  // A file that cannot be read would fail a real pack: a hit only stats the files.
  const unreadable = join(pkg.root, 'lib', 'a.js')
  const saved = readFileSync(unreadable)
  rmSync(unreadable)
  mkdirSync(unreadable) // the same path, now a directory: a pack would differ, a stat walk notices
  const changedType = await packPackage(pkg, { packCacheDir })
  t.notOk(changedType.cached, 'a file replaced by a directory repacks')
  rmSync(unreadable, { recursive: true })
  writeFileSync(unreadable, saved)

  utimesSync(join(pkg.root, 'index.js'), new Date('2021-01-01'), new Date('2021-01-01'))
  const touched = await packPackage(pkg, { packCacheDir })
  t.notOk(touched.cached, 'an mtime change repacks')
  t.equal(touched.hash, first.hash, '... to the same content hash')

  writeFileSync(join(pkg.root, 'index.js'), "module.exports = require('./lib/a-b.js')\n")
  const changed = await packPackage(pkg, { packCacheDir })
  t.notOk(changed.cached)
  t.not(changed.hash, first.hash, 'a content change repacks to another hash')
  t.ok((await packPackage(pkg, { packCacheDir })).cached, 'and that is cached in turn')

  t.ok((await packPackage(pkg, { packCacheDir, compress: true })).cached === false, 'compressed packs are their own cache entries')
  t.ok((await packPackage(pkg, { packCacheDir, compress: true })).cached)
})

t.test('two directories whose files have the same names, sizes and times never share a pack-cache entry', async (t) => {
  const dir = tempDir(t, 'work')
  const packCacheDir = tempDir(t, 'cache')
  const when = new Date('2022-03-04T05:06:07Z')
  const packages = ['one', 'two'].map((name, i): TracedPackage => {
    const root = join(dir, 'node_modules', name)
    write(join(root, 'index.js'), `module.exports = ${i}\n`) // same size, other content
    utimesSync(join(root, 'index.js'), when, when)
    return { name, root, version: undefined, native: false, importedBy: 'test', dependencies: {} }
  })
  const [one, two] = [await packPackage(packages[0]!, { packCacheDir }), await packPackage(packages[1]!, { packCacheDir })]
  t.notOk(two.cached, 'the second directory is packed, not taken for the first')
  t.not(one.hash, two.hash)
})

t.test('concurrent packs of one package into one pack cache leave one whole entry', async (t) => {
  const dir = tempDir(t, 'work')
  const packCacheDir = tempDir(t, 'cache')
  const pkg = fixturePackage(dir)
  const packed = await Promise.all(Array.from({ length: 6 }, () => packPackage(pkg, { packCacheDir })))
  t.equal(new Set(packed.map((p) => p.hash)).size, 1)
  t.same(readdirSync(packCacheDir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind')
  t.equal(readdirSync(packCacheDir).filter((f) => f.endsWith('.tar')).length, 1)
  const again = await packPackage(pkg, { packCacheDir })
  t.ok(again.cached)
  t.equal(sha256(readFileSync(again.file!)), again.hash, 'the cached tar is whole')
})

t.test('a package directory that cannot be read is E_PACKAGE_PACK naming the package, directory and cause', async (t) => {
  const dir = tempDir(t, 'work')
  const root = join(dir, 'node_modules', 'vanished')
  const error = (await packPackage({ name: 'vanished', root, version: undefined, native: false, importedBy: 'test', dependencies: {} }, { packCacheDir: false }).catch((e: unknown) => e)) as PackagePackError
  t.type(error, PackagePackError)
  t.equal(error.code, 'E_PACKAGE_PACK')
  t.equal(error.packageName, 'vanished')
  t.equal(error.directory, root)
  t.match(error.message, "'vanished'")
  t.match(error.message, root)
  t.match(error.message, 'ENOENT')
  t.equal((error.cause as NodeJS.ErrnoException).code, 'ENOENT')

  const pkg = fixturePackage(dir)
  const blocker = join(dir, 'not-a-directory')
  writeFileSync(blocker, '')
  const cacheError = (await packPackage(pkg, { packCacheDir: join(blocker, 'packs') }).catch((e: unknown) => e)) as PackagePackError
  t.equal(cacheError.code, 'E_PACKAGE_PACK')
  t.match(cacheError.message, 'pack cache')
})

t.test('shipPackages: real packages into a file store, the manifest, and no second put of what the store holds', async (t) => {
  const objects = tempDir(t, 'store')
  const packCacheDir = tempDir(t, 'cache')
  const traced = await traceImports(join(here, '../fixtures/trace-entry.mjs'))
  t.ok(traced.packages.some((p) => p.name === 'msgpackr') && traced.packages.some((p) => p.name === 'nanoid'))

  const store = new Store(`pack-test-${process.pid}-a`, new FileConnector({ directory: objects }))
  t.teardown(() => store.close())
  const events: ShipEvent[] = []
  const memo = createPackMemo()
  const manifest = await shipPackages(traced, store, { packCacheDir, memo, cacheDir: '/dev/shm/x-{block}', onPackage: (e) => events.push(e) })

  t.same(manifest.store, store.toConfig(), "the manifest names the store by its config")
  t.equal(manifest.cacheDir, '/dev/shm/x-{block}')
  t.equal(manifest.packages.length, traced.packages.length, 'every traced package, once')
  const byHash = new Map(manifest.packages.map((p) => [p.hash, p]))
  for (const pkg of traced.packages) {
    const packed = await packPackage(pkg, { packCacheDir })
    const shipped = byHash.get(packed.hash)
    t.ok(shipped, `${pkg.name} is shipped under its tar's hash`)
    t.equal(shipped!.name, pkg.name)
    t.equal(shipped!.version, pkg.version)
    t.equal(shipped!.size, packed.size)
    t.equal(shipped!.native ?? false, pkg.native)
    t.equal(shipped!.key.id, `${PACKAGE_KEY_PREFIX}${packed.hash}`)
    const stored = await store.get<Uint8Array>(shipped!.key as { id: string }, { serializer: 'bytes', cache: false })
    t.equal(sha256(stored), packed.hash, `the store holds ${pkg.name}'s tar as plain bytes`)
    for (const [name, root] of Object.entries(pkg.dependencies)) {
      const dependency = traced.packages.find((p) => p.root === root)!
      t.equal(shipped!.deps[name], (await packPackage(dependency, { packCacheDir })).hash, `${pkg.name} -> ${name} edge as a hash`)
    }
  }
  t.same(Object.keys(manifest.roots).sort(), ['msgpackr', 'nanoid'])
  t.equal(manifest.roots.nanoid, manifest.packages.find((p) => p.name === 'nanoid')!.hash)
  t.ok(events.length === traced.packages.length && events.every((e) => e.put && e.source === 'packed'), 'first ship: every package packed and put')

  const storedFiles = readdirSync(objects).sort()
  const readyTimes = storedFiles.filter((f) => f.endsWith('.ready')).map((f) => statSync(join(objects, f)).mtimeMs)
  t.equal(storedFiles.length, 2 * traced.packages.length, 'one object and its ready marker per package')

  // Again in this run (another app importing the same packages): nothing packed or put.
  events.length = 0
  const again = await shipPackages(traced, store, { packCacheDir, memo, onPackage: (e) => events.push(e) })
  t.same(again.packages, manifest.packages)
  t.ok(events.every((e) => e.source === 'memo' && !e.put), 'same run: from the memo, no put')

  // A later run: a new store instance on the same directory, a new memo.
  const later = new Store(`pack-test-${process.pid}-b`, new FileConnector({ directory: objects }))
  t.teardown(() => later.close())
  events.length = 0
  const third = await shipPackages(traced, later, { packCacheDir, memo: createPackMemo(), onPackage: (e) => events.push(e) })
  t.same(third.packages, manifest.packages, 'the same manifest packages (keys included)')
  t.ok(events.every((e) => e.source === 'cache' && !e.put), 'next run: from the pack cache, and the store already has every package')
  t.same(readdirSync(objects).sort(), storedFiles, 'no object added')
  t.same(storedFiles.filter((f) => f.endsWith('.ready')).map((f) => statSync(join(objects, f)).mtimeMs), readyTimes, 'none rewritten')

  // An object evicted from the store is put again.
  const nanoid = manifest.packages.find((p) => p.name === 'nanoid')!
  await later.evict(nanoid.key as { id: string })
  events.length = 0
  await shipPackages(traced, later, { packCacheDir, memo: createPackMemo(), onPackage: (e) => events.push(e) })
  t.same(events.filter((e) => e.put).map((e) => e.name), ['nanoid'], 'only the missing package is put again')
})

t.test('two versions of one package in a tree ship as two packages, each dependent pointing at its own', async (t) => {
  const dir = tempDir(t, 'work')
  const top = join(dir, 'node_modules')
  write(join(top, 'uses-v1', 'package.json'), JSON.stringify({ name: 'uses-v1', version: '1.0.0', dependencies: { shared: '^1' } }))
  write(join(top, 'uses-v2', 'package.json'), JSON.stringify({ name: 'uses-v2', version: '1.0.0', dependencies: { shared: '^2' } }))
  write(join(top, 'shared', 'package.json'), JSON.stringify({ name: 'shared', version: '1.0.0' }))
  write(join(top, 'uses-v2', 'node_modules', 'shared', 'package.json'), JSON.stringify({ name: 'shared', version: '2.0.0' }))
  const entry = join(dir, 'flow.mjs')
  writeFileSync(entry, "import a from 'uses-v1'\nimport b from 'uses-v2'\n")
  const store = new Store(`pack-test-${process.pid}-versions`, new FileConnector({ directory: tempDir(t, 'store') }))
  t.teardown(() => store.close())
  const manifest = await shipPackages(await traceImports(entry), store, { packCacheDir: tempDir(t, 'cache'), memo: createPackMemo() })
  const shared = manifest.packages.filter((p) => p.name === 'shared')
  t.same(shared.map((p) => p.version).sort(), ['1.0.0', '2.0.0'], 'two packages')
  const hashOf = (version: string): string => shared.find((p) => p.version === version)!.hash
  t.same(manifest.packages.find((p) => p.name === 'uses-v1')!.deps, { shared: hashOf('1.0.0') })
  t.same(manifest.packages.find((p) => p.name === 'uses-v2')!.deps, { shared: hashOf('2.0.0') })
  t.same(manifest.roots, { 'uses-v1': manifest.packages.find((p) => p.name === 'uses-v1')!.hash, 'uses-v2': manifest.packages.find((p) => p.name === 'uses-v2')!.hash })
  t.notOk('cacheDir' in manifest, 'no cacheDir: the workers use their default')
})

t.test('what shipPackages puts, the worker side unpacks to the same files (tar and gzip)', async (t) => {
  const dir = tempDir(t, 'work')
  const pkg = { ...fixturePackage(dir), dependencies: {} } // shipped alone
  const objects = tempDir(t, 'store')
  const expected = listTree(pkg.root).filter((p) => p !== 'node_modules' && !p.startsWith('node_modules/'))
  for (const compress of [false, true]) {
    const store = new Store(`pack-test-${process.pid}-unpack-${compress}`, new FileConnector({ directory: objects }))
    t.teardown(() => store.close())
    const manifest = await shipPackages({ packages: [pkg], roots: { [pkg.name]: pkg.root } }, store, { compress, packCacheDir: false, memo: createPackMemo() })
    t.equal(manifest.packages.length, 1)
    // a worker's store: rebuilt from the manifest's config under another name
    const worker = new Store(`pack-test-${process.pid}-worker-${compress}`, manifest.store.connector as { type: string }, { register: false })
    t.teardown(() => worker.close())
    const root = await ensureUnpacked(manifest.packages[0]!, worker, tempDir(t, 'node-cache'))
    t.same(listTree(root), expected, `${compress ? 'gzip' : 'tar'}: unpacked with the same paths`)
    t.equal(readFileSync(join(root, 'lib', 'a.js'), 'utf8'), readFileSync(join(pkg.root, 'lib', 'a.js'), 'utf8'))
    t.equal(readlinkSync(join(root, 'alias.js')), 'lib/a.js')
  }
})

t.test('cleanPackCache removes entries not used for a while and the tars nothing points at; a removed tar is packed again', async (t) => {
  const dir = tempDir(t, 'work')
  const packCacheDir = tempDir(t, 'cache')
  const used = fixturePackage(dir, 'used-pkg')
  const unused = fixturePackage(dir, 'unused-pkg')
  writeFileSync(join(unused.root, 'extra.js'), 'module.exports = 3\n') // other content, other tar
  const [a, b] = [await packPackage(used, { packCacheDir }), await packPackage(unused, { packCacheDir })]
  t.not(a.hash, b.hash)
  // the unused entry was last used long ago; a hit refreshes the used one's
  const long = new Date(Date.now() - 3_600_000)
  for (const name of readdirSync(packCacheDir).filter((n) => n.endsWith('.json'))) utimesSync(join(packCacheDir, name), long, long)
  t.ok((await packPackage(used, { packCacheDir })).cached)
  const removed = await cleanPackCache({ packCacheDir, olderThanMs: 60_000 })
  t.same(removed.map((f) => f.slice(packCacheDir.length + 1)).filter((n) => n.endsWith('.tar')), [`${b.hash}.tar`], "only the unused package's tar goes")
  t.ok((await packPackage(used, { packCacheDir })).cached, 'the used entry stays')
  t.notOk((await packPackage(unused, { packCacheDir })).cached, 'the removed one is packed again')
  t.same(await cleanPackCache({ packCacheDir: join(dir, 'no-such-cache') }), [], 'a missing cache is empty')

  // A cleanup between a run's lookup and its put: the tar is packed again for the put.
  const objects = tempDir(t, 'store')
  const store = new Store(`pack-test-${process.pid}-clean`, new FileConnector({ directory: objects }))
  t.teardown(() => store.close())
  const traced = { packages: [{ ...used, dependencies: {} }], roots: { [used.name]: used.root } }
  const memo = createPackMemo()
  const other = new Store(`pack-test-${process.pid}-clean-2`, new FileConnector({ directory: tempDir(t, 'store') }))
  t.teardown(() => other.close())
  await shipPackages(traced, other, { packCacheDir, memo }) // memoises the pack-cache hit
  t.ok(await cleanPackCache({ packCacheDir }))
  const manifest = await shipPackages(traced, store, { packCacheDir, memo })
  const stored = await store.get<Uint8Array>(manifest.packages[0]!.key as { id: string }, { serializer: 'bytes', cache: false })
  t.equal(sha256(stored), a.hash, 'the store got the right bytes')
})

t.test('a package on a network file system (files read many at once) packs to the same bytes as one on a local disk', async (t) => {
  // Which path runs is chosen by how long the walk's stats take; both are forced here.
  const { packInThread } = (await import(new URL('./pack.js', import.meta.resolve('tsflow/imports')).href)) as typeof import('../../dist/imports/pack.js')
  const dir = tempDir(t, 'work')
  const pkg = fixturePackage(dir)
  for (let i = 0; i < 300; i++) write(join(pkg.root, 'many', `m${i}.js`), `export const v = ${i}\n`)
  const local = await packInThread(pkg, { packCacheDir: false }, false)
  const remote = await packInThread(pkg, { packCacheDir: false }, true)
  t.equal(remote.hash, local.hash, 'same hash')
  t.same(remote.bytes, local.bytes, 'same bytes')
  t.equal(remote.hash, (await packPackage(pkg, { packCacheDir: false })).hash, 'and the same as packPackage chooses')
  const into = await extract(t, remote.bytes!)
  t.equal(readFileSync(join(into, 'many', 'm299.js'), 'utf8'), 'export const v = 299\n', 'the files are whole')
})
