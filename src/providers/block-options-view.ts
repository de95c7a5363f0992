import type { Launcher } from '../launchers/base.js'
import type { ResolvedBlockOptions } from './options.js'

/**
 * The block options every provider exposes through the ExecutionProvider interface, read from
 * its resolved options: one place for the getters the local, cluster and Kubernetes providers
 * share. A provider sets `options` in its constructor (defaults) and again in validate().
 */
export abstract class BlockOptionsView {
  protected abstract options: ResolvedBlockOptions

  get initBlocks(): number {
    return this.options.initBlocks
  }
  get minBlocks(): number {
    return this.options.minBlocks
  }
  get maxBlocks(): number {
    return this.options.maxBlocks
  }
  get parallelism(): number {
    return this.options.parallelism
  }
  get nodesPerBlock(): number {
    return this.options.nodesPerBlock
  }
  get launcher(): Launcher {
    return this.options.launcher
  }
  /** The block walltime in seconds (walltime-aware scheduling), or undefined when none was asked for. */
  get walltimeSeconds(): number | undefined {
    return this.options.walltimeSeconds
  }
}
