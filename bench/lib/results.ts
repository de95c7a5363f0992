import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { cpus, freemem, hostname, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TSFLOW_VERSION } from 'tsflow'

/** The project's bench/results directory (from out/bench/lib or bench/lib). */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.includes('/out/') ? ['..'] : []), 'bench', 'results')

export interface Machine {
  host: string
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  tsflow: string
  commit: string
}

export function machine(): Machine {
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    // not a git checkout
  }
  return {
    host: hostname(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    tsflow: TSFLOW_VERSION,
    commit,
  }
}

/** Appends one JSON line (with the machine and a timestamp) to bench/results/<name>.jsonl. */
export function appendResult(name: string, row: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${name}.jsonl`)
  appendFileSync(file, `${JSON.stringify({ bench: name, at: new Date().toISOString(), machine: machine(), ...row })}\n`)
  return file
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export function parseFlags(argv: string[], defaults: Record<string, string>): Record<string, string> {
  const flags = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}; flags are: ${Object.keys(defaults).map((k) => `--${k}`).join(' ')}`)
    const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined]
    if (!(key in defaults)) throw new Error(`unknown flag --${key}; known: ${Object.keys(defaults).map((k) => `--${k}`).join(' ')}`)
    flags[key] = inline ?? argv[++i] ?? ''
  }
  return flags
}
