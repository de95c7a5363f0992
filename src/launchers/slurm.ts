/** srun: the copies as the tasks of one Slurm job step, inside the block's allocation. */
import type { Launcher } from './base.js'
import { bashCopy, checkCommand, checkCounts, checkOptions, overridesShape, rankPrelude, toolLine, trimmed } from './common.js'

export interface SrunLauncherOptions {
  /** Extra srun flags inserted as written, e.g. '--cpu-bind=none --exclusive'. */
  overrides?: string
}

/** Slurm gives each task its rank, node index and local rank. */
export const SRUN_RANKS = { rank: ['SLURM_PROCID'], node: ['SLURM_NODEID'], local: ['SLURM_LOCALID'] } as const

/**
 * `srun --ntasks=N --ntasks-per-node=K --nodes=M bash -c '...'`. srun's exit status is non-zero
 * when any task failed, so it is the block's.
 */
export class SrunLauncher implements Launcher {
  readonly type = 'srun'
  private overrides: string

  constructor(private readonly raw: SrunLauncherOptions = {}) {
    this.overrides = trimmed(raw?.overrides)
  }

  validate(path: string): void {
    this.overrides = trimmed(checkOptions(overridesShape, this.raw, path).overrides)
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    const flags = [`--ntasks=${copies}`, `--ntasks-per-node=${tasksPerNode}`, `--nodes=${nodesPerBlock}`, this.overrides]
    return toolLine('srun', flags, bashCopy(command, rankPrelude(SRUN_RANKS, tasksPerNode)))
  }

  describe(): Record<string, unknown> {
    return { type: this.type, overrides: this.overrides }
  }
}
