/**
 * Tracing (issue 9, docs/proxy-imports.md): which npm packages an app needs, so they can travel
 * with its tasks. Starts from the app's defining module, collects the bare specifiers it imports
 * (ESM through es-module-lexer, a real lexer, so strings and comments never count; CommonJS
 * through `require('...')` calls), finds each package the way Node does (node_modules folders
 * from the importing file up) and follows each package's own dependencies from its package.json.
 * Built-ins are skipped; packages holding native addons (`.node` files) are marked.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { init, parse } from 'es-module-lexer'
import { PackageNotFound } from '../errors.js'

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
  /** the packages the entry (or the `modules` list) imports: name -> package directory */
  roots: Record<string, string>
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

// require('x') / require("x") outside strings and comments is what matters; the ESM lexer
// already tells code from strings, so CommonJS sources are scanned after blanking comments.
const REQUIRE_CALL = /(?<![\w$.])require\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g
const COMMENTS = /\/\*[\s\S]*?\*\/|(?<![:'"\w])\/\/[^\n]*/g

/** The bare specifiers (package imports) of one module's source. */
export async function bareSpecifiersOf(source: string): Promise<string[]> {
  await init
  const found = new Set<string>()
  try {
    const [imports] = parse(source)
    for (const entry of imports) if (entry.n !== undefined) found.add(entry.n)
  } catch {
    // not ESM syntax (e.g. CommonJS using a reserved word): the require scan below still runs
  }
  for (const match of source.replace(COMMENTS, '').matchAll(REQUIRE_CALL)) found.add(match[2]!)
  return [...found].filter(isBare)
}

function isBare(specifier: string): boolean {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')) return false
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return false // node:, file:, data:, https:
  return !isBuiltin(specifier)
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
 * the order they were found. A package the entry imports that is not installed is a
 * PackageNotFound naming it and the entry; a missing *optional* or *peer* dependency is skipped.
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
  // `from`: the package whose edge this is; undefined for the entry's own imports.
  const queue: { name: string; fromDir: string; importer: string; required: boolean; from?: TracedPackage }[] = []
  if (!options.only) {
    for (const specifier of await bareSpecifiersOf(readFileSync(entryPath, 'utf8'))) {
      queue.push({ name: packageNameOf(specifier), fromDir: entryDir, importer: entryPath, required: true })
    }
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
    else roots[name] = root
    if (byRoot.has(root)) continue
    const manifest = readManifest(root)
    const traced: TracedPackage = { name, root, version: manifest.version, native: hasNativeAddon(root), importedBy: importer, dependencies: {} }
    byRoot.set(root, traced)
    const dependencies = Object.keys(manifest.dependencies ?? {})
    const optional = [...Object.keys(manifest.optionalDependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]
    for (const dependency of dependencies) queue.push({ name: dependency, fromDir: root, importer: `package ${name}`, required: !optional.includes(dependency), from: traced })
    for (const dependency of optional) if (!dependencies.includes(dependency)) queue.push({ name: dependency, fromDir: root, importer: `package ${name}`, required: false, from: traced })
  }
  return { packages: [...byRoot.values()], roots }
}
