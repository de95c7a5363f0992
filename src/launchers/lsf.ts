/** jsrun: IBM Job Step Manager (LSF systems such as Summit). */
import { ConfigError } from '../errors.js'
import { anyOf, literal, nonNegativeInt, optional, positiveInt, string } from '../util/schema.js'
import type { Launcher } from './base.js'
import { bashCopy, checkCommand, checkCounts, checkOptions, overridesShape, rankPrelude, toolLine, trimmed } from './common.js'

export interface JsrunLauncherOptions {
  /** Extra jsrun flags inserted as written, e.g. '--smpiargs=none'. */
  overrides?: string
  /** CPUs (physical cores) per copy: jsrun -c. A number, or 'ALL_CPUS' (all of a node's share). */
  cpusPerCopy?: number | 'ALL_CPUS'
  /** GPUs per copy: jsrun -g (0 allowed). */
  gpusPerCopy?: number | 'ALL_GPUS'
  /** jsrun --bind: 'none', 'rs', 'packed:N', ... (default: jsrun's own). */
  bind?: string
}

/** JSM names the rank and local rank; the node index is derived (jsrun -r fills nodes in order). */
export const JSRUN_RANKS = {
  rank: ['JSM_NAMESPACE_RANK', 'OMPI_COMM_WORLD_RANK', 'PMIX_RANK'],
  local: ['JSM_NAMESPACE_LOCAL_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK'],
} as const

const jsrunShape = {
  ...overridesShape,
  cpusPerCopy: anyOf<number | 'ALL_CPUS'>("a positive integer or 'ALL_CPUS'", positiveInt, literal('ALL_CPUS' as const)),
  gpusPerCopy: anyOf<number | 'ALL_GPUS'>("a non-negative integer or 'ALL_GPUS'", nonNegativeInt, literal('ALL_GPUS' as const)),
  bind: optional(string),
}

/**
 * `jsrun -n N -r K -a 1 [-c C] [-g G] [--bind B] bash -c '...'`: one resource set per copy,
 * K resource sets per node, one task in each.
 */
export class JsrunLauncher implements Launcher {
  readonly type = 'jsrun'
  private options: { overrides: string; cpusPerCopy?: number | 'ALL_CPUS'; gpusPerCopy?: number | 'ALL_GPUS'; bind?: string }

  constructor(private readonly raw: JsrunLauncherOptions = {}) {
    this.options = { overrides: trimmed(raw?.overrides) }
    // Usable without validate(); a bad option is reported (with its config path) by validate().
    try {
      this.validate('launcher')
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
    }
  }

  validate(path: string): void {
    const options = checkOptions(jsrunShape, this.raw, path)
    this.options = {
      overrides: trimmed(options.overrides),
      ...(options.cpusPerCopy !== undefined ? { cpusPerCopy: options.cpusPerCopy } : {}),
      ...(options.gpusPerCopy !== undefined ? { gpusPerCopy: options.gpusPerCopy } : {}),
      ...(options.bind !== undefined ? { bind: options.bind.trim() } : {}),
    }
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    const { overrides, cpusPerCopy, gpusPerCopy, bind } = this.options
    const flags = [
      `-n ${copies}`,
      `-r ${tasksPerNode}`,
      '-a 1',
      cpusPerCopy !== undefined ? `-c ${cpusPerCopy}` : undefined,
      gpusPerCopy !== undefined ? `-g ${gpusPerCopy}` : undefined,
      bind ? `--bind ${bind}` : undefined,
      overrides,
    ]
    return toolLine('jsrun', flags, bashCopy(command, rankPrelude(JSRUN_RANKS, tasksPerNode)))
  }

  describe(): Record<string, unknown> {
    return { type: this.type, ...this.options }
  }
}
