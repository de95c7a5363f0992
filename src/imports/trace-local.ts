/**
 * Tracing's walk over the workflow's own files (docs/proxy-imports.md, "What is traced"): from
 * the app's defining module through its relative (and absolute, and `file:`) imports, its
 * `require('./x')` calls and its package.json `imports` (`#x`), transitively, each file once, so
 * a package imported only by a helper module is found too, and named with that helper as its
 * importer. Files inside node_modules are packages, which trace.ts follows by their manifests.
 *
 * Resolution is a superset of Node's and tsx's: the exact file first, then tsx's TypeScript
 * counterparts (`./x.js` may be `./x.ts`), the CommonJS extension list, a directory's
 * package.json `main` and index files. A file that is not found is not fatal (the worker's Node
 * reports it, where the workflow's files are anyway): it is recorded in `untraced`.
 *
 * TypeScript and JSX files are compiled with esbuild (tsx's own compiler, installed with tsflow)
 * before they are lexed, so type-only imports are dropped exactly as they are when tsx runs the
 * file; so is JavaScript the lexer rejects.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { createRequire, isBuiltin } from 'node:module'
import { dirname, extname, isAbsolute, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { init, parse } from 'es-module-lexer'

/** How a specifier is loaded: `import`/`export from`/`import()`, or `require()`. */
export type ImportKind = 'import' | 'require'

export interface ModuleSpecifier {
  specifier: string
  kind: ImportKind
}

/** An import tracing could not follow: recorded, not fatal, for the executor to log. */
export interface UntracedImport {
  specifier: string
  /** the workflow's file that imports it */
  importer: string
  /** why it is not traced, and what that means for the workers */
  reason: string
}

/** A package import found in one of the workflow's files. */
export interface LocalPackageImport {
  specifier: string
  /** the file that imports it (named by PackageNotFound) */
  importer: string
  /** where Node looks for it from: the importer's directory, or its package scope for `#x` targets */
  fromDir: string
}

export interface LocalTrace {
  /** the workflow's files read, the entry first */
  files: string[]
  packages: LocalPackageImport[]
  untraced: UntracedImport[]
}

// require('x') / require("x") outside strings and comments is what matters; the ESM lexer
// already tells code from strings, so CommonJS sources are scanned after blanking comments.
const REQUIRE_CALL = /(?<![\w$.])require\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g
const COMMENTS = /\/\*[\s\S]*?\*\/|(?<![:'"\w])\/\/[^\n]*/g
type Loader = 'ts' | 'tsx' | 'jsx'
/** files compiled (as tsx compiles them) before they are lexed */
const COMPILED: Record<string, Loader> = { '.ts': 'ts', '.mts': 'ts', '.cts': 'ts', '.tsx': 'tsx', '.jsx': 'jsx' }
/** files that are read for imports; others (.json, .node, .wasm) are loaded, not parsed */
const SOURCE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '', ...Object.keys(COMPILED)])
/** what Node's require and tsx try after a specifier without its extension */
const TRY_EXTENSIONS = ['.js', '.json', '.node', '.ts', '.tsx', '.cts', '.mts', '.mjs', '.cjs']
/** tsx: a JavaScript extension in a specifier may name the TypeScript file */
const TS_COUNTERPARTS: Record<string, string[]> = { '.js': ['.ts', '.tsx'], '.jsx': ['.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'] }

