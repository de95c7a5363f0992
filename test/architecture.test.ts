// The layering of src/ as docs/architecture.md states it: the doc's tables are the truth, this
// test reads them. Imports are found with the TypeScript parser (static, type-only, re-exports,
// `import()` and `import('...').Type`), not with regular expressions.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'src')
const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8')

/** Table rows of a markdown section (from `## title` or `### title` to the next heading). */
function rows(section: string): string[][] {
  const start = doc.search(new RegExp(`^#{2,3} ${section}$`, 'm'))
  if (start < 0) throw new Error(`docs/architecture.md has no section '${section}'`)
  const rest = doc.slice(start).split('\n').slice(1)
  const end = rest.findIndex((line) => /^#{2,3} /.test(line))
  return rest
    .slice(0, end < 0 ? undefined : end)
    .filter((line) => line.startsWith('|') && !/^\|\s*-+/.test(line))
    .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()))
}

const paths = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).filter((p) => /(\/|\.ts)$/.test(p))

/** module path (dir with trailing slash, or file) -> layer, from every layer table of the doc. */
const layers = new Map<string, number>()
for (const section of ['Layers and modules', 'High-throughput executor']) {
  for (const [layer, module] of rows(section)) {
    if (!/^\d+$/.test(layer ?? '')) continue
    for (const path of paths(module!)) {
      const known = layers.get(path)
      if (known !== undefined && known !== Number(layer)) throw new Error(`docs/architecture.md puts ${path} in layers ${known} and ${layer}`)
      layers.set(path, Number(layer))
    }
  }
}
const remoteEntries = rows('Remote processes')
  .map(([entry]) => paths(entry!)[0])
  .filter((entry): entry is string => entry !== undefined)
const KERNEL_SIDE = ['dataflow/', 'app/', 'config/', 'index.ts']

function layerOf(file: string): number | undefined {
  let best: string | undefined
  for (const module of layers.keys()) {
    const matches = module.endsWith('/') ? file.startsWith(module) : file === module
    if (matches && (best === undefined || module.length > best.length)) best = module
  }
  return best === undefined ? undefined : layers.get(best)
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [relative(src, path)] : []
  })
}

/** The src-relative files `file` imports (relative specifiers only; packages are not layered). */
function importsOf(file: string, text = readFileSync(join(src, file), 'utf8')): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const specifiers: string[] = []
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specifiers.push(node.moduleSpecifier.text)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      specifiers.push(node.argument.literal.text)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments
      if (argument && ts.isStringLiteralLike(argument)) specifiers.push(argument.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => relative(src, resolve(src, dirname(file), specifier.replace(/\.js$/, '.ts'))))
}

const files = sourceFiles(src)
const graph = new Map(files.map((file) => [file, importsOf(file)]))

t.test('the doc names a layer for every module of src/', async (t) => {
  t.ok(layers.size > 10, `layers read from docs/architecture.md (${layers.size} modules)`)
  const unplaced = files.filter((file) => layerOf(file) === undefined)
  t.same(unplaced, [], 'every file of src/ falls under a module of the layer table')
})

t.test('no module imports from a higher layer', async (t) => {
  const upward: string[] = []
  for (const [file, imports] of graph) {
    const own = layerOf(file)
    for (const target of imports) {
      const theirs = layerOf(target)
      if (own !== undefined && theirs !== undefined && theirs > own) upward.push(`${file} (layer ${own}) imports ${target} (layer ${theirs})`)
    }
  }
  t.same(upward, [], 'imports go to the same layer or lower ones')
})

t.test('remote-process entry points never reach the kernel side', async (t) => {
  t.ok(remoteEntries.length >= 5, `entry points read from docs/architecture.md: ${remoteEntries.join(', ')}`)
  for (const entry of remoteEntries) {
    t.ok(graph.has(entry), `${entry} exists`)
    // Breadth-first over the import graph, remembering how each file was reached.
    const via = new Map<string, string | undefined>([[entry, undefined]])
    const queue = [entry]
    const reached: string[] = []
    while (queue.length > 0) {
      const file = queue.shift()!
      if (KERNEL_SIDE.some((side) => (side.endsWith('/') ? file.startsWith(side) : file === side))) {
        const chain: string[] = []
        for (let at: string | undefined = file; at !== undefined; at = via.get(at)) chain.unshift(at)
        reached.push(chain.join(' -> '))
        continue
      }
      for (const next of graph.get(file) ?? []) {
        if (!via.has(next)) {
          via.set(next, file)
          queue.push(next)
        }
      }
    }
    t.same(reached, [], `${entry} reaches none of ${KERNEL_SIDE.join(', ')}`)
  }
})

t.test('the import finder sees every kind of import', async (t) => {
  // A guard against a parser change silently finding nothing: known edges of the real tree.
  t.ok(graph.get('protocol/messages.ts')?.includes('serialize/codec.ts'), 'a value import')
  // No module of the tree uses import('...').Type today: a synthetic one checks the finder sees it.
  t.same(importsOf('protocol/x.ts', "export type F = import('../serialize/function-ref.js').FunctionDescriptor"), ['serialize/function-ref.ts'], "an import('...').Type")
  t.ok(graph.get('executors/base.ts')?.includes('protocol/resources.ts'), 'a type-only import')
  t.ok(graph.get('protocol/index.ts')?.includes('protocol/manager.ts'), 'a re-export')
})
