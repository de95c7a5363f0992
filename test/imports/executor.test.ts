// The executor option proxyImports (issue 9): its config check, and the packages an app's module
// imports travelling with its tasks to the thread executor and HTEX (worker processes and worker
// threads), for an app module whose node_modules the workers cannot see when they run the task.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { DataFlowKernel, ErrorCode, HighThroughputExecutor, PackageNotFound, ProxyImportFailed, ThreadPoolExecutor, app } from 'tsflow'
import { FileConnector, LocalConnector, Store } from 'tsflow/proxy'
import { EXECUTOR_KINDS, startKernel, type ExecutorKind } from '../helpers/executors.js'
import { waitFor } from '../helpers/wait.js'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-imports-executor-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

/** A real FileConnector that can hold its puts until released and counts them. */
class GatedConnector extends FileConnector {
  puts = 0
  /** store altered bytes (their hash no longer matches the manifest) */
  corrupt = false
  private held: Promise<void> | undefined
  private release: (() => void) | undefined
  hold(): void {
    this.held = new Promise((resolve) => (this.release = resolve))
  }
  open(): void {
    this.release?.()
    this.held = undefined
  }
  override async put(bytes: Uint8Array, key?: Parameters<FileConnector['put']>[1]): ReturnType<FileConnector['put']> {
    this.puts++
    await this.held
    if (this.corrupt) bytes = Uint8Array.from(bytes, (byte, i) => (i === 0 ? byte ^ 0xff : byte))
    return super.put(bytes, key)
  }
}

// The packed-package cache across runs, here rather than in ~/.cache.
const packCacheDir = join(scratch, 'packs')

let stores = 0
function gatedStore(t: Test): { store: Store; connector: GatedConnector } {
  const connector = new GatedConnector({ directory: join(scratch, `store-${++stores}`) })
  const store = new Store(`imports-executor-${process.pid}-${stores}`, connector)
  t.teardown(() => store.close())
  return { store, connector }
}

function writePackage(root: string, name: string, manifest: Record<string, unknown>, files: Record<string, string>): void {
  const dir = join(root, 'node_modules', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js', ...manifest }))
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text)
}

/**
 * A workflow directory: app.mjs imports shout-pkg (CommonJS, which requires bang-pkg and reads a
 * text file next to itself by path); tsflow is linked in, as an installed tsflow would be.
 */
function workflowDir(): { dir: string; hide: () => void; restore: () => void } {
  const dir = mkdtempSync(join(scratch, 'flow-'))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(repo, join(dir, 'node_modules', 'tsflow'), 'dir')
  writePackage(dir, 'shout-pkg', { dependencies: { 'bang-pkg': '^1' } }, {
    'index.js':
      "const { readFileSync } = require('node:fs')\nconst { join } = require('node:path')\nconst bang = require('bang-pkg')\n" +
      "const suffix = readFileSync(join(__dirname, 'suffix.txt'), 'utf8').trim()\n" +
      'module.exports = (s) => s.toUpperCase() + suffix + bang\n',
    'suffix.txt': '-shipped\n',
  })
  writePackage(dir, 'bang-pkg', {}, { 'index.js': "module.exports = '!'\n", 'where.js': 'module.exports = __dirname\n' })
  writeFileSync(
    join(dir, 'app.mjs'),
    "import { app } from 'tsflow'\nimport shout from 'shout-pkg'\n" +
      'export const loud = app(function loud(s) { return shout(s) })\n' +
      'export const louder = app(function louder(s) { return shout(shout(s)) })\n',
  )
  writeFileSync(
    join(dir, 'ghost.mjs'),
    "import { app } from 'tsflow'\nimport { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)\n" +
      "export const haunted = app(function haunted() { return require('ghost-pkg') })\n" +
      // sent as source: no module to trace, only its list
      "export const listed = app(function listed() { return 1 }, { modules: ['missing-listed-pkg'], transport: 'source' })\n",
  )
  writeFileSync(
    join(dir, 'plain.mjs'),
    "import { app } from 'tsflow'\nexport const plainSum = app(function plainSum(a, b) { return a + b })\n" +
      "export const doubled = app((a) => a * 2, { transport: 'source', name: 'doubled' })\n",
  )
  // The package only a helper imports: the app module imports the helper (TypeScript, with a
  // type-only import of a package installed nowhere), which imports shout-pkg.
  writeFileSync(
    join(dir, 'helped.mjs'),
    "import { app } from 'tsflow'\nimport { exclaim } from './lib/exclaim.mjs'\nexport const helped = app(function helped(s) { return exclaim(s) })\n" +
      // a local file that is not there, in a branch that never runs: logged, not fatal
      "export const plugin = () => import('./plugins/not-written.mjs')\n",
  )
  mkdirSync(join(dir, 'lib'))
  writeFileSync(
    join(dir, 'lib', 'exclaim.mts'),
    "import type { Options } from 'types-installed-nowhere'\nimport shout from 'shout-pkg'\nexport const exclaim = (s: string, _o?: Options): string => `${shout(s)}?`\n",
  )
  const packages = ['shout-pkg', 'bang-pkg']
  return {
    dir,
    // The workers' view: the packages the app needs are not installed (tsflow still is).
    hide: () => packages.forEach((name) => renameSync(join(dir, 'node_modules', name), join(dir, `hidden-${name}`))),
    restore: () => packages.forEach((name) => renameSync(join(dir, `hidden-${name}`), join(dir, 'node_modules', name))),
  }
}

