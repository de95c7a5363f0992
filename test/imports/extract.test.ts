// The extractor of packed packages (issue 9, src/imports/extract.ts) through the node cache's
// real path: real packages from node_modules packed by packPackage, put into a real FileConnector
// store and unpacked by ensureUnpacked; hostile archives built byte by byte here, each refused
// with an error naming the entry and why, and nothing written outside the cache.
import { createHash, randomUUID } from 'node:crypto'
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import { PackageUnpackError } from 'tsflow'
import { ensureUnpacked, findPackageRoot, packPackage, type TracedPackage } from 'tsflow/imports'
import type { ShippedPackageWire } from 'tsflow/protocol'
import { FileConnector, Store } from 'tsflow/proxy'
// Internal (not exported by tsflow/imports): only for its yielding option and the sync variant.
import { extractTar, extractTarSync } from '../../dist/imports/extract.js'

const umask = process.umask()

function workspace(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-extract-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

interface Node {
  type: 'file' | 'directory' | 'symlink'
  mode?: number
  content?: string
}

// What a directory holds, by relative path: types, modes (files and directories), contents, link
// targets. `source`: as packPackage sees it (the root's node_modules left out, modes reduced to
// 0644/0755, then the umask a writer meets).
function tree(root: string, source: boolean): Map<string, Node> {
  const nodes = new Map<string, Node>()
  const visit = (relative: string): void => {
    for (const name of readdirSync(relative ? join(root, relative) : root)) {
      if (source && relative === '' && name === 'node_modules') continue
      const path = relative ? `${relative}/${name}` : name
      const stats = lstatSync(join(root, path))
      if (stats.isSymbolicLink()) nodes.set(path, { type: 'symlink', content: readlinkSync(join(root, path)) })
      else if (stats.isDirectory()) {
        nodes.set(path, { type: 'directory', mode: source ? 0o755 & ~umask : stats.mode & 0o7777 })
        visit(path)
      } else if (stats.isFile()) {
        const mode = source ? ((stats.mode & 0o111) !== 0 ? 0o755 : 0o644) & ~umask : stats.mode & 0o7777
        nodes.set(path, { type: 'file', mode, content: sha256(readFileSync(join(root, path))) })
      }
    }
  }
  visit('')
  return nodes
}

function newStore(t: Test, dir: string): Store {
  const store = new Store(`extract-${randomUUID()}`, new FileConnector({ directory: join(dir, 'store') }), { register: false })
  t.teardown(() => store.close())
  return store
}

async function ship(store: Store, name: string, bytes: Uint8Array, hash = sha256(bytes)): Promise<ShippedPackageWire> {
  const key = await store.put(bytes, { serializer: 'bytes' })
  return { name, version: '1.0.0', hash, key: { ...key }, size: bytes.byteLength, deps: {} }
}

function real(name: string): TracedPackage {
  const root = findPackageRoot(name, process.cwd())
  if (!root) throw new Error(`${name} is not installed in this checkout`)
  return { name, root, version: undefined, native: false, importedBy: 'test', dependencies: {} }
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
}

/** A package with what real ones rarely have together: links (inside and pointing out), long and non-ASCII names, deep paths, an executable, an empty file and directory. */
function oddPackage(dir: string): TracedPackage {
  const root = join(dir, 'node_modules', 'odd-pkg')
  write(join(root, 'package.json'), JSON.stringify({ name: 'odd-pkg', version: '1.0.0' }))
  write(join(root, 'lib', 'a.js'), 'module.exports = 1\n')
  write(join(root, 'bin', 'cli.js'), '#!/usr/bin/env node\n')
  chmodSync(join(root, 'bin', 'cli.js'), 0o775)
  write(join(root, 'empty.txt'), '')
  mkdirSync(join(root, 'empty-dir'))
  // > 100 bytes in one name (pax path), and > 255 bytes of path (more than ustar's prefix + name)
  write(join(root, 'long', `${'n'.repeat(120)}.js`), 'module.exports = "long name"\n')
  const deep = Array.from({ length: 6 }, (_, i) => `directory-level-${i}-${'d'.repeat(40)}`).join('/')
  write(join(root, deep, 'deep.js'), 'module.exports = "deep"\n')
  write(join(root, 'données', 'ünïcödé-名前.js'), 'module.exports = "utf8"\n')
  symlinkSync('lib/a.js', join(root, 'alias.js'))
  symlinkSync('../lib', join(root, 'bin', 'lib-link'))
  symlinkSync(`../${'n'.repeat(120)}/target-with-a-long-name-${'t'.repeat(60)}`, join(root, 'long', 'long-link'))
  symlinkSync('../../outside-of-the-package', join(root, 'dangling'))
  write(join(root, 'node_modules', 'dep', 'index.js'), 'module.exports = "not packed"\n')
  return { name: 'odd-pkg', root, version: '1.0.0', native: false, importedBy: 'test', dependencies: {} }
}

t.test('round trip: real packages and an odd one, packed by packPackage, unpacked identical to their source (files, contents, modes, links)', async (t) => {
  const dir = workspace(t)
  const store = newStore(t, dir)
  const packages = [real('tar'), real('tsx'), real('es-module-lexer'), real('acorn'), oddPackage(dir)]
  for (const pkg of packages) {
    const packed = await packPackage(pkg, { packCacheDir: false })
    const root = await ensureUnpacked(await ship(store, pkg.name, packed.bytes), store, join(dir, 'cache'))
    const want = tree(pkg.root, true)
    const got = tree(root, false)
    t.ok(want.size > 3, `${pkg.name}: ${want.size} entries`)
    t.same([...got.keys()].sort(), [...want.keys()].sort(), `${pkg.name}: the same paths`)
    t.same(Object.fromEntries(got), Object.fromEntries(want), `${pkg.name}: the same types, modes, contents and link targets`)
  }
  const odd = join(dir, 'cache', readdirSync(join(dir, 'cache')).find((name) => name.startsWith('odd-pkg@') && !name.endsWith('.done'))!)
  t.equal(readFileSync(join(odd, 'alias.js'), 'utf8'), 'module.exports = 1\n', 'a link inside the package works where it is unpacked')
  t.equal(lstatSync(join(odd, 'bin', 'cli.js')).mode & 0o111, 0o111 & ~umask, 'the executable stays executable')
  t.notOk(existsSync(join(odd, 'node_modules')), "the package's own node_modules is not in its tar")
})

t.test('gzip: a compressed pack unpacks the same, hashed as the .tar.gz or as the tar inside', async (t) => {
  const dir = workspace(t)
  const store = newStore(t, dir)
  const pkg = oddPackage(dir)
  const plain = await packPackage(pkg, { packCacheDir: false })
  const packed = await packPackage(pkg, { compress: true, packCacheDir: false })
  t.same([...packed.bytes.subarray(0, 2)], [0x1f, 0x8b])
  const want = Object.fromEntries(tree(pkg.root, true))
  const ofGz = await ensureUnpacked(await ship(store, 'odd-pkg', packed.bytes), store, join(dir, 'c1'))
  t.same(Object.fromEntries(tree(ofGz, false)), want, 'hash of the .tar.gz: the extractor inflates it')
  const ofTar = await ensureUnpacked(await ship(store, 'odd-pkg', packed.bytes, plain.hash), store, join(dir, 'c2'))
  t.same(Object.fromEntries(tree(ofTar, false)), want, 'hash of the tar inside')
  const sync = join(dir, 'sync')
  const result = extractTarSync(packed.bytes, sync)
  t.same(Object.fromEntries(tree(sync, false)), want, 'extractTarSync inflates too')
  t.match(result, { symlinks: 4 })
})

t.test('extractTar gives the event loop turns while it works (the lock heartbeat runs)', async (t) => {
  const dir = workspace(t)
  const pkg = real('tar')
  const packed = await packPackage(pkg, { packCacheDir: false })
  let turns = 0
  let running = true
  const spin = (): void => {
    turns++
    if (running) setImmediate(spin)
  }
  setImmediate(spin)
  const result = await extractTar(packed.bytes, join(dir, 'out'), { yieldMs: 0 })
  running = false
  t.ok(result.files > 50, `${result.files} files`)
  t.ok(turns >= result.files / 2, `other callbacks ran between entries (${turns} turns for ${result.files} files)`)
})

// ---------------------------------------------------------------------------------------------
// Archives built byte by byte

interface Header {
  type?: string
  size?: number
  mode?: number
  linkpath?: string
  prefix?: string
}

function octal(block: Buffer, at: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, at, length, 'latin1')
}

