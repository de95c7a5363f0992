// Tracing the packages an app needs (issue 9): a real directory tree with node_modules, resolved
// as Node resolves it, and the project's own installed packages.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { PackageNotFound } from 'tsflow'
import { bareSpecifiersOf, packageNameOf, traceImports, tracePackages } from 'tsflow/imports'

const here = dirname(fileURLToPath(import.meta.url))

function writePackage(dir: string, name: string, manifest: Record<string, unknown> = {}, files: Record<string, string> = {}): string {
  const root = join(dir, 'node_modules', name)
  mkdirSync(root, { recursive: true })
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name, version: '1.2.3', ...manifest }))
  writeFileSync(join(root, 'index.js'), 'module.exports = 1\n')
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, file)), { recursive: true })
    writeFileSync(join(root, file), text)
  }
  return root
}

function workspace(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-trace-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('bare specifiers: ESM static and dynamic imports, re-exports and require calls; never strings, comments, relative paths or built-ins', async (t) => {
  const source = `
    import a from 'alpha'
    import { b } from "@scope/beta/sub/path.js"
    export * from 'gamma'
    const d = await import('delta')
    const e = require('epsilon')
    // import nope from 'in-a-comment'
    /* require('in-a-block-comment') */
    const text = "import fake from 'in-a-string'"
    import rel from './relative.js'
    import fs from 'node:fs'
    import path from 'path'
    import hash from '#internal'
  `
  t.same((await bareSpecifiersOf(source)).sort(), ['@scope/beta/sub/path.js', 'alpha', 'delta', 'epsilon', 'gamma'])
  t.same(await bareSpecifiersOf("const x = require('cjs-only')\nmodule.exports = x\n"), ['cjs-only'], 'CommonJS source')
  t.equal(packageNameOf('@scope/beta/sub/path.js'), '@scope/beta')
  t.equal(packageNameOf('lodash/fp'), 'lodash')
})

t.test('packages are found as Node finds them and followed through their dependencies, each once', async (t) => {
  const dir = workspace(t)
  writePackage(dir, 'app-dep', { dependencies: { shared: '^1', 'nested-only': '^1' } })
  writePackage(dir, 'other-dep', { dependencies: { shared: '^1' }, optionalDependencies: { 'not-installed-optional': '^1' }, peerDependencies: { 'absent-peer': '*' } })
  writePackage(dir, 'shared')
  // a dependency installed only under its dependent (npm's nesting for version conflicts)
  writePackage(join(dir, 'node_modules', 'app-dep'), 'nested-only')
  writePackage(dir, '@scope/native', {}, { 'build/Release/addon.node': 'not really an addon' })
  const flow = join(dir, 'flow.mjs')
  writeFileSync(flow, "import a from 'app-dep'\nimport o from 'other-dep'\nimport n from '@scope/native'\nimport fs from 'node:fs'\n")
  const traced = await tracePackages(flow)
  t.same(traced.map((p) => p.name).sort(), ['@scope/native', 'app-dep', 'nested-only', 'other-dep', 'shared'], 'direct, transitive, nested; optional and peer packages that are absent are skipped')
  t.equal(traced.find((p) => p.name === 'nested-only')!.root, join(dir, 'node_modules', 'app-dep', 'node_modules', 'nested-only'), 'the nested copy, found from its dependent')
  t.equal(traced.find((p) => p.name === 'shared')!.importedBy, 'package app-dep')
  t.ok(traced.find((p) => p.name === '@scope/native')!.native, 'a package holding a .node file is marked native')
  t.notOk(traced.find((p) => p.name === 'shared')!.native)
  t.equal(traced.find((p) => p.name === 'app-dep')!.version, '1.2.3')
})

t.test('dependency edges: two versions of one package in a tree come out as two packages, each dependent pointing at the copy Node finds from it', async (t) => {
  const dir = workspace(t)
  const top = join(dir, 'node_modules')
  writePackage(dir, 'uses-v1', { dependencies: { shared: '^1' } })
  writePackage(dir, 'uses-v2', { dependencies: { shared: '^2', 'maybe-there': '^1' }, optionalDependencies: { 'maybe-there': '^1' } })
  writePackage(dir, 'shared', { version: '1.0.0' })
  // npm nests the second version under its dependent
  writePackage(join(top, 'uses-v2'), 'shared', { version: '2.0.0' })
  const flow = join(dir, 'flow.mjs')
  writeFileSync(flow, "import a from 'uses-v1'\nimport b from 'uses-v2'\nimport s from 'shared'\n")
  const { packages, roots } = await traceImports(flow)
  const shared = packages.filter((p) => p.name === 'shared')
  t.same(shared.map((p) => [p.version, p.root]).sort(), [['1.0.0', join(top, 'shared')], ['2.0.0', join(top, 'uses-v2', 'node_modules', 'shared')]], 'two packages, one per version')
  t.same(roots, { 'uses-v1': join(top, 'uses-v1'), 'uses-v2': join(top, 'uses-v2'), shared: join(top, 'shared') }, "the entry's edges")
  t.same(packages.find((p) => p.name === 'uses-v1')!.dependencies, { shared: join(top, 'shared') })
  t.same(packages.find((p) => p.name === 'uses-v2')!.dependencies, { shared: join(top, 'uses-v2', 'node_modules', 'shared') }, 'the nested copy; the absent optional dependency has no edge')
  t.same(shared.map((p) => p.dependencies), [{}, {}])
  t.same((await tracePackages(flow)).map((p) => p.root), packages.map((p) => p.root), 'tracePackages gives the same packages')
})

t.test('a symlinked package (npm link, workspaces) is traced once, at its real path', async (t) => {
  const dir = workspace(t)
  const real = join(dir, 'linked-real')
  mkdirSync(real)
  writeFileSync(join(real, 'package.json'), JSON.stringify({ name: 'linked', version: '0.0.1' }))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(real, join(dir, 'node_modules', 'linked'))
  const flow = join(dir, 'flow.mjs')
  writeFileSync(flow, "import l from 'linked'\nimport again from 'linked/sub.js'\n")
  const traced = await tracePackages(flow)
  t.same(traced.map((p) => [p.name, p.root]), [['linked', real]])
})

t.test('a package that is not installed is PackageNotFound naming it and its importer; modules: [...] extends or replaces tracing', async (t) => {
  const dir = workspace(t)
  writePackage(dir, 'present', { dependencies: { 'gone-dependency': '^1' } })
  writePackage(dir, 'extra')
  const flow = join(dir, 'flow.mjs')
  writeFileSync(flow, "import m from 'missing-package'\n")
  const error = (await tracePackages(flow).catch((e: unknown) => e)) as PackageNotFound
  t.type(error, PackageNotFound)
  t.equal(error.code, 'E_PACKAGE_NOT_FOUND')
  t.equal(error.packageName, 'missing-package')
  t.match(error.message, flow, 'names the module that imports it')
  t.match(error.message, 'npm install missing-package')
  const dependencyError = (await tracePackages(flow, { only: true, modules: ['present'] }).catch((e: unknown) => e)) as PackageNotFound
  t.equal(dependencyError.packageName, 'gone-dependency', 'a missing dependency of a package is named too')
  t.match(dependencyError.message, 'imported by package present')
  writeFileSync(flow, "import e from 'extra'\n")
  t.same((await tracePackages(flow, { modules: ['@none/x'].slice(1).concat('extra') })).map((p) => p.name), ['extra'], 'a listed package already traced is kept once')
  t.same((await tracePackages(flow, { only: true, modules: [] })).map((p) => p.name), [], 'only: the entry module is not read')
})

t.test("the project's own installed packages: a module importing nanoid and msgpackr", async (t) => {
  const traced = await tracePackages(join(here, '../fixtures/trace-entry.mjs'))
  const names = traced.map((p) => p.name)
  t.ok(names.includes('nanoid') && names.includes('msgpackr'), `found ${names.join(', ')}`)
  t.notOk(names.includes('fs') || names.includes('node:fs'), 'built-ins are skipped')
})