t.test('config errors name the option path and say what to do', async (t) => {
  const directory = join(scratch, 'config')
  const store = { name: 'imports', connector: { type: 'file', directory } }
  const local = new Store(`imports-local-${process.pid}`, new LocalConnector())
  t.teardown(() => local.close())
  const cases: [string, unknown, RegExp][] = [
    ['no store', {}, /^executors\[0\]\.proxyImports\.store is required/],
    ['a Store itself', local, /^executors\[0\]\.proxyImports must be \{ store, packages\?, \.\.\. \}, not a Store itself/],
    ['a local store', { store: local }, /^executors\[0\]\.proxyImports\.store\.connector is a 'local' connector.*workers cannot read/],
    ['a local store config', { store: { name: 'x', connector: { type: 'local' } } }, /^executors\[0\]\.proxyImports\.store\.connector is a 'local' connector/],
    ['a connector type typo', { store: { name: 'x', connector: { type: 'fiel', directory } } }, /^executors\[0\]\.proxyImports\.store\.connector\.type .*did you mean 'file'\?/],
    ['an unknown key', { store, package: 'trace' }, /^executors\[0\]\.proxyImports\.package is not a known option; did you mean 'packages'\?/],
    ['packages neither trace nor a list', { store, packages: 'all' }, /^executors\[0\]\.proxyImports\.packages must be 'trace' or a list of package names/],
    ['an empty list', { store, packages: [] }, /^executors\[0\]\.proxyImports\.packages is an empty list/],
    ['a path among modules', { store, modules: ['./lib.js'] }, /^executors\[0\]\.proxyImports\.modules\[0\] must be a package name such as 'mathjs'/],
    ['a built-in among modules', { store, modules: ['node:fs'] }, /^executors\[0\]\.proxyImports\.modules\[0\] must be a package name/],
    ['a bare built-in among modules', { store, modules: ['fs'] }, /^executors\[0\]\.proxyImports\.modules\[0\] is "fs", a Node built-in/],
    ['a relative cacheDir', { store, cacheDir: 'cache' }, /^executors\[0\]\.proxyImports\.cacheDir must be an absolute path/],
    ['an unknown placeholder', { store, cacheDir: '/tmp/{node}' }, /^executors\[0\]\.proxyImports\.cacheDir holds \{node\}; the placeholders are \{block\} and \{host\}/],
    ['a cleanup typo', { store, cleanup: 'exit' }, /^executors\[0\]\.proxyImports\.cleanup must be one of 'never', 'shutdown'/],
    ['compress not a boolean', { store, compress: 'gzip' }, /^executors\[0\]\.proxyImports\.compress must be true or false/],
    ['packCacheDir true', { store, packCacheDir: true }, /^executors\[0\]\.proxyImports\.packCacheDir must be a directory or false/],
  ]
  for (const [what, option, message] of cases) {
    for (const make of [() => new ThreadPoolExecutor({ proxyImports: option as never }), () => new HighThroughputExecutor({ proxyImports: option as never })]) {
      t.throws(() => new DataFlowKernel({ runDir: join(scratch, 'run'), executors: [make()] }), { code: ErrorCode.CONFIG, message }, `${make().type}: ${what}`)
    }
  }
  t.throws(() => app(() => 1, { modules: ['../x'] } as never), { code: ErrorCode.CONFIG, message: /options\.modules\[0\] must be a package name/ }, 'the app option modules')
  t.throws(() => app(() => 1, { module: ['x'] } as never), { code: ErrorCode.CONFIG, message: /options\.module is not a known option; did you mean 'modules'\?/ }, 'did-you-mean on the app option')
  t.doesNotThrow(() => new DataFlowKernel({ runDir: join(scratch, 'run'), executors: [new ThreadPoolExecutor({ proxyImports: { store: store as never, packages: ['shout-pkg'], modules: ['@scope/x/sub'], cacheDir: '/tmp/c-{block}-{host}', cleanup: 'shutdown', compress: true } })] }))
})

