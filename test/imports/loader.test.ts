// Lazy loading of proxy imports (issue 9): real tar packages in a real file store, a hand-written
// manifest, and child processes (main thread, worker thread, under tsx) that import an app module
// from a directory without node_modules. Two packages sit behind FIFOs in the store, so they can
// only be unpacked once the child opens their gate: that shows the app's import did not wait for
// them, and that a dynamic import and a blocking require wait for exactly the package they need.
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { c as createTar } from 'tar'
import type { ImportsWire, ShippedPackageWire } from 'tsflow/protocol'
import { FileConnector } from 'tsflow/proxy'

const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..', '..')
const child = join(repo, 'test', 'fixtures', 'proxy-imports-child.mjs')
const tsxUrl = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const typeScriptLoader = pathToFileURL(join(repo, 'dist', 'runtime', 'typescript-loader.js')).href

interface Source {
  name: string
  version: string
  manifest?: Record<string, unknown>
  files: Record<string, string>
}

const sources: Record<string, Source> = {
  leaf1: { name: 'leaf', version: '1.0.0', manifest: { main: 'index.js' }, files: { 'index.js': "module.exports = { version: '1.0.0' }\n" } },
  leaf2: { name: 'leaf', version: '2.0.0', manifest: { main: 'index.js' }, files: { 'index.js': "module.exports = { version: '2.0.0' }\n" } },
  esm: {
    name: 'esm-pkg',
    version: '1.0.0',
    manifest: { type: 'module', exports: { '.': './index.js', './sub': './sub.js' } },
    files: {
      'index.js': "import leaf from 'leaf'\nexport const who = 'esm-pkg'\nexport const leafOfEsm = leaf.version\n",
      'sub.js': "export default 'esm-sub'\n",
    },
  },
  cond: {
    name: 'cond',
    version: '1.0.0',
    manifest: { exports: { '.': { import: './esm.mjs', require: './cjs.cjs' } } },
    files: { 'esm.mjs': "export const kind = 'import'\n", 'cjs.cjs': "exports.kind = 'require'\n" },
  },
  cjsMain: {
    name: 'cjs-main',
    version: '1.0.0',
    manifest: { main: 'lib/main.js' },
    files: { 'lib/main.js': "module.exports = { who: 'cjs-main', leaf: require('leaf').version }\n", 'extra.js': "module.exports = 'cjs-extra'\n" },
  },
  scoped: { name: '@sc/scoped', version: '1.0.0', manifest: { main: 'lib/index.js' }, files: { 'lib/index.js': 'module.exports = { scoped: true }\n' } },
  gated: { name: 'gated', version: '1.0.0', manifest: { type: 'module', main: 'index.js' }, files: { 'index.js': "export const value = 'gated'\n" } },
  gatedCjs: { name: 'gated-cjs', version: '1.0.0', files: { 'index.js': "module.exports = { value: 'gated-cjs' }\n" } },
  unused: { name: 'unused', version: '1.0.0', files: { 'index.js': 'module.exports = 1\n' } },
  two: { name: 'two', version: '1.0.0', manifest: { type: 'module', exports: './index.js' }, files: { 'index.js': "export const value = 'two'\n" } },
  broken: { name: 'broken', version: '1.0.0', files: { 'index.js': 'module.exports = 1\n' } },
}

const appSource = (typeScript: boolean): string => `
import { who, leafOfEsm } from 'esm-pkg'
import sub from 'esm-pkg/sub'
import { kind } from 'cond'
import cjsMain from 'cjs-main'
import leaf from 'leaf'
import scoped from '@sc/scoped'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
${typeScript ? "const language: string = 'typescript'" : "const language = 'javascript'"}
export const staticSeen = { who, sub, kind, cjsMain, leaf: leaf.version, leafOfEsm, scoped: scoped.scoped, language }
export function viaRequire() {
  return { cond: require('cond').kind, main: require('cjs-main'), extra: require('cjs-main/extra'), leaf: require('leaf').version, scoped: require('@sc/scoped').scoped }
}
export async function viaDynamic() { return (await import('gated')).value }
export function viaGatedRequire() { return require('gated-cjs').value }
export async function viaSecond() { return (await import('two')).value }
export async function viaBroken() { return import('broken') }
export function viaBrokenRequire() { return require('broken') }
`

