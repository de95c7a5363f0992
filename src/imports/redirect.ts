/**
 * Which shipped package a bare specifier means, and where to resolve it from: the rule both
 * lazy-loading paths share (hooks.ts for ESM on the loader thread, loader.ts for `require` on
 * the task's thread). Worker side: no kernel imports.
 */
import { lstatSync, mkdirSync, renameSync, symlinkSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { basename, dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One shipped package as the resolvers see it: where its unpacked root is (or will be). */
export interface MappedPackage {
  name: string
  version?: string
  hash: string
  /** the unpacked package root on this node (unpack.ts packageDir) */
  root: string
  /** name it is imported under -> hash, for files inside this package */
  deps: Record<string, string>
  /** already unpacked when the mapping was made */
  unpacked: boolean
}

/** What activateImports hands both resolvers for one manifest. */
export interface ImportMapping {
  cacheDir: string
  packages: MappedPackage[]
  /** name -> hash, for the app's module and every file outside the shipped packages */
  roots: Record<string, string>
  /** the app's module, when the caller named it (for error messages) */
  app?: string
}

export interface Redirect {
  /** the name the specifier imports (its first one or two segments) */
  name: string
  pkg: MappedPackage
  cacheDir: string
  /** the shipped package the importing file lies in, if any */
  from?: MappedPackage
}

// tsflow's own compiled and source files keep the dependencies they were installed with, even
// when an app ships another version of one of them.
const OWN_DIRS = ['dist', 'src'].map((dir) => fileURLToPath(new URL(`../../${dir}/`, import.meta.url)))
// Except the file that compiles apps sent as source (serialize/function-ref): an `import()` in
// such an app's code is Node's to resolve from that file, and means the app's own packages.
const SOURCE_SITE = fileURLToPath(new URL('../serialize/function-ref', import.meta.url))

function isOwnFile(file: string): boolean {
  return OWN_DIRS.some((dir) => file.startsWith(dir)) && file.replace(/\.[cm]?[jt]s$/, '') !== SOURCE_SITE
}

/** Every manifest activated in this thread, merged: packages by hash, roots by name (later apps win). */
export class ImportMap {
  private readonly byHash = new Map<string, { pkg: MappedPackage; cacheDir: string }>()
  private readonly byRoot = new Map<string, MappedPackage>()
  private readonly roots = new Map<string, string>()
  /** hash -> the app modules whose manifests ship it */
  readonly apps = new Map<string, Set<string>>()

  add(mapping: ImportMapping): void {
    for (const pkg of mapping.packages) {
      const known = this.byHash.get(pkg.hash)
      if (known) known.pkg.unpacked ||= pkg.unpacked
      else {
        this.byHash.set(pkg.hash, { pkg, cacheDir: mapping.cacheDir })
        this.byRoot.set(pkg.root, pkg)
      }
      if (mapping.app) {
        let apps = this.apps.get(pkg.hash)
        if (!apps) this.apps.set(pkg.hash, (apps = new Set()))
        apps.add(mapping.app)
      }
    }
    for (const [name, hash] of Object.entries(mapping.roots)) this.roots.set(name, hash)
  }

  get size(): number {
    return this.byHash.size
  }

  package(hash: string): MappedPackage | undefined {
    return this.byHash.get(hash)?.pkg
  }

  /**
   * The shipped package `specifier` resolves to when imported by the file at `importer` (a path;
   * undefined for no file), or undefined when Node's own resolution should handle it.
   */
  target(specifier: string, importer: string | undefined): Redirect | undefined {
    if (this.byHash.size === 0) return undefined
    const name = bareName(specifier)
    if (name === undefined) return undefined
    if (importer !== undefined && isOwnFile(importer)) return undefined
    const from = importer === undefined ? undefined : this.packageOf(importer)
    const hash = from ? from.deps[name] : this.roots.get(name)
    if (hash === undefined) return undefined
    const entry = this.byHash.get(hash)
    if (!entry) return undefined
    return from ? { name, pkg: entry.pkg, cacheDir: entry.cacheDir, from } : { name, pkg: entry.pkg, cacheDir: entry.cacheDir }
  }

  /** The shipped package whose unpacked root holds `file` (the innermost one). */
  packageOf(file: string): MappedPackage | undefined {
    let dir = dirname(file)
    for (;;) {
      const pkg = this.byRoot.get(dir)
      if (pkg) return pkg
      const parent = dirname(dir)
      if (parent === dir) return undefined
      dir = parent
    }
  }

  /** Who imported, for an error message: the shipped package and file, or the file. */
  describeImporter(importer: string | undefined, redirect: Redirect): string {
    const apps = [...(this.apps.get(redirect.pkg.hash) ?? [])]
    const app = apps.length > 0 ? ` (shipped for the app module ${apps.join(', ')})` : ''
    if (redirect.from) return `shipped package '${label(redirect.from)}' (${importer})${app}`
    return `${importer ?? 'a module without a file'}${app}`
  }
}

export function label(pkg: { name: string; version?: string }): string {
  return pkg.version ? `${pkg.name}@${pkg.version}` : pkg.name
}

/** The package name of a bare specifier (`lodash/fp` -> `lodash`), or undefined when it is not bare. */
export function bareName(specifier: string): string | undefined {
  const first = specifier.charCodeAt(0)
  // relative, absolute, package imports (#x), Windows drives and URLs (node:, file:, data:) are not bare
  if (first === 46 /* . */ || first === 47 /* / */ || first === 35 /* # */ || specifier.includes(':') || specifier.includes('\\')) return undefined
  if (isBuiltin(specifier)) return undefined
  const parts = specifier.split('/')
  if (specifier.startsWith('@')) return parts.length >= 2 && parts[1] ? `${parts[0]}/${parts[1]}` : undefined
  return parts[0] || undefined
}

const linked = new Set<string>()

/**
 * A directory from which Node's own resolution of `name` (and `name/sub`) finds the package
 * unpacked at `pkg.root`, so `exports`, `main`, subpaths and import/require conditions work as
 * in an install. When the root already sits at `<dir>/node_modules/<name>` that is `<dir>`;
 * otherwise a symlink `<cacheDir>/.links/<hash>/node_modules/<name>` -> root is made (once per
 * node: the rename is atomic, and every process makes the same link). Node resolves symlinks to
 * real paths, so the files load from the root and their own imports are matched to the package.
 */
export function resolveBase(redirect: Redirect): string {
  const { name, pkg, cacheDir } = redirect
  const depth = name.split('/').length
  let modules = pkg.root
  for (let i = 0; i < depth; i++) modules = dirname(modules)
  if (basename(modules) === 'node_modules' && pkg.root === join(modules, name)) return dirname(modules)
  const base = join(cacheDir, '.links', pkg.hash)
  const link = join(base, 'node_modules', name)
  if (linked.has(link)) return base
  try {
    lstatSync(link)
  } catch {
    mkdirSync(dirname(link), { recursive: true })
    const temp = `${link}.${process.pid}-${Math.random().toString(36).slice(2)}`
    symlinkSync(pkg.root, temp, 'dir')
    renameSync(temp, link)
  }
  linked.add(link)
  return base
}

/** A file in `base` to resolve from: Node looks for `base/node_modules/<name>` first. */
export function importerIn(base: string): string {
  return base + sep + 'tsflow-import.js'
}