t.test('a package that cannot be traced fails the task with PackageNotFound naming it and its importer, and nothing hangs', async (t) => {
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'ghost.mjs')).href)) as Record<string, (...args: unknown[]) => unknown>
  for (const kind of ['threads', 'htex-processes'] as ExecutorKind[]) {
    const { store } = gatedStore(t)
    const kernel = await startKernel(t, kind, { proxyImports: { store, packCacheDir, cacheDir: join(scratch, `cache-ghost-${kind}`) } })
    const call = (name: string) => (mod[name] as unknown as { with: (o: object) => () => Promise<unknown> }).with({ dfk: kernel })()
    const traced = await call('haunted').then(() => undefined, (e: unknown) => e as PackageNotFound)
    t.ok(traced instanceof PackageNotFound, `${kind}: PackageNotFound`)
    t.equal(traced?.packageName, 'ghost-pkg')
    t.match(traced?.message, new RegExp(`package 'ghost-pkg' imported by .*ghost\\.mjs is not installed`))
    const listed = await call('listed').then(() => undefined, (e: unknown) => e as PackageNotFound)
    t.equal(listed?.code, ErrorCode.PACKAGE_NOT_FOUND, `${kind}: a listed package that is not installed`)
    t.match(listed?.message, /package 'missing-listed-pkg' imported by modules: \[\.\.\.\] is not installed/)
    // The failure is not remembered: a second call traces again (and fails the same way).
    await t.rejects(call('haunted') as Promise<unknown>, { code: ErrorCode.PACKAGE_NOT_FOUND })
  }
})

t.test('an app with nothing to ship runs as without the option', async (t) => {
  const { store, connector } = gatedStore(t)
  const kernel = await startKernel(t, 'threads', { proxyImports: { store, packCacheDir } })
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'plain.mjs')).href)) as Record<string, { with: (o: object) => (...args: number[]) => Promise<number> }>
  t.equal(await mod.plainSum!.with({ dfk: kernel })(2, 3), 5, 'a module that imports only tsflow')
  t.equal(await mod.doubled!.with({ dfk: kernel })(21), 42, 'an app sent as source, without modules')
  t.equal(connector.puts, 0, 'nothing was put')
})

for (const kind of EXECUTOR_KINDS) {
  t.test(`${kind}: the task imports a package only the shipped copy can satisfy`, async (t) => {
    const flow = workflowDir()
    const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
    const { store, connector } = gatedStore(t)
    const kernel = await startKernel(t, kind, { proxyImports: { store, packCacheDir, cacheDir: join(scratch, `cache-${kind}`) } })
    connector.hold()
    const loud = mod.loud!.with({ dfk: kernel })('hi')
    // The packages are read and packed; once the bytes of both are being put, the workflow's install goes away.
    await waitFor(() => connector.puts === 2, 'the puts of shout-pkg and bang-pkg')
    flow.hide()
    connector.open()
    t.equal(await loud, 'HI-shipped!', 'computed by the shipped package (its dependency and its text file too)')
    const putsAfterFirst = connector.puts
    t.equal(putsAfterFirst, 2, 'shout-pkg and bang-pkg were put once each')
    // The workflow's own install is back for tracing the second app; its packages are already in the store.
    flow.restore()
    t.equal(await mod.louder!.with({ dfk: kernel })('a'), 'A-SHIPPED!-shipped!', 'a second app sharing the packages')
    t.equal(connector.puts, putsAfterFirst, 'packed and put once for both apps')
  })
}

