import { ConfigError } from '../errors.js'
import { anyOf, arrayOf, boolean, join, nonNegativeInt, number, positiveInt, positiveNumber, string, type Check, type Validated } from '../util/schema.js'
import type { Launcher, LauncherType } from '../launchers/base.js'
import { launcherOption } from '../launchers/index.js'

/** The options every provider has: how many blocks, how big, and how each one starts. */
export interface BlockOptions {
  /** Blocks started when the executor starts (default 1). */
  initBlocks?: number
  /** Blocks kept even when there is no work (default 0). */
  minBlocks?: number
  /** Blocks never exceeded (default 1). */
  maxBlocks?: number
  /** Slots wanted per outstanding task, 0..1 (default 1). */
  parallelism?: number
  /** Nodes in one block (default 1). */
  nodesPerBlock?: number
  /** How the command runs on the block's nodes: a Launcher, a type name, or { type, ...options }. */
  launcher?: Launcher | LauncherType | ({ type: LauncherType } & Record<string, unknown>)
  /** Shell lines the block runs before its command, e.g. 'module load python' or 'source venv/bin/activate'. */
  workerInit?: string | string[]
  /** Longest a provider operation (starting, polling or stopping a block) may take, ms. */
  cmdTimeoutMs?: number
  /** CPU cores to request on each node (batch schedulers; default: the scheduler's own). */
  coresPerNode?: number
  /** Memory to request on each node, in GB (default: the scheduler's own). */
  memPerNode?: number
  /** How long a block may run, "HH:MM:SS" or "D-HH:MM:SS" (default: none asked for). */
  walltime?: string
  /** Extra scheduler directive lines, written verbatim after tsflow's own (e.g. '#SBATCH --gres=gpu:1'). */
  schedulerOptions?: string | string[]
  /** Ask for whole nodes, shared with no other job (default false). */
  exclusive?: boolean
}

export interface ResolvedBlockOptions {
  initBlocks: number
  minBlocks: number
  maxBlocks: number
  parallelism: number
  nodesPerBlock: number
  launcher: Launcher
  /** workerInit joined into one newline-separated text ('' when none) */
  workerInit: string
  cmdTimeoutMs: number
  coresPerNode: number | undefined
  memPerNode: number | undefined
  /** walltime as written ('' when none) */
  walltime: string
  /** walltime in seconds, undefined when none */
  walltimeSeconds: number | undefined
  /** schedulerOptions joined into newline-separated lines ('' when none) */
  schedulerOptions: string
  exclusive: boolean
}

const workerInit: Check<string> = anyOf(
  'a string or an array of strings (shell lines)',
  (value, path) => (value === '' ? '' : string(value, path)),
  (value, path) => arrayOf(string)(value, path).join('\n'),
)

/**
 * "HH:MM:SS", "MM:SS" is refused (ambiguous between schedulers), "D-HH:MM:SS" for days: the
 * forms Slurm, PBS and Grid Engine all read once formatted back (see formatWalltime).
 */
export function parseWalltime(value: unknown, path: string): number {
  const text = string(value, path).trim()
  const match = /^(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)$/.exec(text)
  if (!match) {
    // Two fields read as MM:SS on Slurm but HH:MM elsewhere: say which we would not guess.
    const two = /^(\d+):([0-5]\d)$/.exec(text)
    const hint = two ? `; two fields are ambiguous (minutes:seconds to Slurm, hours:minutes to others): write "00:${two[1]!.padStart(2, '0')}:${two[2]}" or "${two[1]!.padStart(2, '0')}:${two[2]}:00"` : ''
    throw new ConfigError(path, `must be a walltime "HH:MM:SS" or "D-HH:MM:SS" (got ${JSON.stringify(value)})${hint}`)
  }
  const [, days = '0', hours, minutes, seconds] = match
  const total = Number(days) * 86400 + Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds)
  if (total <= 0) throw new ConfigError(path, `must be longer than zero (got ${JSON.stringify(value)})`)
  return total
}

/** Seconds as "HH:MM:SS" with hours past 24 allowed (what every batch scheduler accepts). */
export function formatWalltime(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds))
  const pad = (n: number): string => String(n).padStart(2, '0')
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`
}

const walltime: Check<string> = (value, path) => {
  parseWalltime(value, path)
  return string(value, path).trim()
}

/** Directive lines: each must be one line; blank entries are dropped. */
const schedulerOptions: Check<string> = anyOf(
  'a string or an array of strings (directive lines)',
  // '' means none, as workerInit's does (a config built with `cond ? '#SBATCH ...' : ''`).
  (value, path) => (value === '' ? '' : string(value, path).trim()),
  (value, path) =>
    arrayOf(string)(value, path)
      .map((line, i) => {
        if (line.includes('\n')) throw new ConfigError(join(path, i), 'must be one line; give several lines as several entries')
        return line.trim()
      })
      .filter((line) => line !== '')
      .join('\n'),
)

/** Schema entries for the block options; a provider spreads them into its own object() shape. */
export const blockOptionShape = {
  initBlocks: nonNegativeInt,
  minBlocks: nonNegativeInt,
  maxBlocks: positiveInt,
  parallelism: number(0, 1, 'a number from 0 to 1'),
  nodesPerBlock: positiveInt,
  launcher: launcherOption,
  workerInit,
  cmdTimeoutMs: positiveNumber,
  coresPerNode: positiveInt,
  memPerNode: positiveNumber,
  walltime,
  schedulerOptions,
  exclusive: boolean,
}

export const DEFAULT_CMD_TIMEOUT_MS = 10_000

/**
 * Applies defaults to validated block options and checks how they relate to each other, naming
 * the option to change. `defaults` lets a provider choose its own (Slurm defaults to srun).
 */
export function resolveBlockOptions(
  options: Validated<typeof blockOptionShape>,
  path: string,
  defaults: { launcher: () => Launcher; nodesPerBlock?: number; cmdTimeoutMs?: number },
): ResolvedBlockOptions {
  const resolved: ResolvedBlockOptions = {
    initBlocks: options.initBlocks ?? 1,
    minBlocks: options.minBlocks ?? 0,
    maxBlocks: options.maxBlocks ?? 1,
    parallelism: options.parallelism ?? 1,
    nodesPerBlock: options.nodesPerBlock ?? defaults.nodesPerBlock ?? 1,
    launcher: options.launcher ?? defaults.launcher(),
    workerInit: options.workerInit ?? '',
    cmdTimeoutMs: options.cmdTimeoutMs ?? defaults.cmdTimeoutMs ?? DEFAULT_CMD_TIMEOUT_MS,
    coresPerNode: options.coresPerNode,
    memPerNode: options.memPerNode,
    walltime: options.walltime ?? '',
    walltimeSeconds: options.walltime === undefined ? undefined : parseWalltime(options.walltime, join(path, 'walltime')),
    schedulerOptions: options.schedulerOptions ?? '',
    exclusive: options.exclusive ?? false,
  }
  // maxBlocks is at least 1 and the defaults of the others are at most 1, so a violation always
  // involves a value the user set: name that one.
  for (const lower of ['minBlocks', 'initBlocks'] as const) {
    if (resolved[lower] > resolved.maxBlocks) {
      const max = `${resolved.maxBlocks}${options.maxBlocks === undefined ? ', the default' : ''}`
      throw new ConfigError(join(path, lower), `(${resolved[lower]}) must not exceed maxBlocks (${max}); raise maxBlocks or lower ${lower}`)
    }
  }
  return resolved
}
