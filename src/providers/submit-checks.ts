import { ConfigError, ProviderError } from '../errors.js'
import { isEnvName } from '../launchers/shell.js'
import type { Launcher } from '../launchers/base.js'

/**
 * The checks every provider's submit() makes before it starts anything, written once so that
 * local, batch and Kubernetes blocks refuse the same input with the same words.
 */

/** Block ids become file names, job and pod names and script text: a safe alphabet only. */
const BLOCK_ID = /^[A-Za-z0-9_.-]{1,64}$/

export function checkBlockId(provider: string, blockId: string): void {
  if (!BLOCK_ID.test(blockId)) {
    throw new ProviderError(provider, `block id ${JSON.stringify(blockId)} must be 1-64 characters from A-Z a-z 0-9 _ . -`)
  }
}

/** Refuses a variable name bash could not export; the block would fail in an obscure way later. */
export function checkEnvNames(provider: string, blockId: string, env: Readonly<Record<string, string>>): void {
  const badName = Object.keys(env).find((name) => !isEnvName(name))
  if (badName !== undefined) {
    throw new ProviderError(provider, `environment variable name ${JSON.stringify(badName)} for block ${blockId} is not valid in bash (use letters, digits and _)`)
  }
}

/** The launcher's text for the block; a launcher's ConfigError becomes the provider's error. */
export function launchedCommand(provider: string, blockId: string, launcher: Launcher, command: string, tasksPerNode: number, nodesPerBlock: number): string {
  try {
    return launcher.wrap(command, tasksPerNode, nodesPerBlock)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    throw new ProviderError(provider, `cannot build the command of block ${blockId}: ${error.message}`, { cause: error })
  }
}
