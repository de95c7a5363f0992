/**
 * A launcher turns the command one block must run on each of its nodes (for the high-throughput
 * executor: the manager command) into the shell text the block's script runs. Launchers are pure
 * string builders: they start nothing, so they are tested on their output alone.
 */
export interface Launcher {
  /** The type name, as used in plain-object configs (`launcher: 'srun'`). */
  readonly type: string
  /**
   * Returns bash text that runs `command` `tasksPerNode` times on each of `nodesPerBlock` nodes
   * and whose exit status is the block's: 0 only if every copy succeeded. `command` may span
   * several lines.
   */
  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string
  /** Checks the launcher's own options, naming problems relative to `path` (`...provider.launcher`). */
  validate?(path: string): void
  /** Settings worth recording next to a benchmark result. */
  describe(): Record<string, unknown>
}

/** Launcher type names known to plain-object configs. */
export const LAUNCHER_TYPES = ['single_node', 'simple', 'wrapped', 'srun', 'mpiexec', 'mpirun', 'aprun', 'jsrun'] as const
export type LauncherType = (typeof LAUNCHER_TYPES)[number]
