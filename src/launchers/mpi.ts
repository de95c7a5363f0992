/**
 * mpiexec and mpirun: the copies as the ranks of one MPI launch. The two commands take the same
 * flags in each MPI; what differs is how copies per node are asked for, so each has a flavor:
 * 'mpich' (MPICH, Intel MPI, Cray PALS: `-ppn K`) or 'openmpi' (`--map-by ppr:K:node`).
 */
import { oneOf } from '../util/schema.js'
import type { Launcher } from './base.js'
import { bashCopy, checkCommand, checkCounts, checkOptions, overridesShape, rankPrelude, toolLine, trimmed } from './common.js'

export type MpiFlavor = 'mpich' | 'openmpi'

export interface MpiLauncherOptions {
  /**
   * Extra flags inserted as written, e.g. '--bind-to none'. Open MPI refuses to start as root
   * unless given '--allow-run-as-root' here (or OMPI_ALLOW_RUN_AS_ROOT=1 and
   * OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment); on a machine with fewer cores than
   * copies it also needs '--oversubscribe'.
   */
  overrides?: string
  /** How copies per node are requested; see the module comment. */
  flavor?: MpiFlavor
}
export type MpiExecLauncherOptions = MpiLauncherOptions
export type MpiRunLauncherOptions = MpiLauncherOptions

/**
 * Open MPI, MPICH's Hydra, Cray PALS and PMIx each name the rank differently; only one family is
 * set in a given launch. Only PALS gives a node index; elsewhere it is derived from the rank.
 */
export const MPI_RANKS = {
  rank: ['OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'PALS_RANKID', 'PMIX_RANK'],
  node: ['PALS_NODEID'],
  local: ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'PALS_LOCAL_RANKID'],
} as const

const mpiShape = { ...overridesShape, flavor: oneOf<MpiFlavor>('mpich', 'openmpi') }

/**
 * `<tool> -n N <per node> bash -c '...'`. Both MPIs exit non-zero when a rank does; Open MPI
 * then also stops the other ranks (a block with a failed manager ends).
 */
abstract class MpiLauncher implements Launcher {
  abstract readonly type: 'mpiexec' | 'mpirun'
  protected abstract readonly defaultFlavor: MpiFlavor
  private overrides: string
  private chosenFlavor: MpiFlavor | undefined

  constructor(private readonly raw: MpiLauncherOptions = {}) {
    this.overrides = trimmed(raw?.overrides)
    this.chosenFlavor = raw?.flavor === 'openmpi' || raw?.flavor === 'mpich' ? raw.flavor : undefined
  }

  get flavor(): MpiFlavor {
    return this.chosenFlavor ?? this.defaultFlavor
  }

  validate(path: string): void {
    const options = checkOptions(mpiShape, this.raw, path)
    this.overrides = trimmed(options.overrides)
    this.chosenFlavor = options.flavor
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    const perNode = this.flavor === 'openmpi' ? `--map-by ppr:${tasksPerNode}:node` : `-ppn ${tasksPerNode}`
    return toolLine(this.type, [`${this.countFlag} ${copies}`, perNode, this.overrides], bashCopy(command, rankPrelude(MPI_RANKS, tasksPerNode)))
  }

  protected abstract readonly countFlag: '-n' | '-np'

  describe(): Record<string, unknown> {
    return { type: this.type, flavor: this.flavor, overrides: this.overrides }
  }
}

/** mpiexec (PBS and other MPI-managed allocations); flavor 'mpich' unless told otherwise. */
export class MpiExecLauncher extends MpiLauncher {
  readonly type = 'mpiexec'
  protected readonly defaultFlavor = 'mpich'
  protected readonly countFlag = '-n'
}

/** mpirun; flavor 'openmpi' unless told otherwise (mpirun is usually Open MPI's). */
export class MpiRunLauncher extends MpiLauncher {
  readonly type = 'mpirun'
  protected readonly defaultFlavor = 'openmpi'
  protected readonly countFlag = '-np'
}