/** Every specifier one module's source imports, with how; TypeScript and JSX (by `file`'s extension) compiled first. */
export async function moduleSpecifiers(source: string, file?: string): Promise<ModuleSpecifier[]> {
  await init
  const loader = file === undefined ? undefined : COMPILED[extname(file)]
  let code = loader === undefined ? source : compile(source, file!, loader)
  let imports = lex(code)
  if (imports === undefined && loader === undefined && file !== undefined) {
    // JavaScript the lexer does not take (JSX in a .js file, say): what esbuild makes of it
    const compiled = compile(source, file, 'jsx')
    if (compiled !== source) [code, imports] = [compiled, lex(compiled)]
  }
  const found = new Map<string, ModuleSpecifier>()
  const add = (specifier: string, kind: ImportKind): void => {
    if (!found.has(`${kind}:${specifier}`)) found.set(`${kind}:${specifier}`, { specifier, kind })
  }
  for (const entry of imports ?? []) {
    if (entry.n !== undefined) add(entry.n, 'import')
    else if (entry.d >= 0) {
      // import(`./x.js`): a template without substitutions is a literal too
      const literal = /^\s*`([^`$\\]*)`\s*$/.exec(code.slice(entry.s, entry.e))
      if (literal) add(literal[1]!, 'import')
    }
  }
  // not ESM syntax (e.g. CommonJS using a reserved word) or not: the require scan runs too
  for (const match of code.replace(COMMENTS, '').matchAll(REQUIRE_CALL)) add(match[2]!, 'require')
  return [...found.values()]
}

function lex(code: string): ReturnType<typeof parse>[0] | undefined {
  try {
    return parse(code)[0]
  } catch {
    return undefined
  }
}

/** A package import: not relative, absolute, `#x`, a URL or a built-in. */
export function isBare(specifier: string): boolean {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')) return false
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return false // node:, file:, data:, https:
  return !isBuiltin(specifier)
}

interface EsbuildTransform {
  transformSync(source: string, options: { loader: Loader; sourcefile: string; tsconfigRaw?: { compilerOptions: Record<string, unknown> } }): { code: string }
}
let esbuild: EsbuildTransform | null | undefined

/**
 * esbuild, found where tsx (tsflow's dependency) finds it, loaded on the first TypeScript file.
 * Null when it cannot be loaded: TypeScript is then lexed as it is, type-only statements skipped.
 */
function loadEsbuild(): EsbuildTransform | null {
  if (esbuild !== undefined) return esbuild
  try {
    const tsx = createRequire(import.meta.url).resolve('tsx/package.json')
    esbuild = createRequire(tsx)('esbuild') as EsbuildTransform
  } catch {
    esbuild = null
  }
  return esbuild
}

// The compiler options that decide which imports survive compilation (or are added, by the JSX
// runtime), from the tsconfig.json tsx itself reads (TSX_TSCONFIG_PATH, else the working directory's).
const IMPORT_OPTIONS = ['verbatimModuleSyntax', 'preserveValueImports', 'importsNotUsedAsValues', 'jsx', 'jsxImportSource', 'jsxFactory', 'jsxFragmentFactory']
const tsconfigOptions = new Map<string, Record<string, unknown>>()

function importCompilerOptions(): Record<string, unknown> {
  const path = process.env.TSX_TSCONFIG_PATH ?? join(process.cwd(), 'tsconfig.json')
  let options = tsconfigOptions.get(path)
  if (options !== undefined) return options
  options = {}
  try {
    // JSON with comments and trailing commas, as tsconfig files are written; `extends` is not followed
    const text = readFileSync(path, 'utf8').replace(/"(?:[^"\\]|\\.)*"|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m) => (m.startsWith('"') ? m : ''))
    const json = JSON.parse(text.replace(/,(\s*[}\]])/g, '$1')) as { compilerOptions?: Record<string, unknown> }
    for (const key of IMPORT_OPTIONS) if (json.compilerOptions?.[key] !== undefined) options[key] = json.compilerOptions[key]
  } catch {
    // no tsconfig (or not one JSON.parse reads after that): esbuild's defaults, which are tsx's too
  }
  tsconfigOptions.set(path, options)
  return options
}

