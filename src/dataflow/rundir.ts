import { mkdirSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConfigError } from '../errors.js'

/**
 * Makes the next numbered run directory (`runinfo/000`, `runinfo/001`, ...). mkdir without
 * `recursive` fails if the directory exists, so two kernels starting together in the same
 * place each get their own.
 */
export function makeRunDir(base: string): string {
  const root = resolve(base)
  try {
    mkdirSync(root, { recursive: true })
  } catch (error) {
    throw runDirError(base, root, error)
  }
  let next = Math.max(-1, ...listRuns(root).map(Number)) + 1
  for (;;) {
    const dir = join(root, String(next).padStart(3, '0'))
    try {
      mkdirSync(dir)
      return dir
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw runDirError(base, root, error)
      next++
    }
  }
}

function runDirError(base: string, root: string, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code
  const why =
    code === 'ENOTDIR' || code === 'EEXIST'
      ? 'a part of that path is a file, not a directory'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? 'it is not writable'
        : (error as Error).message
  return new ConfigError('runDir', `(${JSON.stringify(base)}, resolved to ${root}) cannot hold run directories: ${why}; give a writable directory`, {
    cause: error,
  })
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
