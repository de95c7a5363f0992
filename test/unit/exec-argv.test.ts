// Which node flags workers inherit, and when they get the TypeScript loader (tsx in threads).
import t from 'tap'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { workerExecArgv } from '../../dist/runtime/exec-argv.js'

const LOADER = new URL('../../dist/runtime/typescript-loader.js', import.meta.url).href
const tsxEntry = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const root = new URL('../..', import.meta.url).pathname
const plain = { mainScript: '/p/flow.mjs', nodeOptions: '', cwd: root }

t.test('debugging and main-script flags stay with the workflow', async (t) => {
  t.same(workerExecArgv(['--eval', 'x', '--inspect=9229', '--enable-source-maps', '--input-type', 'module', '-i', '--max-old-space-size=512'], plain), [
    '--enable-source-maps',
    '--max-old-space-size=512',
  ])
})

t.test("tsx's CLI flags are kept and threads get the tsflow loader after them", async (t) => {
  // What `npx tsx flow.ts` gives the workflow process.
  const cli = ['--require', '/u/node_modules/tsx/dist/preflight.cjs', '--import', 'file:///u/node_modules/tsx/dist/loader.mjs']
  const argv = workerExecArgv(cli, { ...plain, mainScript: '/p/flow.ts' })
  t.same(argv, [...cli, '--import', LOADER])
  t.same(workerExecArgv(argv, plain), argv, 'a manager passing its flags on adds nothing twice')
})

t.test('a bare --import tsx becomes the file it resolves to, so a manager elsewhere finds it', async (t) => {
  t.same(workerExecArgv(['--import', 'tsx'], plain), ['--import', tsxEntry, '--import', LOADER])
  t.same(workerExecArgv(['--import=tsx'], plain), [`--import=${tsxEntry}`, '--import', LOADER])
})

t.test('tsx in NODE_OPTIONS: children get it from their environment, threads the loader', async (t) => {
  t.same(workerExecArgv([], { ...plain, nodeOptions: '--import tsx' }), ['--import', LOADER])
})

t.test('another loader (ts-node, as tap uses) is inherited alone', async (t) => {
  const tap = ['--import=file:///r/node_modules/@tapjs/typescript/dist/esm/import.mjs', '--enable-source-maps']
  t.same(workerExecArgv(tap, { ...plain, mainScript: '/r/test/a.test.ts' }), tap)
})

t.test('a TypeScript main module with no visible loader gets tsx', async (t) => {
  const argv = workerExecArgv([], { ...plain, mainScript: '/p/flow.mts' })
  const native = Boolean((process.features as { typescript?: unknown }).typescript)
  t.same(argv, native ? [] : ['--import', tsxEntry, '--import', LOADER])
})

t.test('a JavaScript workflow without loaders gets no loader', async (t) => {
  t.same(workerExecArgv(['--enable-source-maps'], plain), ['--enable-source-maps'])
})