function header(name: string, { type = '0', size = 0, mode = 0o644, linkpath = '', prefix = '' }: Header = {}): Buffer {
  const block = Buffer.alloc(512)
  block.write(name, 0, 100, 'utf8')
  octal(block, 100, 8, mode)
  octal(block, 108, 8, 0)
  octal(block, 116, 8, 0)
  octal(block, 124, 12, size)
  octal(block, 136, 12, 946684800)
  block.write(type, 156, 1, 'latin1')
  block.write(linkpath, 157, 100, 'utf8')
  block.write('ustar\u000000', 257, 8, 'latin1')
  block.write(prefix, 345, 155, 'utf8')
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1')
  return block
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)])
}

const file = (name: string, content: string, options: Header = {}): Buffer =>
  Buffer.concat([header(name, { ...options, size: Buffer.byteLength(content) }), padded(Buffer.from(content))])
const directory = (name: string): Buffer => header(name, { type: '5', mode: 0o755 })
const symlink = (name: string, target: string): Buffer => header(name, { type: '2', linkpath: target, mode: 0o777 })

function pax(records: Record<string, string>): Buffer {
  const body = Object.entries(records)
    .map(([key, value]) => {
      const rest = ` ${key}=${value}\n`
      let length = Buffer.byteLength(rest) + 1
      while (String(length).length + Buffer.byteLength(rest) !== length) length++
      return `${length}${rest}`
    })
    .join('')
  return Buffer.concat([header('PaxHeader/x', { type: 'x', size: Buffer.byteLength(body) }), padded(Buffer.from(body))])
}

