/**
 * The proxy-imports bench's workflow install: a directory laid out like a project that installed
 * the packages under test (its own node_modules), with one generated app module per package. The
 * `file-system` method imports from it where it is (on the --fs-root file system), `local` from a
 * copy on a node-local disk, `pack` from a tar of it unpacked by each block's workerInit, and
 * `lazy` ships what tracing the app module finds through the executor's proxyImports option.
 *
 *   <install>/node_modules/<package>...   the packages, copied from this project's install (with
 *                                         their dependencies) or generated (simulated packages)
 *   <install>/apps/<package>.mjs          the apps: `import('<package>')` written literally, so
 *                                         tracing finds it; tsflow and the task bodies imported by
 *                                         file URL, so tracing ships neither
 *   <install>/importers/<package>.mjs     `load()` = `import('<package>')`: the pack method's
 *                                         import, resolved from the unpacked node_modules
 */
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findPackageRoot, tracePackages } from 'tsflow/imports'

/** The project root (from out/bench/proxy-imports or bench/proxy-imports). */
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.includes('/out/') ? ['..'] : []))

/** `@scope/name` -> `@scope__name`: one file name per package. */
export function fileNameOf(pkg: string): string {
  return pkg.replace('/', '__')
}

/**
 * Copies `names` and everything they depend on (as tracing finds them in this project's install)
 * into `<install>/node_modules`, keeping nested node_modules where they are. Returns the packages
 * copied (name and directory inside the install).
 */
export async function copyInstalled(install: string, names: readonly string[]): Promise<{ name: string; dir: string }[]> {
  const projectModules = join(PROJECT_ROOT, 'node_modules')
  const traced = await tracePackages(join(PROJECT_ROOT, 'package.json'), { modules: names, only: true })
  const copied: { name: string; dir: string }[] = []
  for (const pkg of traced) {
    const inProject = relative(realpathSync(projectModules), pkg.root)
    const rel = inProject.startsWith('..') ? pkg.name : inProject
    const target = join(install, 'node_modules', rel)
    // A package's nested node_modules come with it (tracing lists them after it).
    if (!existsSync(target)) cpSync(pkg.root, target, { recursive: true, dereference: true })
    copied.push({ name: pkg.name, dir: target })
  }
  return copied
}

/**
 * A simulated package of `files` small ES modules (in folders of 1,000) whose entry imports
 * every one of them, as in the seed's simulated-package experiment. Each file is about
 * `fileBytes` long. Returns its name.
 */
export function makeSimulatedPackage(install: string, files: number, fileBytes = 256): string {
  const name = `tsflow-bench-sim-${files}`
  const root = join(install, 'node_modules', name)
  if (existsSync(join(root, 'index.js'))) return name
  mkdirSync(root, { recursive: true })
  writeFileSync(join(root, 'package.json'), `${JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'index.js', exports: './index.js' }, null, 2)}\n`)
  const pad = (text: string) => text + `// ${'x'.repeat(Math.max(0, fileBytes - text.length - 4))}\n`
  const imports: string[] = []
  for (let i = 0; i < files; i++) {
    const dir = join(root, 'lib', `d${Math.floor(i / 1000)}`)
    if (i % 1000 === 0) mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `m${i}.js`), pad(`export const v = ${i}\nexport function f(x) {\n  return x * ${i % 7} + ${i}\n}\n`))
    imports.push(`import { v as v${i} } from './lib/d${Math.floor(i / 1000)}/m${i}.js'`)
  }
  const sum = Array.from({ length: files }, (_, i) => `v${i}`)
  const lines = [...imports, '', '// the sum of every module\'s value, so every import is used', 'export let total = 0']
  for (let i = 0; i < sum.length; i += 500) lines.push(`total += ${sum.slice(i, i + 500).join(' + ')}`)
  lines.push(`export const files = ${files}`, '')
  writeFileSync(join(root, 'index.js'), lines.join('\n'))
  return name
}

/** The apps module and the importer of one package (see the file comment). */
export function writeAppModule(install: string, pkg: string): string {
  const tsflowUrl = import.meta.resolve('tsflow')
  const bodyUrl = new URL('./task-body.js', import.meta.url).href
  const name = fileNameOf(pkg)
  mkdirSync(join(install, 'apps'), { recursive: true })
  mkdirSync(join(install, 'importers'), { recursive: true })
  const spec = JSON.stringify(pkg)
  const file = join(install, 'apps', `${name}.mjs`)
  writeFileSync(
    file,
    [
      `// Generated by bench/proxy-imports: the apps that import ${pkg}.`,
      `// tsflow and the task bodies by file URL: they are not packages to ship.`,
      `import { app } from ${JSON.stringify(tsflowUrl)}`,
      `import { importTask, inferenceTask } from ${JSON.stringify(bodyUrl)}`,
      '',
      `export const importApp = app(function proxyImportsImport(spec) {`,
      `  return importTask(spec, () => import(${spec}), () => import.meta.resolve(${spec}))`,
      `}, { name: 'proxyImportsImport' })`,
      '',
      `export const inferenceApp = app(function proxyImportsInference(spec, model) {`,
      `  return inferenceTask(spec, model, () => import(${spec}))`,
      `}, { name: 'proxyImportsInference' })`,
      '',
    ].join('\n'),
  )
  writeFileSync(
    join(install, 'importers', `${name}.mjs`),
    `// Generated by bench/proxy-imports: the pack method's import of ${pkg}.\nexport const load = () => import(${spec})\nexport const where = () => import.meta.resolve(${spec})\n`,
  )
  return file
}

/** Files and bytes of a package as installed (what a file-system import may have to read). */
export function packageSize(install: string, pkg: string): { files: number; bytes: number } {
  const root = findPackageRoot(pkg, join(install, 'apps'))
  let files = 0
  let bytes = 0
  const stack = root ? [root] : []
  while (stack.length > 0) {
    const dir = stack.pop()!
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) stack.push(path)
      else if (entry.isFile()) {
        files++
        bytes += statSync(path).size
      }
    }
  }
  return { files, bytes }
}
