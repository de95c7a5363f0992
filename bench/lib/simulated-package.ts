/**
 * The generated many-file package the proxy-imports benchmarks share (bench/proxy-imports,
 * bench/pack-measure, bench/extract-measure, bench/network-fs-imports): the seed's "simulated
 * package", N small ES modules and an entry importing every one of them.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TracedPackage } from 'tsflow/imports'

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

/** The simulated package as tracing would report it, for the measures that pack it directly. */
export function simulatedTracedPackage(install: string, files: number, fileBytes = 256): TracedPackage {
  const name = makeSimulatedPackage(install, files, fileBytes)
  return { name, root: join(install, 'node_modules', name), version: '1.0.0', native: false, importedBy: 'bench', dependencies: {} }
}
