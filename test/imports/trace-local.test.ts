// Tracing through the workflow's own files (issue 9): packages imported only by helper modules,
// found through relative, absolute and file: imports, require calls and package.json "imports",
// TypeScript compiled as tsx compiles it; real directory trees in temp directories.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { PackageNotFound } from 'tsflow'
import { bareSpecifiersOf, traceImports } from 'tsflow/imports'

function workspace(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-trace-local-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Writes files under `dir` (paths relative to it), creating directories. */
function files(dir: string, tree: Record<string, string>): void {
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
}

function pkg(name: string, dependencies: Record<string, string> = {}): Record<string, string> {
  return { [`node_modules/${name}/package.json`]: JSON.stringify({ name, version: '1.0.0', dependencies }), [`node_modules/${name}/index.js`]: 'module.exports = 1\n' }
}

t.test('relative imports are followed transitively: ESM, require with Node\'s extension and index rules, literal dynamic imports, a cycle once', async (t) => {
  const dir = workspace(t)
  files(dir, {
    ...pkg('pkg-b', { 'pkg-b-dep': '^1' }),
    ...pkg('pkg-b-dep'),
    ...pkg('pkg-c'),
    ...pkg('pkg-dyn'),
    ...pkg('pkg-tmpl'),
    ...pkg('pkg-util'),
    ...pkg('pkg-main'),
    ...pkg('pkg-index'),
    ...pkg('pkg-abs'),
    ...pkg('pkg-url'),
    'flow/app.mjs': "import { a } from './a.mjs'\nexport const run = () => a\n",
    'flow/a.mjs': "import '../lib/b.cjs'\nimport { c } from './c.mjs'\nexport const a = 1\nconst d = await import('./dyn.js')\nconst e = await import(`./tmpl.mjs`)\nconst f = await import(`./${'x'}.mjs`)\n",
    // the cycle: c imports a back
    'flow/c.mjs': "import { a } from './a.mjs'\nimport c2 from 'pkg-c'\nexport const c = a\n",
    'flow/dyn.js': "export default (await import('pkg-dyn')).default\n",
    'flow/tmpl.mjs': "import 'pkg-tmpl'\n",
    'lib/b.cjs': "const b = require('pkg-b')\nrequire('./util')\nrequire('./with-main')\nrequire('./with-index')\nrequire('./data.json')\nmodule.exports = b\n",
    'lib/util.js': "module.exports = require('pkg-util')\n",
    'lib/with-main/package.json': JSON.stringify({ main: 'src/main.js' }),
    'lib/with-main/src/main.js': "require('pkg-main')\nrequire(" + JSON.stringify(join(dir, 'lib/abs.cjs')) + ')\n',
    'lib/with-index/index.js': "module.exports = require('pkg-index')\n",
    'lib/abs.cjs': "require('pkg-abs')\nimport(" + JSON.stringify(pathToFileURL(join(dir, 'lib/url.mjs')).href + '?v=1') + ')\n',
    'lib/url.mjs': "import 'pkg-url'\n",
    'lib/data.json': '{"require": "not-a-package"}\n',
  })
  const traced = await traceImports(join(dir, 'flow/app.mjs'))
  t.same(traced.packages.map((p) => p.name).sort(), ['pkg-abs', 'pkg-b', 'pkg-b-dep', 'pkg-c', 'pkg-dyn', 'pkg-index', 'pkg-main', 'pkg-tmpl', 'pkg-url', 'pkg-util'])
  t.same(Object.keys(traced.roots).sort(), ['pkg-abs', 'pkg-b', 'pkg-c', 'pkg-dyn', 'pkg-index', 'pkg-main', 'pkg-tmpl', 'pkg-url', 'pkg-util'], 'every workflow file\'s packages are roots; pkg-b-dep is pkg-b\'s')
  const by = (name: string) => traced.packages.find((p) => p.name === name)!.importedBy
  t.equal(by('pkg-b'), join(dir, 'lib/b.cjs'), 'the helper that imports it')
  t.equal(by('pkg-b-dep'), 'package pkg-b')
  t.equal(by('pkg-main'), join(dir, 'lib/with-main/src/main.js'), 'a directory through its package.json main')
  t.equal(by('pkg-url'), join(dir, 'lib/url.mjs'), 'a file: URL with a query')
  const read = traced.files!.map((f) => f.slice(dir.length + 1))
  t.same(read.slice().sort(), ['flow/a.mjs', 'flow/app.mjs', 'flow/c.mjs', 'flow/dyn.js', 'flow/tmpl.mjs', 'lib/abs.cjs', 'lib/b.cjs', 'lib/url.mjs', 'lib/util.js', 'lib/with-index/index.js', 'lib/with-main/src/main.js'], 'each file once (the cycle too); data.json is not parsed')
  t.equal(read[0], 'flow/app.mjs', 'the entry first')
  t.same(traced.untraced, [], 'nothing left out (a dynamic import of an expression is not a specifier)')
})

t.test('an import of a file that does not exist is recorded, not fatal', async (t) => {
  const dir = workspace(t)
  files(dir, { ...pkg('present'), 'app.mjs': "import './gone.js'\nimport 'present'\nconst x = require('./also-gone')\n" })
  const traced = await traceImports(join(dir, 'app.mjs'))
  t.same(traced.packages.map((p) => p.name), ['present'])
  t.same(traced.untraced!.map((u) => [u.specifier, u.importer]), [['./gone.js', join(dir, 'app.mjs')], ['./also-gone', join(dir, 'app.mjs')]])
  t.match(traced.untraced![0]!.reason, /was not found/)
})

t.test('PackageNotFound for a package a helper imports names the helper, not the app module', async (t) => {
  const dir = workspace(t)
  files(dir, { 'app.mjs': "import './helpers/h.mjs'\n", 'helpers/h.mjs': "import m from 'not-installed-anywhere'\n" })
  const error = (await traceImports(join(dir, 'app.mjs')).catch((e: unknown) => e)) as PackageNotFound
  t.type(error, PackageNotFound)
  t.equal(error.packageName, 'not-installed-anywhere')
  t.equal(error.importer, join(dir, 'helpers/h.mjs'))
  t.match(error.message, `imported by ${join(dir, 'helpers/h.mjs')} is not installed (looked in node_modules from ${join(dir, 'helpers')} up)`)
})

const TS_APP = `import type { Shape } from 'types-only-missing'
import { type Options, value } from 'value-pkg'
import { type Other } from 'inline-type-missing'
export type { Again } from 'export-type-missing'
import { helper } from './helper.js'
import legacy = require('legacy-pkg')
enum Color { Red, Green }
const enum Flag { A = 1 }
function decorate(target: unknown): void {}
@decorate
class Model<T extends Shape = Shape> {
  items: Map<string, T> = new Map<string, T>()
  constructor(private readonly options?: Options) {}
}
export const run = <T,>(x: T): T => (value as unknown as (t: T) => T)(helper(x as never) as T) satisfies T
export default { Color, Flag, Model, legacy }
`

t.test('TypeScript (.ts, .mts, .cts): compiled before lexing, so type-only imports of packages that are not installed neither fail nor ship', async (t) => {
  const dir = workspace(t)
  files(dir, {
    ...pkg('value-pkg'),
    ...pkg('legacy-pkg'),
    ...pkg('helper-pkg'),
    ...pkg('mts-pkg'),
    ...pkg('cts-pkg'),
    'app.ts': TS_APP,
    // './helper.js' is the TypeScript file, as tsx resolves it
    'helper.ts': "import type { Z } from 'helper-types-missing'\nimport h from 'helper-pkg'\nexport const helper = (x: Z): Z => h(x)\n",
    'app.mts': "import type { T } from 'mts-types-missing'\nimport { m } from './m.mjs'\nexport const f = (x: T) => m(x)\n",
    'm.mts': "import p from 'mts-pkg'\nexport const m = <T,>(x: T): T => p(x)\n",
    // CommonJS-compiled TypeScript: an extensionless require of a .cts file
    'app.cts': "import type { T } from 'cts-types-missing'\nconst c = require('./c')\nexport = c as T\n",
    'c.cts': "module.exports = require('cts-pkg')\n",
  })
  // tsx reads the tsconfig.json of the working directory, or TSX_TSCONFIG_PATH; tracing does too
  const saved = process.env.TSX_TSCONFIG_PATH
  t.teardown(() => (saved === undefined ? delete process.env.TSX_TSCONFIG_PATH : (process.env.TSX_TSCONFIG_PATH = saved)))
  files(dir, {
    'tsconfig.json': '{\n  // comments and trailing commas, as tsconfig files have them\n  "compilerOptions": { "strict": true, },\n}\n',
    'verbatim.json': JSON.stringify({ compilerOptions: { verbatimModuleSyntax: true } }),
  })
  process.env.TSX_TSCONFIG_PATH = join(dir, 'tsconfig.json')
  const ts = await traceImports(join(dir, 'app.ts'))
  t.same(ts.packages.map((p) => p.name).sort(), ['helper-pkg', 'legacy-pkg', 'value-pkg'], 'value imports only; `import x = require()` is a require')
  t.same(ts.files!.map((f) => f.slice(dir.length + 1)), ['app.ts', 'helper.ts'])
  t.equal(ts.packages.find((p) => p.name === 'helper-pkg')!.importedBy, join(dir, 'helper.ts'))
  const mts = await traceImports(pathToFileURL(join(dir, 'app.mts')))
  t.same(mts.packages.map((p) => p.name), ['mts-pkg'], '.mts importing ./m.mjs, which is m.mts')
  const cts = await traceImports(join(dir, 'app.cts'))
  t.same(cts.packages.map((p) => p.name), ['cts-pkg'], '.cts requiring ./c, which is c.cts')
  t.same(await bareSpecifiersOf(TS_APP, 'x.ts'), ['value-pkg', 'legacy-pkg'], 'bareSpecifiersOf with a file name compiles TypeScript')
  // verbatimModuleSyntax keeps `import { type X } from 'x'` as `import {} from 'x'`: tsx loads it, so tracing needs it
  process.env.TSX_TSCONFIG_PATH = join(dir, 'verbatim.json')
  await t.rejects(traceImports(join(dir, 'app.ts')), { code: 'E_PACKAGE_NOT_FOUND', packageName: 'inline-type-missing' }, 'under verbatimModuleSyntax the inline type-only import still loads its module')
})

t.test('package.json "imports": local targets are followed (exact, patterns, conditions); a target that is a package is recorded, not shipped', async (t) => {
  const dir = workspace(t)
  files(dir, {
    ...pkg('from-internal'),
    ...pkg('from-pattern'),
    ...pkg('better-sqlite3'),
    'package.json': JSON.stringify({
      name: 'flow',
      type: 'module',
      imports: {
        '#internal': './src/internal.js',
        '#util/*': './src/util/*.js',
        '#cond': { types: './src/types.d.ts', node: './src/node.js', default: './src/browser.js' },
        '#db': 'better-sqlite3',
      },
    }),
    'app.js': "import '#internal'\nimport '#util/fmt'\nimport '#cond'\nimport '#db'\nimport '#unmapped'\n",
    'src/internal.js': "import 'from-internal'\n",
    'src/util/fmt.js': "import 'from-pattern'\n",
    'src/node.js': "import 'node:fs'\n",
    'src/browser.js': "import 'never-read'\n",
  })
  const traced = await traceImports(join(dir, 'app.js'))
  t.same(traced.packages.map((p) => p.name).sort(), ['from-internal', 'from-pattern'])
  t.same(traced.files!.map((f) => f.slice(dir.length + 1)).sort(), ['app.js', 'src/internal.js', 'src/node.js', 'src/util/fmt.js'], "the 'node' condition before 'default'")
  t.same(traced.untraced!.map((u) => u.specifier), ['#db', '#unmapped'])
  t.match(traced.untraced![0]!.reason, /maps it to the package 'better-sqlite3', which is not shipped/)
})

t.test('a file of an installed package loaded by path is recorded, not followed', async (t) => {
  const dir = workspace(t)
  files(dir, { ...pkg('by-path'), 'node_modules/by-path/lib.js': "require('deep-dep')\n", 'app.cjs': "require('./node_modules/by-path/lib.js')\n" })
  const traced = await traceImports(join(dir, 'app.cjs'))
  t.same(traced.packages, [])
  t.match(traced.untraced, [{ specifier: './node_modules/by-path/lib.js', reason: /inside the installed package/ }])
})

t.test('JSX (.jsx, and JSX in a .js file the lexer rejects) is compiled before lexing', async (t) => {
  const dir = workspace(t)
  files(dir, {
    ...pkg('react-like'),
    ...pkg('jsx-pkg'),
    ...pkg('js-jsx-pkg'),
    'app.mjs': "import './view.jsx'\nimport './legacy.js'\n",
    'view.jsx': "import React from 'react-like'\nimport x from 'jsx-pkg'\nexport const A = () => <div className=\"a\">{x}</div>\n",
    'legacy.js': "import React from 'react-like'\nimport y from 'js-jsx-pkg'\nexport const B = () => <p title=\"b\">{y}</p>\n",
  })
  const traced = await traceImports(join(dir, 'app.mjs'))
  t.same(traced.packages.map((p) => p.name).sort(), ['js-jsx-pkg', 'jsx-pkg', 'react-like'])
  // jsx: react-jsx in the tsconfig tsx reads: the compiled file imports the JSX runtime itself
  const saved = process.env.TSX_TSCONFIG_PATH
  t.teardown(() => (saved === undefined ? delete process.env.TSX_TSCONFIG_PATH : (process.env.TSX_TSCONFIG_PATH = saved)))
  files(dir, { ...pkg('runtime-lib'), 'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'react-jsx', jsxImportSource: 'runtime-lib' } }), 'auto.tsx': 'export const C = () => <b>x</b>\n' })
  process.env.TSX_TSCONFIG_PATH = join(dir, 'tsconfig.json')
  t.same((await traceImports(join(dir, 'auto.tsx'))).packages.map((p) => p.name), ['runtime-lib'], 'runtime-lib/jsx-runtime')
})

t.test('one name, two copies for two workflow files: the first is shipped and mapped, the other recorded', async (t) => {
  const dir = workspace(t)
  files(dir, {
    ...pkg('dup'),
    'app.mjs': "import 'dup'\nimport './sub/h.mjs'\n",
    'sub/h.mjs': "import 'dup'\n",
    'sub/node_modules/dup/package.json': JSON.stringify({ name: 'dup', version: '2.0.0' }),
  })
  const traced = await traceImports(join(dir, 'app.mjs'))
  t.same(traced.packages.map((p) => [p.name, p.version]), [['dup', '1.0.0']])
  t.same(traced.roots, { dup: join(dir, 'node_modules/dup') })
  t.match(traced.untraced, [{ specifier: 'dup', importer: join(dir, 'sub/h.mjs'), reason: /only that copy is shipped/ }])
})
