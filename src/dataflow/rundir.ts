import { mkdirSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'

/**
 * Makes the next numbered run directory (`runinfo/000`, `runinfo/001`, ...). mkdir without
 * `recursive` fails if the directory exists, so two kernels starting together in the same
 * place each get their own.
 */
export function makeRunDir(base: string): string {
  const root = resolve(base)
  mkdirSync(root, { recursive: true })
  let next = Math.max(-1, ...listRuns(root).map(Number)) + 1
  for (;;) {
    const dir = join(root, String(next).padStart(3, '0'))
    try {
      mkdirSync(dir)
      return dir
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      next++
    }
  }
}

/** The numbered run directories under `root`, oldest first. */
export function listRuns(root: string): string[] {
  try {
    return readdirSync(root)
      .filter((name) => /^\d{3,}$/.test(name))
      .sort((a, b) => Number(a) - Number(b))
  } catch {
    return []
  }
}