function compile(source: string, file: string, loader: Loader): string {
  const compiler = loadEsbuild()
  if (compiler !== null) {
    try {
      return compiler.transformSync(source, { loader, sourcefile: file, tsconfigRaw: { compilerOptions: importCompilerOptions() } }).code
    } catch {
      // a syntax error: the run reports it; what the lexer finds in the source is still traced
    }
  }
  // Without esbuild: `import type ...` and `export type ... from` statements are blanked.
  return loader === 'jsx' ? source : source.replace(/^\s*(?:import|export)\s+type\s[^;]*?from\s*(['"])[^'"\n]*\1;?/gm, '')
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function resolveAsFile(path: string): string | undefined {
  if (isFile(path)) return path
  for (const ts of TS_COUNTERPARTS[extname(path)] ?? []) {
    const candidate = path.slice(0, -extname(path).length) + ts
    if (isFile(candidate)) return candidate
  }
  for (const extension of TRY_EXTENSIONS) if (isFile(path + extension)) return path + extension
  return undefined
}

/** The file `path` names as Node's require (and tsx) finds it: the file, with an extension, or a directory's main or index. */
export function resolveLocalPath(path: string): string | undefined {
  const file = resolveAsFile(path)
  if (file !== undefined) return realpathSync(file)
  if (!isDirectory(path)) return undefined
  try {
    const main = (JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as { main?: unknown }).main
    if (typeof main === 'string' && main !== '') {
      const target = resolveAsFile(resolve(path, main)) ?? resolveAsFile(join(resolve(path, main), 'index'))
      if (target !== undefined) return realpathSync(target)
    }
  } catch {
    // no package.json, or no main in it: the index file
  }
  const index = resolveAsFile(join(path, 'index'))
  return index === undefined ? undefined : realpathSync(index)
}

/** The package directory inside node_modules that holds `file`, or undefined for the workflow's own files. */
function packageInNodeModules(file: string): string | undefined {
  const marker = `${sep}node_modules${sep}`
  const at = file.lastIndexOf(marker)
  if (at < 0) return undefined
  const rest = file.slice(at + marker.length).split(sep)
  return file.slice(0, at + marker.length) + (rest[0]!.startsWith('@') ? `${rest[0]}${sep}${rest[1]}` : rest[0])
}

/** The nearest package.json above `file` (its package scope, as Node finds it), with its `imports`. */
function packageScope(file: string): { dir: string; imports: unknown } | undefined {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        return { dir, imports: (JSON.parse(readFileSync(manifest, 'utf8')) as { imports?: unknown }).imports }
      } catch {
        return undefined
      }
    }
    if (dir.endsWith(`${sep}node_modules`) || dirname(dir) === dir) return undefined
  }
}

/** A target of package.json `imports` with the conditions Node uses for `kind`: the first that matches, in the object's order. */
function importsTarget(target: unknown, kind: ImportKind, star: string | undefined): string | undefined {
  if (typeof target === 'string') return star === undefined ? target : target.replaceAll('*', star)
  if (Array.isArray(target)) {
    for (const item of target) {
      const found = importsTarget(item, kind, star)
      if (found !== undefined) return found
    }
    return undefined
  }
  if (target !== null && typeof target === 'object') {
    const conditions = ['node', kind, 'default']
    for (const [condition, value] of Object.entries(target)) {
      if (conditions.includes(condition)) {
        const found = importsTarget(value, kind, star)
        if (found !== undefined) return found
      }
    }
  }
  return undefined
}

/** `#x` through the importer's package.json `imports`: exact keys, then `*` patterns (the longest prefix wins). */
function resolvePackageImport(specifier: string, importer: string, kind: ImportKind): { target: string; scope: string } | undefined {
  const scope = packageScope(importer)
  if (scope === undefined || scope.imports === null || typeof scope.imports !== 'object') return undefined
  const map = scope.imports as Record<string, unknown>
  if (Object.hasOwn(map, specifier) && !specifier.includes('*')) {
    const target = importsTarget(map[specifier], kind, undefined)
    return target === undefined ? undefined : { target, scope: scope.dir }
  }
  let best: { key: string; star: string } | undefined
  for (const key of Object.keys(map)) {
    const at = key.indexOf('*')
    if (at < 0) continue
    const prefix = key.slice(0, at)
    const suffix = key.slice(at + 1)
    if (specifier.length >= key.length && specifier.startsWith(prefix) && specifier.endsWith(suffix) && (best === undefined || prefix.length > best.key.indexOf('*'))) {
      best = { key, star: specifier.slice(prefix.length, specifier.length - suffix.length) }
    }
  }
  if (best === undefined) return undefined
  const target = importsTarget(map[best.key], kind, best.star)
  return target === undefined ? undefined : { target, scope: scope.dir }
}

/**
 * The workflow's files reachable from `entry` (a path) by local imports, each read once, and the
 * package imports they hold, each with the file that imports it.
 */
export async function traceLocalModules(entry: string): Promise<LocalTrace> {
  const entryPath = existsSync(entry) ? realpathSync(entry) : entry
  // The entry may itself lie in a package (an app library): its own package's files are followed.
  const entryPackage = packageInNodeModules(entryPath)
  const files: string[] = []
  const packages: LocalPackageImport[] = []
  const untraced: UntracedImport[] = []
  const seen = new Set<string>([entryPath])
  const queue = [entryPath]
  const follow = (file: string, importer: string, specifier: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    const inPackage = packageInNodeModules(file)
    if (inPackage !== undefined && inPackage !== entryPackage) {
      untraced.push({ specifier, importer, reason: `it loads ${file} by its path, inside the installed package ${inPackage}: not shipped (only imports by package name are), so it must exist where the workers run` })
    } else if (SOURCE_EXTENSIONS.has(extname(file))) queue.push(file)
  }
  const local = (path: string, specifier: string, importer: string, how: string): void => {
    const file = resolveLocalPath(path)
    if (file === undefined) untraced.push({ specifier, importer, reason: `${how} ${path} was not found (not followed; the worker reports it if the import runs)` })
    else follow(file, importer, specifier)
  }

  while (queue.length > 0) {
    const file = queue.shift()!
    files.push(file)
    const fromDir = dirname(file)
    for (const { specifier, kind } of await moduleSpecifiers(readFileSync(file, 'utf8'), file)) {
      if (isBare(specifier)) packages.push({ specifier, importer: file, fromDir })
      else if (specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..') {
        local(resolve(fromDir, specifier), specifier, file, 'the file')
      } else if (isAbsolute(specifier)) local(specifier, specifier, file, 'the file')
      else if (specifier.startsWith('file:')) {
        let path: string | undefined
        try {
          path = fileURLToPath(specifier.replace(/[?#].*$/, ''))
        } catch {
          untraced.push({ specifier, importer: file, reason: 'not a file URL Node can load' })
        }
        if (path !== undefined) local(path, specifier, file, 'the file')
      } else if (specifier.startsWith('#')) {
        const mapped = resolvePackageImport(specifier, file, kind)
        if (mapped === undefined) untraced.push({ specifier, importer: file, reason: 'no package.json "imports" entry maps it (for this import kind)' })
        else if (mapped.target.startsWith('./')) local(resolve(mapped.scope, mapped.target), specifier, file, `the "imports" target`)
        else if (isBare(mapped.target)) {
          // Node resolves `#x` on the worker itself, from the workflow's package.json, so the
          // loader never sees the package name: a shipped copy would not be used.
          untraced.push({
            specifier,
            importer: file,
            reason: `package.json "imports" maps it to the package '${mapped.target}', which is not shipped: Node resolves '#' imports on the worker without the proxy-imports loader, so '${mapped.target}' must be installed where the workers run (or import it by its name)`,
          })
        } else if (!isBuiltin(mapped.target)) untraced.push({ specifier, importer: file, reason: `its "imports" target ${JSON.stringify(mapped.target)} is not followed` })
      }
      // node:, built-ins, data: and other URLs need nothing shipped
    }
  }
  return { files, packages, untraced }
}
