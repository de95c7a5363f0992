import { ConfigError } from '../errors.js'
import { object, oneOf, optional, string } from '../util/schema.js'
import type { Launcher } from './base.js'
import { shellQuote } from './shell.js'

/** Launchers are handed counts the provider validated; a bad count here is a programming error. */
function checkCounts(launcher: string, tasksPerNode: number, nodesPerBlock: number): number {
  for (const [name, value] of [['tasksPerNode', tasksPerNode], ['nodesPerBlock', nodesPerBlock]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ConfigError(name, `must be a positive integer for the ${launcher} launcher (got ${String(value)})`)
    }
  }
  return tasksPerNode * nodesPerBlock
}

function checkCommand(launcher: string, command: string): void {
  if (command.trim() === '') throw new ConfigError('command', `must be a non-empty command for the ${launcher} launcher`)
}

/**
 * Runs everything on the node the block's script runs on. One copy is the command verbatim.
 * Several copies (tasksPerNode > 1, or nodesPerBlock > 1 simulated on one machine, as the local
 * provider does) run in the background side by side, each with TSFLOW_RANK (0..n-1),
 * TSFLOW_NODE_RANK and TSFLOW_LOCAL_RANK exported, and the block waits for all of them: its exit
 * status is that of the first copy (by rank) that failed, so one broken copy fails the block.
 */
export class SingleNodeLauncher implements Launcher {
  readonly type = 'single_node'

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    if (copies === 1) return command
    // Each copy runs in a subshell so its exported ranks and any `cd` or `exit` stay its own.
    return [
      `# ${copies} copies: ${nodesPerBlock} simulated node(s) x ${tasksPerNode} per node`,
      `tsflow_pids=()`,
      `for ((tsflow_rank = 0; tsflow_rank < ${copies}; tsflow_rank++)); do`,
      `  (`,
      `    export TSFLOW_RANK=$tsflow_rank`,
      `    export TSFLOW_NODE_RANK=$((tsflow_rank / ${tasksPerNode}))`,
      `    export TSFLOW_LOCAL_RANK=$((tsflow_rank % ${tasksPerNode}))`,
      command,
      `  ) &`,
      `  tsflow_pids+=($!)`,
      `done`,
      `tsflow_status=0`,
      `for tsflow_pid in "\${tsflow_pids[@]}"; do`,
      `  wait "$tsflow_pid" || { tsflow_code=$?; [ "$tsflow_status" -ne 0 ] || tsflow_status=$tsflow_code; }`,
      `done`,
      `(exit "$tsflow_status")`,
    ].join('\n')
  }

  describe(): Record<string, unknown> {
    return { type: this.type }
  }
}

/**
 * Runs the command once, verbatim, whatever the counts: for commands that spread themselves over
 * the block's nodes (an MPI program, or a command that calls srun itself).
 */
export class SimpleLauncher implements Launcher {
  readonly type = 'simple'

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    checkCounts(this.type, tasksPerNode, nodesPerBlock)
    return command
  }

  describe(): Record<string, unknown> {
    return { type: this.type }
  }
}

export interface SrunLauncherOptions {
  /** Extra srun flags inserted as written, e.g. '--cpu-bind=none --exclusive'. */
  overrides?: string
}

const srunSchema = object({ type: optional(string), overrides: string })

/** Starts the copies with Slurm's srun inside an allocation (the Slurm provider's blocks). */
export class SrunLauncher implements Launcher {
  readonly type = 'srun'
  private overrides: string

  constructor(private readonly raw: SrunLauncherOptions = {}) {
    this.overrides = typeof raw.overrides === 'string' ? raw.overrides.trim() : ''
  }

  validate(path: string): void {
    this.overrides = (srunSchema(this.raw, path).overrides ?? '').trim()
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    const flags = [`--ntasks=${copies}`, `--ntasks-per-node=${tasksPerNode}`, `--nodes=${nodesPerBlock}`]
    if (this.overrides) flags.push(this.overrides)
    // bash -c with one quoted word keeps multi-line commands and their quoting intact.
    return `srun ${flags.join(' ')} bash -c ${shellQuote(command)}`
  }

  describe(): Record<string, unknown> {
    return { type: this.type, overrides: this.overrides }
  }
}

export interface MpiExecLauncherOptions {
  /** Extra mpiexec flags inserted as written. */
  overrides?: string
  /**
   * How copies per node are requested: 'mpich' (MPICH, Intel MPI, Cray PALS: `-ppn N`, the
   * default) or 'openmpi' (`--map-by ppr:N:node`).
   */
  flavor?: 'mpich' | 'openmpi'
}

const mpiexecSchema = object({ type: optional(string), overrides: string, flavor: oneOf('mpich', 'openmpi') })

/** Starts the copies with mpiexec (PBS and other MPI-managed allocations). */
export class MpiExecLauncher implements Launcher {
  readonly type = 'mpiexec'
  private overrides: string
  private flavor: 'mpich' | 'openmpi'

  constructor(private readonly raw: MpiExecLauncherOptions = {}) {
    this.overrides = typeof raw.overrides === 'string' ? raw.overrides.trim() : ''
    this.flavor = raw.flavor === 'openmpi' ? 'openmpi' : 'mpich'
  }

  validate(path: string): void {
    const options = mpiexecSchema(this.raw, path)
    this.overrides = (options.overrides ?? '').trim()
    this.flavor = options.flavor ?? 'mpich'
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    const perNode = this.flavor === 'openmpi' ? `--map-by ppr:${tasksPerNode}:node` : `-ppn ${tasksPerNode}`
    const flags = [`-n ${copies}`, perNode]
    if (this.overrides) flags.push(this.overrides)
    return `mpiexec ${flags.join(' ')} bash -c ${shellQuote(command)}`
  }

  describe(): Record<string, unknown> {
    return { type: this.type, flavor: this.flavor, overrides: this.overrides }
  }
}
