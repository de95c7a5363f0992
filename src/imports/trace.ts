/**
 * Tracing (issue 9, docs/proxy-imports.md): which npm packages an app needs, so they can travel
 * with its tasks. Starts from the app's defining module and the workflow's own files it imports
 * (trace-local.ts), collects the bare specifiers they import (ESM through es-module-lexer, a real
 * lexer, so strings and comments never count; CommonJS through `require('...')` calls;
 * TypeScript compiled first, so type-only imports do not count), finds each package the way Node
 * does (node_modules folders from the importing file up) and follows each package's own
 * dependencies from its package.json. Built-ins are skipped; packages holding native addons
 * (`.node` files) are marked.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PackageNotFound } from '../errors.js'
import { isBare, moduleSpecifiers, traceLocalModules, type UntracedImport } from './trace-local.js'

export type { UntracedImport } from './trace-local.js'

export interface TracedPackage {
  /** the package name, e.g. 'mathjs' or '@scope/name' */
  name: string
  /** its installed directory (symlinks resolved) */
  root: string
  version: string | undefined
  /** whether it ships compiled addons (`.node` files), which only load on a matching platform */
  native: boolean
  /** the module or package that first needed it */
  importedBy: string
  /**
   * its dependency edges: each dependency's name -> the directory Node finds for that name from
   * this package (so two versions of one package in a tree keep their own dependents); a missing
   * optional or peer dependency has no edge
   */
  dependencies: Record<string, string>
}

/** What tracing found: every package once, and the entry's own edges. */
export interface TracedImports {
  packages: TracedPackage[]
  /**
   * the packages the entry, the workflow's files it imports (or the `modules` list) import:
   * name -> package directory (the first found, when files in different directories find
   * different copies of one name; the others are in `untraced`)
   */
  roots: Record<string, string>
  /** the workflow's own files read: the entry first, then those it imports locally */
  files?: string[]
  /** imports tracing did not follow (a local file not found, `#x` mapped to a package, ...): not errors, for a log */
  untraced?: UntracedImport[]
}

export interface TraceOptions {
  /** packages to ship whether or not tracing finds them (resolved from `entry`'s directory) */
  modules?: readonly string[]
  /** only these packages (and their dependencies): tracing of the entry module is skipped */
  only?: boolean
  /**
   * packages neither shipped nor followed, wherever they are imported: ones the workers already
   * have (tsflow itself, which runs them)
   */
  exclude?: readonly string[]
}

/** The bare specifiers (package imports) of one module's source; `file` (its path) tells TypeScript by its extension. */
export async function bareSpecifiersOf(source: string, file?: string): Promise<string[]> {
  return [...new Set((await moduleSpecifiers(source, file)).map((found) => found.specifier))].filter(isBare)
}

/** 'a/b/c' -> 'a'; '@s/a/b' -> '@s/a' */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

/** The directory of package `name` as Node would find it from `fromDir`, or undefined. */
export function findPackageRoot(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    if (!dir.endsWith(`${sep}node_modules`)) {
      const candidate = join(dir, 'node_modules', name, 'package.json')
      if (existsSync(candidate)) return realpathSync(dirname(candidate))
    }
    if (dirname(dir) === dir) return undefined
  }
}

interface Manifest {
  version?: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

function readManifest(root: string): Manifest {
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Manifest
}

function hasNativeAddon(root: string): boolean {
  const stack = [root]
  while (stack.length > 0) {
    const dir = stack.pop()!
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        // nested node_modules are their own packages, traced through dependencies
        if (entry.name !== 'node_modules') stack.push(join(dir, entry.name))
      } else if (entry.name.endsWith('.node')) return true
    }
  }
  return false
}

/**
 * The packages `entry` (a module path or file URL) needs, dependencies included, each once, in
 * the order they were found. A package the entry (or a workflow file it imports) imports that is
 * not installed is a PackageNotFound naming it and that file; a missing *optional* or *peer*
 * dependency is skipped.
 */
export async function tracePackages(entry: string | URL, options: TraceOptions = {}): Promise<TracedPackage[]> {
  return (await traceImports(entry, options)).packages
}

/**
 * `tracePackages` with the dependency graph: each package's edges (`dependencies`) and the
 * entry's (`roots`), both naming package directories, so each package can be shipped with the
 * hashes of exactly the copies Node would load from it.
 */
export async function traceImports(entry: string | URL, options: TraceOptions = {}): Promise<TracedImports> {
  const entryPath = entry instanceof URL || entry.startsWith('file:') ? fileURLToPath(entry) : entry
  const entryDir = dirname(entryPath)
  const byRoot = new Map<string, TracedPackage>()
  const roots: Record<string, string> = {}
  const untraced: UntracedImport[] = []
  let files: string[] = []
  // `from`: the package whose edge this is; undefined for the workflow's own imports.
  const queue: { name: string; fromDir: string; importer: string; required: boolean; from?: TracedPackage }[] = []
  if (!options.only) {
    const local = await traceLocalModules(entryPath)
    files = local.files
    untraced.push(...local.untraced)
    for (const { specifier, importer, fromDir } of local.packages) queue.push({ name: packageNameOf(specifier), fromDir, importer, required: true })
  }
  for (const name of options.modules ?? []) queue.push({ name: packageNameOf(name), fromDir: entryDir, importer: 'modules: [...]', required: true })

  while (queue.length > 0) {
    const { name, fromDir, importer, required, from } = queue.shift()!
    if (options.exclude?.includes(name)) continue
    const root = findPackageRoot(name, fromDir)
    if (root === undefined) {
      if (required) throw new PackageNotFound(name, importer, fromDir)
      continue
    }
    if (from) from.dependencies[name] = root
    else if (roots[name] === undefined) roots[name] = root
    else if (roots[name] !== root) {
      // The loader maps a name to one copy for every file of the workflow: this one would not be loaded.
      untraced.push({ specifier: name, importer, reason: `Node finds ${root} from ${fromDir}, but another file of the workflow finds ${roots[name]}: only that copy is shipped, and the workers load it for every file of the workflow` })
      continue
    }
    if (byRoot.has(root)) continue
    const manifest = readManifest(root)
    const traced: TracedPackage = { name, root, version: manifest.version, native: hasNativeAddon(root), importedBy: importer, dependencies: {} }
    byRoot.set(root, traced)
    const dependencies = Object.keys(manifest.dependencies ?? {})
    const optional = [...Object.keys(manifest.optionalDependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]
    for (const dependency of dependencies) queue.push({ name: dependency, fromDir: root, importer: `package ${name}`, required: !optional.includes(dependency), from: traced })
    for (const dependency of optional) if (!dependencies.includes(dependency)) queue.push({ name: dependency, fromDir: root, importer: `package ${name}`, required: false, from: traced })
  }
  return { packages: [...byRoot.values()], roots, files, untraced }
}