const archive = (...entries: Buffer[]): Buffer => Buffer.concat([...entries, Buffer.alloc(1024)])

interface Hostile {
  dir: string
  cacheDir: string
  outside: string
  unpack: (name: string, bytes: Buffer) => Promise<unknown>
}

function hostile(t: Test): Hostile {
  const dir = workspace(t)
  const store = newStore(t, dir)
  const cacheDir = join(dir, 'cache')
  const outside = join(dir, 'outside')
  mkdirSync(outside)
  writeFileSync(join(outside, 'victim.txt'), 'untouched\n')
  const unpack = async (name: string, bytes: Buffer): Promise<unknown> => ensureUnpacked(await ship(store, name, bytes), store, cacheDir).catch((error: unknown) => error)
  return { dir, cacheDir, outside, unpack }
}

// The refusal is an E_PACKAGE_UNPACK naming the package, the entry and the reason; the cache holds
// nothing (no temp dir, lock or root) and the outside directory only its victim, unchanged.
function refused(t: Test, h: Hostile, error: unknown, entry: string, reason: RegExp): void {
  t.type(error, PackageUnpackError, 'a PackageUnpackError')
  const message = error instanceof Error ? error.message : `not refused: ${String(error)}`
  t.match(message, /^cannot unpack package '/, 'names the package')
  t.ok(message.includes(`entry '${entry}'`), `names the entry '${entry}': ${message}`)
  t.match(message, reason, 'says why')
  t.same(readdirSync(h.cacheDir), [], 'nothing left in the cache')
  t.same(readdirSync(h.outside), ['victim.txt'], 'nothing written outside')
  t.equal(readFileSync(join(h.outside, 'victim.txt'), 'utf8'), 'untouched\n')
  t.same(readdirSync(h.dir).sort(), ['cache', 'outside', 'store'], 'nothing written beside the cache')
}

t.test('hostile archives are refused, naming the entry and why, with nothing written outside', async (t) => {
  const h = hostile(t)
  const ok = file('package.json', '{"name":"evil"}')

  refused(t, h, await h.unpack('abs', archive(ok, file(join(h.outside, 'abs.txt'), 'pwned'))), join(h.outside, 'abs.txt'), /refused: .*an absolute path/)
  refused(t, h, await h.unpack('dotdot', archive(ok, file('../../outside/x.txt', 'pwned'))), '../../outside/x.txt', /a path with a '\.\.' segment/)
  refused(t, h, await h.unpack('dotdot-inner', archive(ok, file('lib/../../../outside/x.txt', 'pwned'))), 'lib/../../../outside/x.txt', /'\.\.' segment/)
  // A harmless ustar name, the real path in a pax header.
  refused(t, h, await h.unpack('pax-dotdot', archive(ok, pax({ path: '../../outside/x.txt' }), file('harmless.txt', 'pwned'))), '../../outside/x.txt', /'\.\.' segment/)
  // A link to a directory inside, then a file through it.
  refused(t, h, await h.unpack('through-link', archive(ok, directory('lib/'), symlink('link', 'lib'), file('link/x.js', 'x'))), 'link/x.js', /its parent 'link' is a symbolic link of this archive/)
  // A link pointing outside (kept as written), then writing into it, deeper, and onto it.
  refused(t, h, await h.unpack('out-link', archive(ok, symlink('out', h.outside), file('out/pwned.txt', 'pwned'))), 'out/pwned.txt', /parent 'out' is a symbolic link/)
  refused(t, h, await h.unpack('out-link-deep', archive(ok, symlink('out', '../../../outside'), file('out/a/b/pwned.txt', 'pwned'))), 'out/a/b/pwned.txt', /parent 'out' is a symbolic link/)
  refused(t, h, await h.unpack('onto-link', archive(ok, symlink('victim', join(h.outside, 'victim.txt')), file('victim', 'pwned'))), 'victim', /appears twice/)
  refused(t, h, await h.unpack('dir-onto-link', archive(ok, symlink('d', h.outside), directory('d/'))), 'd/', /a directory where the archive already has a symbolic link/)
  // Special files.
  refused(t, h, await h.unpack('chardev', archive(ok, header('dev/null', { type: '3' }))), 'dev/null', /a character device: only files, directories and symbolic links/)
  refused(t, h, await h.unpack('blockdev', archive(ok, header('sda', { type: '4' }))), 'sda', /a block device/)
  refused(t, h, await h.unpack('fifo', archive(ok, header('pipe', { type: '6' }))), 'pipe', /a FIFO/)
  refused(t, h, await h.unpack('hardlink-out', archive(ok, header('h', { type: '1', linkpath: join(h.outside, 'victim.txt') }))), 'h', /a hard link to '.*victim.txt', which is not a regular file earlier in this archive/)

})

// A damaged archive: E_PACKAGE_UNPACK saying it is not a valid tar, where and why; nothing left.
function damaged(t: Test, h: Hostile, error: unknown, where: RegExp, reason: RegExp): void {
  t.type(error, PackageUnpackError, 'a PackageUnpackError')
  const message = error instanceof Error ? error.message : `not refused: ${String(error)}`
  t.match(message, /are not a valid tar archive/, message)
  t.match(message, where, 'says where')
  t.match(message, reason, 'says why')
  t.same(readdirSync(h.cacheDir), [], 'nothing left in the cache')
  t.same(readdirSync(h.outside), ['victim.txt'], 'nothing written outside')
}

t.test('damaged archives: a bad checksum and truncation are errors, not short files', async (t) => {
  const h = hostile(t)
  const ok = file('package.json', '{"name":"damaged"}')
  const second = file('lib/a.js', 'module.exports = 1\n')
  const bad = archive(ok, second)
  bad[1034] = bad[1034]! ^ 0x01 // a byte of the second header's name
  damaged(t, h, await h.unpack('checksum', bad), /: at byte 1024: a header/, /checksum does not match/)
  damaged(t, h, await h.unpack('short-data', Buffer.concat([ok, header('lib/big.js', { size: 1000 }), Buffer.alloc(512, 0x61)])), /entry 'lib\/big.js' at byte 1024/, /its data \(1000 bytes\) runs past the end of the archive \(2048 bytes\): truncated/)
  damaged(t, h, await h.unpack('short-header', Buffer.concat([ok, second.subarray(0, 300)])), /at byte 1024/, /only 300 bytes where a 512-byte header belongs: truncated/)
  damaged(t, h, await h.unpack('no-end', Buffer.concat([ok, second])), /at byte 2048/, /ends without its end-of-archive block: truncated/)
  damaged(t, h, await h.unpack('bad-pax', archive(ok, Buffer.concat([header('PaxHeader/x', { type: 'x', size: 12 }), padded(Buffer.from('99 path=abc\n'))]), second)), /at byte 1024/, /a malformed pax record/)
  damaged(t, h, await h.unpack('gzip', Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(100, 7)])), /: at byte 0: gzip/, /gzip data that does not inflate/)
})

