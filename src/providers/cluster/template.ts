import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ProviderError } from '../../errors.js'

/**
 * Fills `${name}` placeholders. A placeholder without a value is an error, not an empty string:
 * a template edited by hand with a typo must not silently submit a broken script.
 */
export function renderTemplate(text: string, values: Readonly<Record<string, string | number>>, what = 'template'): string {
  const missing = new Set<string>()
  const out = text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
    const value = values[name]
    if (value === undefined) {
      missing.add(name)
      return whole
    }
    return String(value)
  })
  if (missing.size > 0) {
    throw new ProviderError(what, `placeholder(s) ${[...missing].map((name) => `\${${name}}`).join(', ')} have no value; known: ${Object.keys(values).sort().join(', ')}`)
  }
  // Lines left empty by an empty value (no directives, no workerInit) are dropped when they
  // were the placeholder alone, so the script reads as if written by hand.
  return out.replace(/\n{3,}/g, '\n\n')
}

/** The package root: the nearest directory above this module with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('tsflow: cannot find the package root (no package.json above the providers module)')
    dir = parent
  }
  return dir
}

const cache = new Map<string, string>()

/**
 * The batch script template of one scheduler: src/providers/<dir>/template.sh, shipped with the
 * package (the `src` folder is in `files`), read once per process.
 */
export function loadTemplate(dir: string): string {
  let text = cache.get(dir)
  if (text === undefined) {
    const path = join(packageRoot(), 'src', 'providers', dir, 'template.sh')
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      throw new ProviderError(dir, `cannot read the batch script template ${path}: ${(error as Error).message}`, { cause: error })
    }
    cache.set(dir, text)
  }
  return text
}