function scratch(t: Test, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  if (!process.env.LOADER_TEST_KEEP) t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Tarball {
  source: Source
  file: string
  hash: string
  size: number
}

/** Each source as a tar of its files (paths relative to the package root, as unpack.ts expects), named by its sha256. */
function buildTars(dir: string): Record<string, Tarball> {
  const tars: Record<string, Tarball> = {}
  for (const [id, source] of Object.entries(sources)) {
    const root = join(dir, id, 'package')
    mkdirSync(root, { recursive: true })
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: source.name, version: source.version, ...source.manifest }))
    for (const [file, text] of Object.entries(source.files)) {
      mkdirSync(dirname(join(root, file)), { recursive: true })
      writeFileSync(join(root, file), text)
    }
    const file = join(dir, `${id}.tar`)
    createTar({ sync: true, cwd: root, file, portable: true }, ['package.json', ...Object.keys(source.files)])
    const bytes = readFileSync(file)
    tars[id] = { source, file, hash: createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength }
  }
  return tars
}

const tarDir = mkdtempSync(join(tmpdir(), 'tsflow-loader-tars-'))
if (!process.env.LOADER_TEST_KEEP) t.teardown(() => rmSync(tarDir, { recursive: true, force: true }))
let built: Record<string, Tarball> | undefined
function tarballs(): Record<string, Tarball> {
  built ??= buildTars(tarDir)
  return built
}

interface Run {
  dir: string
  configPath: string
  cacheDir: string
}

/** A fresh store (gated packages as FIFOs), cache dir, app module and child config. */
async function prepareRun(t: Test, typeScript: boolean): Promise<Run> {
  const tars = tarballs()
  const dir = scratch(t, 'tsflow-loader-run-')
  const storeDir = join(dir, 'store')
  const connector = new FileConnector({ directory: storeDir })
  const gates: Record<string, { fifo: string; tar: string }> = {}
  const shipped: Record<string, ShippedPackageWire> = {}
  for (const [id, tar] of Object.entries(tars)) {
    const key = { id: id === 'broken' ? 'never-stored' : `pkg-${tar.hash}` }
    const deps: Record<string, string> = id === 'esm' || id === 'cjsMain' ? { leaf: tars.leaf2!.hash } : {}
    shipped[id] = { name: tar.source.name, version: tar.source.version, hash: tar.hash, key, size: tar.size, deps }
    if (id === 'broken') continue
    if (id === 'gated' || id === 'gatedCjs') {
      // A FIFO behind a ready marker: the store's read blocks until the child writes the bytes.
      execFileSync('mkfifo', [join(storeDir, key.id)])
      writeFileSync(join(storeDir, `${key.id}.ready`), '')
      gates[tar.source.name] = { fifo: join(storeDir, key.id), tar: tar.file }
    } else await connector.put(readFileSync(tar.file), key)
  }
  const cacheDir = join(dir, 'cache')
  const store = { name: 'loader-test', connector: connector.toConfig(), cacheSize: 0, serializer: 'bytes' }
  const { two, ...first } = shipped
  const manifest: ImportsWire = {
    store,
    cacheDir,
    packages: Object.values(first),
    roots: Object.fromEntries(Object.entries(first).filter(([id]) => id !== 'leaf2').map(([, pkg]) => [pkg.name, pkg.hash])),
  }
  const second: ImportsWire = { store, cacheDir, packages: [two!], roots: { two: two!.hash } }
  const appDir = join(dir, 'app')
  mkdirSync(appDir)
  // .mts: ESM under tsx (a .ts file outside a "type": "module" package would be compiled to CommonJS)
  const appFile = join(appDir, typeScript ? 'app.mts' : 'app.mjs')
  writeFileSync(appFile, appSource(typeScript))
  const configPath = join(dir, 'config.json')
  writeFileSync(
    configPath,
    JSON.stringify({
      importsUrl: pathToFileURL(join(repo, 'dist', 'imports', 'index.js')).href,
      unpackUrl: pathToFileURL(join(repo, 'dist', 'imports', 'unpack.js')).href,
      tsflowUrl: pathToFileURL(join(repo, 'dist', 'index.js')).href,
      serializeErrorsUrl: pathToFileURL(join(repo, 'dist', 'serialize', 'errors.js')).href,
      appUrl: pathToFileURL(appFile).href,
      cacheDir,
      manifest,
      second,
      gates,
    }),
  )
  return { dir, configPath, cacheDir }
}

