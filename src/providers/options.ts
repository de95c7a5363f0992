import { ConfigError } from '../errors.js'
import { anyOf, arrayOf, join, nonNegativeInt, number, positiveInt, positiveNumber, string, type Check, type Validated } from '../util/schema.js'
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
  /** How long a block may run, "HH:MM:SS" or "D-HH:MM:SS"; the scheduler (or LocalProvider) stops it then. */
  walltime?: string
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
  /** `walltime` in seconds; undefined when not set (no limit known) */
  walltimeSeconds: number | undefined
}

const workerInit: Check<string> = anyOf(
  'a string or an array of strings (shell lines)',
  (value, path) => (value === '' ? '' : string(value, path)),
  (value, path) => arrayOf(string)(value, path).join('\n'),
)

/** "HH:MM:SS" or "D-HH:MM:SS" (hours may exceed 23 in the first form) as seconds. */
export function parseWalltime(text: string): number | undefined {
  const match = /^\s*(?:(\d+)-)?(\d+):([0-5]?\d):([0-5]?\d)\s*$/.exec(text)
  if (!match) return undefined
  const [, days, hours, minutes, seconds] = match
  return Number(days ?? 0) * 86_400 + Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds)
}

const walltime: Check<number> = (value, path) => {
  const seconds = typeof value === 'string' ? parseWalltime(value) : undefined
  if (seconds === undefined || seconds <= 0) {
    throw new ConfigError(path, `must be a duration "HH:MM:SS" or "D-HH:MM:SS" longer than zero, e.g. "01:30:00" (got ${JSON.stringify(value)})`)
  }
  return seconds
}

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
  walltime,
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
    walltimeSeconds: options.walltime,
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
