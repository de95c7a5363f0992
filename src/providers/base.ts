import type { Logger } from '../util/logger.js'
import type { Launcher } from '../launchers/base.js'

/**
 * A block is one unit of resources a provider obtains: one scheduler job, or for the local
 * provider one group of local processes. It runs the executor's per-node command (for the
 * high-throughput executor: a manager) on each of its nodes through the provider's launcher.
 *
 * States: 'pending' (queued at the scheduler), 'running', and the final ones: 'completed' (the
 * block's command exited 0), 'failed' (non-zero exit, killed by a signal, or lost), 'cancelled'
 * (stopped through cancel()). 'unknown' means the provider cannot tell right now (a scheduler
 * that did not answer, a job id it never started); it is not final.
 */
export type BlockState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled' | 'unknown'

export const FINAL_BLOCK_STATES: readonly BlockState[] = ['completed', 'failed', 'cancelled']

export function isFinalBlockState(state: BlockState): boolean {
  return FINAL_BLOCK_STATES.includes(state)
}

export interface BlockStatus {
  blockId: string
  jobId: string
  state: BlockState
  /** Why the block is in this state; for a failed block, the tail of its stderr. */
  message?: string
  exitCode?: number
  /** the signal that ended the block, if one did */
  signal?: string
}

/** What a provider gets once before its first submit. */
export interface ProviderContext {
  /** Where block scripts and their stdout/stderr files go; created if missing. */
  readonly scriptDir: string
  readonly logger: Logger
}

export interface SubmitOptions {
  /** Extra environment variables for the block's command (exported in the block's script). */
  env?: Readonly<Record<string, string>>
  /** Copies of the command per node (default 1: the high-throughput executor runs one manager per node). */
  tasksPerNode?: number
  /**
   * Small files the command reads from the workflow host, by absolute path: for the
   * high-throughput executor with encryption on, the CURVE keys a manager needs. Providers whose
   * nodes share the host's filesystem (local, batch schedulers) ignore it; a provider whose
   * nodes do not (Kubernetes) must make each file readable at that same path, mode 0400.
   */
  files?: Readonly<Record<string, string>>
}

/**
 * The provider plug-in interface. A provider starts, polls and stops blocks; it decides nothing
 * about how many (that is the strategy's job, src/scaling/). Every provider shares the block-count
 * options (initBlocks, minBlocks, maxBlocks, parallelism, nodesPerBlock, launcher, workerInit,
 * cmdTimeoutMs; see providers/options.ts) and validates them once, in validate().
 */
export interface ExecutionProvider {
  /** The type name ('local', 'slurm', ...), as used in plain-object configs. */
  readonly label: string
  readonly nodesPerBlock: number
  /** Blocks started when the executor starts. */
  readonly initBlocks: number
  /** Blocks kept even when there is no work. */
  readonly minBlocks: number
  /** Blocks never exceeded. */
  readonly maxBlocks: number
  /** Slots wanted per outstanding task, 0..1: 1 = a slot for every task, 0 = as few blocks as possible. */
  readonly parallelism: number
  readonly launcher: Launcher
  /**
   * How long a block may run, in seconds (the provider's `walltime` option), when known. The
   * executor tells its managers, so that tasks go only to blocks with enough time left.
   */
  readonly walltimeSeconds?: number | undefined
  /** Checks options, naming problems relative to `path` (e.g. `executors[0].provider`). */
  validate(path: string): void
  /** Gives the provider its script directory and logger; called once before the first submit. */
  init(context: ProviderContext): Promise<void>
  /**
   * Starts one block running `command` on each node (through the launcher) and resolves to the
   * provider's job id for it. The command's environment has TSFLOW_BLOCK_ID=<blockId> plus
   * `options.env`. Rejects with ProviderError if the block could not be started.
   */
  submit(command: string, blockId: string, options?: SubmitOptions): Promise<string>
  /** Current state of the given jobs, one entry per job id, in the same order. */
  status(jobIds: readonly string[]): Promise<BlockStatus[]>
  /** Stops the given jobs (the whole process tree of each). Unknown or finished jobs are ignored. */
  cancel(jobIds: readonly string[]): Promise<void>
  /** Cancels every block still running and releases resources; bounded in time, never rejects. */
  shutdown(): Promise<void>
  /** Settings worth recording next to a benchmark result. */
  describe(): Record<string, unknown>
  /**
   * Optional: calls `listener` as soon as the provider sees a block end (the local provider sees
   * its process exit), so the scaling strategy polls and replaces it then rather than at its next
   * period. Returns the unsubscribe function. Providers that learn of ends only by polling omit it.
   */
  onBlockEnd?(listener: (jobId: string) => void): () => void
}