for (const kind of ['threads', 'htex-processes'] as ExecutorKind[]) {
  t.test(`${kind}: a package imported only by a helper module the app module imports travels too`, async (t) => {
    const flow = workflowDir()
    const mod = (await import(pathToFileURL(join(flow.dir, 'helped.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
    const { store, connector } = gatedStore(t)
    const kernel = await startKernel(t, kind, { proxyImports: { store, packCacheDir, cacheDir: join(scratch, `cache-helped-${kind}`) } })
    connector.hold()
    const helped = mod.helped!.with({ dfk: kernel })('hi')
    // Without tracing the helper nothing is put, and the task runs at once from the workflow's install.
    const first = await Promise.race([
      waitFor(() => connector.puts === 2, 'the puts of shout-pkg and bang-pkg').then(() => 'shipping'),
      helped.then(
        () => 'ran with nothing shipped',
        (e: unknown) => `failed with nothing shipped: ${(e as Error).message}`,
      ),
    ])
    t.equal(first, 'shipping', "the helper's package (and its dependency) are packed and put before the task runs")
    flow.hide()
    t.teardown(() => flow.restore())
    connector.open()
    t.equal(await helped, 'HI-shipped!?', 'the helper loaded shout-pkg from the shipped copy; the type-only import needed nothing')
    const log = readFileSync(join(kernel.runDir, 'tsflow.log'), 'utf8')
    t.match(log, /proxyImports of app helped: '\.\/plugins\/not-written\.mjs' imported by .*helped\.mjs is not traced: the file .*not-written\.mjs was not found/, 'the import tracing could not follow is logged')
  })
}

/** The unpacked copies of `name` in a node cache directory (their roots). */
function unpackedCopies(cacheDir: string, name: string): string[] {
  if (!existsSync(cacheDir)) return []
  return readdirSync(cacheDir)
    .filter((entry) => entry.startsWith(`${name}@`) && !entry.endsWith('.done') && statSync(join(cacheDir, entry)).isDirectory())
    .map((entry) => join(cacheDir, entry))
}

t.test('a second run reuses the node cache: nothing is unpacked again', async (t) => {
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
  const cacheDir = join(scratch, 'cache-reuse')
  const run = async (t: Test): Promise<string> => {
    const { store } = gatedStore(t)
    const kernel = await startKernel(t, 'htex-processes', { proxyImports: { store, packCacheDir, cacheDir } })
    return mod.loud!.with({ dfk: kernel })('again')
  }
  await t.test('first run', async (t) => t.equal(await run(t), 'AGAIN-shipped!'))
  const [copy] = unpackedCopies(cacheDir, 'shout-pkg')
  t.ok(copy, 'the first run unpacked shout-pkg into the node cache')
  const inode = statSync(join(copy!, 'suffix.txt')).ino
  await t.test('second run', async (t) => t.equal(await run(t), 'AGAIN-shipped!'))
  t.same(unpackedCopies(cacheDir, 'shout-pkg'), [copy], 'one copy still')
  t.equal(statSync(join(copy!, 'suffix.txt')).ino, inode, 'the same files: not unpacked again')
})

t.test('tasks waiting for their packages are cancelled and shut down without hanging; cleanup: shutdown leaves nothing', async (t) => {
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> & { cancel?: () => boolean } }>
  const { store, connector } = gatedStore(t)
  const cacheDir = join(scratch, 'cache-cleanup')
  const kernel = await startKernel(t, 'threads', { proxyImports: { store, packCacheDir, cacheDir, cleanup: 'shutdown' } })
  connector.hold()
  const waiting = mod.loud!.with({ dfk: kernel })('x')
  await waitFor(() => connector.puts === 2, 'the puts of shout-pkg and bang-pkg')
  t.ok(waiting.cancel!(), 'a task waiting for its packages can be cancelled')
  await t.rejects(waiting, { code: ErrorCode.CANCELLED })
  connector.open()
  t.equal(await mod.louder!.with({ dfk: kernel })('y'), 'Y-SHIPPED!-shipped!')
  t.ok(unpackedCopies(cacheDir, 'shout-pkg').length > 0, 'unpacked on this host')
  t.ok(readdirSync(connector.directory).length > 0, 'and in the store')
  await kernel.cleanup({ deadlineMs: 5000 })
  t.same(unpackedCopies(cacheDir, 'shout-pkg'), [], 'cleanup: shutdown removed the unpacked copies')
  t.same(readdirSync(connector.directory), [], 'and evicted the packed packages')
})

t.test('shutdown while a task waits for its packages: it fails with ShutdownError, nothing hangs', async (t) => {
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
  const { store, connector } = gatedStore(t)
  const kernel = await startKernel(t, 'htex-processes', { proxyImports: { store, packCacheDir, cacheDir: join(scratch, 'cache-shutdown') } })
  connector.hold()
  const waiting = mod.loud!.with({ dfk: kernel })('x')
  await waitFor(() => connector.puts === 2, 'the puts of shout-pkg and bang-pkg')
  const stopped = kernel.cleanup({ deadlineMs: 100 })
  await t.rejects(waiting, { code: ErrorCode.SHUTDOWN })
  connector.open()
  await stopped
})

for (const kind of ['threads', 'htex-processes'] as ExecutorKind[]) {
  t.test(`${kind}: a shipped package the worker cannot unpack fails the task with ProxyImportFailed naming it`, async (t) => {
    const flow = workflowDir()
    const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
    const { store, connector } = gatedStore(t)
    connector.corrupt = true
    const kernel = await startKernel(t, kind, { proxyImports: { store, packCacheDir, cacheDir: join(scratch, `cache-corrupt-${kind}`) } })
    const error = await mod.loud!.with({ dfk: kernel })('x').then(() => undefined, (e: unknown) => e as ProxyImportFailed)
    t.ok(error instanceof ProxyImportFailed, `ProxyImportFailed (got ${error?.name}: ${error?.message})`)
    t.match(error?.packageName, /^shout-pkg@1\.0\.0$/)
    t.match(error?.message, /shipped package 'shout-pkg@1\.0\.0' imported by .*app\.mjs .*is not available on this node: .*do not match the manifest's sha256/)
  })
}

t.test('packages: a list ships exactly those (and their dependencies); an app sent as source ships its modules, found from the working directory', async (t) => {
  const flow = workflowDir()
  const mod = (await import(pathToFileURL(join(flow.dir, 'app.mjs')).href)) as Record<string, { with: (o: object) => (s: string) => Promise<string> }>
  const cwd = process.cwd()
  process.chdir(flow.dir)
  t.teardown(() => process.chdir(cwd))
  const { store, connector } = gatedStore(t)
  const cacheDir = join(scratch, 'cache-listed')
  const kernel = await startKernel(t, 'threads', { proxyImports: { store, packCacheDir, cacheDir, packages: ['shout-pkg'] } })
  const where = app(
    async function whereBang() {
      const name = 'bang-pkg/where.js'
      return ((await import(name)) as { default: string }).default
    },
    { transport: 'source', modules: ['bang-pkg'] },
  )
  t.equal(await mod.loud!.with({ dfk: kernel })('ok'), 'OK-shipped!')
  t.equal(connector.puts, 2, 'shout-pkg and its dependency bang-pkg')
  const loadedFrom = await where.with({ dfk: kernel })()
  t.ok(loadedFrom.startsWith(`${cacheDir}/bang-pkg@1.0.0-`), `the source app imported bang-pkg from the node cache (${loadedFrom})`)
  t.equal(connector.puts, 2, 'nothing new to put')
})