t.test('modes are reduced to 0644/0755; GNU long names, pax sizes and hard links (as copies) are read', async (t) => {
  const h = hostile(t)
  const longName = `long/${'g'.repeat(150)}.js`
  const bytes = archive(
    file('package.json', '{"name":"modes"}'),
    file('setuid', '#!/bin/sh\n', { mode: 0o4777 }),
    file('private', 'p\n', { mode: 0o600 }),
    header('wide/', { type: '5', mode: 0o1777 }),
    // GNU: the long name in an 'L' entry before its file, whose own name is cut
    Buffer.concat([header('././@LongLink', { type: 'L', size: longName.length + 1 }), padded(Buffer.from(`${longName}\0`))]),
    file(longName.slice(0, 99), 'gnu long name\n'),
    // pax: the size of the next entry overrides its header's
    pax({ size: '5', path: 'pax-sized.txt' }),
    Buffer.concat([header('ignored-name', { size: 0 }), padded(Buffer.from('sized'))]),
    header('copy-of-setuid', { type: '1', linkpath: 'setuid' }),
    header('prefixed.js', { prefix: 'in/the/prefix' }),
  )
  const root = (await h.unpack('modes', bytes)) as string
  t.type(root, 'string', String(root))
  const mode = (path: string): number => lstatSync(join(root, path)).mode & 0o7777
  t.equal(mode('setuid'), 0o755 & ~umask, 'setuid dropped, executable kept')
  t.equal(mode('private'), 0o644 & ~umask, 'a file without execute bits is 0644')
  t.equal(mode('wide'), 0o755 & ~umask, 'a directory is 0755 (no sticky or world-writable bit)')
  t.equal(readFileSync(join(root, longName), 'utf8'), 'gnu long name\n')
  t.equal(readFileSync(join(root, 'pax-sized.txt'), 'utf8'), 'sized')
  t.notOk(existsSync(join(root, 'ignored-name')))
  t.equal(readFileSync(join(root, 'copy-of-setuid'), 'utf8'), '#!/bin/sh\n', 'a hard link is a copy of the earlier file')
  t.not(lstatSync(join(root, 'copy-of-setuid')).ino, lstatSync(join(root, 'setuid')).ino, 'not the same inode')
  t.equal(mode('copy-of-setuid'), 0o755 & ~umask)
  t.ok(existsSync(join(root, 'in', 'the', 'prefix', 'prefixed.js')), "ustar's prefix field is read")
})
