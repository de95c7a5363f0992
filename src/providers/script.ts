import { exportLines, shellQuote } from '../launchers/shell.js'

/**
 * Script sections every provider's block script shares, so a block behaves the same whether
 * bash runs it here or a scheduler runs it on a node.
 */

/**
 * workerInit under `set -eE`: a failing line (a missing venv, a module that will not load) ends
 * the block at once with that line's exit code and names the line in the block's stderr,
 * instead of letting the command start in a half-prepared environment. `onExit` is extra shell
 * run when it does (the cluster providers record the exit code there).
 */
export function workerInitSection(blockId: string, workerInit: string, onExit = ''): string[] {
  if (workerInit.trim() === '') return []
  // blockId is restricted to [A-Za-z0-9_.-] by the providers, so it is safe inside double quotes.
  const ended = `tsflow: block ${blockId} ended during workerInit with exit code $tsflow_init_status\${tsflow_init_cmd:+ (failing line: $tsflow_init_cmd)}; the command did not start`
  return [
    '',
    '# workerInit',
    'set -eE',
    // ERR remembers the failing line; EXIT reports it, because some failures (a missing file
    // given to `source`) end the shell without running the ERR trap.
    `trap 'tsflow_init_cmd=$BASH_COMMAND' ERR`,
    `trap 'tsflow_init_status=$?; echo "${ended}" >&2${onExit ? `; ${onExit}` : ''}' EXIT`,
    workerInit,
    'trap - ERR EXIT',
    'set +eE',
  ]
}

export interface BlockSetupParts {
  blockId: string
  /** exported first; includes TSFLOW_BLOCK_ID */
  env: Readonly<Record<string, string>>
  workerInit: string
  /** where the script records the exit status of its command: evidence that outlives the scheduler's memory */
  exitFile: string
  walltimeSeconds: number | undefined
}

/**
 * Environment, block clock, workerInit and the exit record, in that order. The exit record is
 * written by an EXIT trap ("<code> <epoch seconds>"), so it exists for a command that failed as
 * well as one that succeeded; only a SIGKILL (a scheduler's hard stop) leaves none.
 */
export function blockSetup(parts: BlockSetupParts): string {
  const lines = [
    exportLines(parts.env),
    // When the block started and how long it may run: managers read these to know their end time.
    'export TSFLOW_BLOCK_START_MS=$(( $(date +%s%N) / 1000000 ))',
  ]
  if (parts.walltimeSeconds !== undefined) lines.push(`export TSFLOW_BLOCK_WALLTIME_S=${parts.walltimeSeconds}`)
  lines.push(
    '# records how the block ended; the provider reads it when the scheduler has forgotten the job',
    `tsflow_record_exit() { echo "$1 $(date +%s)" > ${shellQuote(parts.exitFile)}; }`,
  )
  lines.push(...workerInitSection(parts.blockId, parts.workerInit, 'tsflow_record_exit $tsflow_init_status'))
  lines.push(`trap 'tsflow_record_exit $?' EXIT`)
  return lines.join('\n')
}
