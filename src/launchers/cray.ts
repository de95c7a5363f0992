/** aprun: Cray ALPS (XC and older Cray systems under PBS or Moab/Torque). */
import type { Launcher } from './base.js'
import { bashCopy, checkCommand, checkCounts, checkOptions, overridesShape, rankPrelude, toolLine, trimmed } from './common.js'

export interface AprunLauncherOptions {
  /** Extra aprun flags inserted as written, e.g. '-cc none -d 4'. */
  overrides?: string
}

/** ALPS gives the processing element (rank) only; aprun -N places them node by node. */
export const APRUN_RANKS = { rank: ['ALPS_APP_PE'] } as const

/** `aprun -n N -N K bash -c '...'`: N processing elements, K on each node. */
export class AprunLauncher implements Launcher {
  readonly type = 'aprun'
  private overrides: string

  constructor(private readonly raw: AprunLauncherOptions = {}) {
    this.overrides = trimmed(raw?.overrides)
  }

  validate(path: string): void {
    this.overrides = trimmed(checkOptions(overridesShape, this.raw, path).overrides)
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    return toolLine('aprun', [`-n ${copies}`, `-N ${tasksPerNode}`, this.overrides], bashCopy(command, rankPrelude(APRUN_RANKS, tasksPerNode)))
  }

  describe(): Record<string, unknown> {
    return { type: this.type, overrides: this.overrides }
  }
}