/** Runs the child in `dir` (no node_modules above it) and returns the JSON it printed. */
async function runChild(t: Test, run: Run, where: 'main' | 'thread', execArgv: string[] = []): Promise<Record<string, unknown>> {
  const proc = spawn(process.execPath, [...execArgv, child, run.configPath, where], {
    cwd: run.dir,
    // The gates block libuv pool threads (the store's read, the child's write) while a task needs a few more.
    env: { ...process.env, UV_THREADPOOL_SIZE: '16', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  // A child that hangs (an import waiting for ever) fails its test instead of the whole file.
  const timer = setTimeout(() => proc.kill('SIGKILL'), 90_000)
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve))
  clearTimeout(timer)
  t.equal(code, 0, `child exits cleanly${stderr ? `; stderr: ${stderr}` : ''}`)
  const line = stdout.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    t.fail(`child printed no JSON: ${stdout} ${stderr}`)
    return {}
  }
}

function checkOutcome(t: Test, out: Record<string, unknown>, language: string): void {
  t.same(
    out.static,
    { who: 'esm-pkg', sub: 'esm-sub', kind: 'import', cjsMain: { who: 'cjs-main', leaf: '2.0.0' }, leaf: '1.0.0', leafOfEsm: '2.0.0', scoped: true, language },
    'static imports: exports map and subpath, the import condition, a scoped name, a CommonJS main whose require follows its deps edge, and the app and a package each see their own version of leaf',
  )
  t.equal(out.gatedBeforeCall, false, 'a package only the function imports was not unpacked for the app module')
  t.equal(out.gatedCjsBeforeCall, false, 'nor a package only the function requires')
  t.same(out.require, { cond: 'require', main: { who: 'cjs-main', leaf: '2.0.0' }, extra: 'cjs-extra', leaf: '1.0.0', scoped: true }, 'require: the require condition, main, a subpath, the roots version, a scoped name')
  t.equal(out.dynamic, 'gated', 'a dynamic import inside the function waits for its package')
  t.equal(out.requireWaited, 'gated-cjs', 'a require inside the function blocks until its package is unpacked')
  t.equal(out.second, 'two', 'a second manifest adds its packages')
  for (const [what, key] of [
    ['import', 'brokenImport'],
    ['require', 'brokenRequire'],
  ] as const) {
    const error = out[key] as { name?: string; code?: string; message?: string; tsflow?: boolean; wireTsflow?: boolean }
    t.equal(error?.code, 'E_PROXY_IMPORT', `a failed unpack fails the ${what} with E_PROXY_IMPORT`)
    t.equal(error?.name, 'ProxyImportFailed', `${what}: the error's name`)
    t.equal(error?.wireTsflow, true, `${what}: sent to the workflow as a task's error, it is a ProxyImportFailed there`)
    t.equal(error?.tsflow, true, `${what}: instanceof ProxyImportFailed (after importFailure for the loader thread's error)`)
    t.match(error?.message ?? '', /shipped package 'broken@1\.0\.0'/, `${what}: the message names the package`)
    t.match(error?.message ?? '', /app[/\\]app\.m(js|ts)/, `${what}: and the app's module`)
    t.match(error?.message ?? '', /never-stored/, `${what}: and why (the store has no such object)`)
  }
  t.equal(out.unusedUnpacked, true, 'a package nothing imports is still unpacked in the background')
}

t.test('ESM and CommonJS imports from the node cache, in a worker process main thread', async (t) => {
  const run = await prepareRun(t, false)
  const out = await runChild(t, run, 'main')
  checkOutcome(t, out, 'javascript')
})

t.test('the same in a worker thread (hooks registered from that thread)', async (t) => {
  const run = await prepareRun(t, false)
  const out = await runChild(t, run, 'thread')
  checkOutcome(t, out, 'javascript')
})

t.test('a TypeScript app module under tsx: both loaders chain (main thread)', async (t) => {
  const run = await prepareRun(t, true)
  const out = await runChild(t, run, 'main', ['--import', tsxUrl])
  checkOutcome(t, out, 'typescript')
})

t.test('a TypeScript app module under tsx in a worker thread (tsx via typescript-loader.js, as workers get it)', async (t) => {
  const run = await prepareRun(t, true)
  const out = await runChild(t, run, 'thread', ['--import', tsxUrl, '--import', typeScriptLoader])
  checkOutcome(t, out, 'typescript')
})
