import { exportLines, shellQuote } from '../launchers/shell.js'
import { BLOCK_START_ENV, BLOCK_WALLTIME_ENV } from '../protocol/manager.js'

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

/**
 * When the block started and how long it may run: its managers read these to know their block's
 * end time (protocol/manager.ts blockEnd), which walltime-aware dispatch and draining rely on.
 */
export function blockClock(walltimeSeconds: number | undefined): string[] {
  const lines = [`export ${BLOCK_START_ENV}=$(( $(date +%s%N) / 1000000 ))`]
  if (walltimeSeconds !== undefined) lines.push(`export ${BLOCK_WALLTIME_ENV}=${walltimeSeconds}`)
  return lines
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
 * well as one that succeeded; a SIGTERM records 143; only a SIGKILL (a scheduler's hard stop)
 * leaves none.
 */
export function blockSetup(parts: BlockSetupParts): string {
  const lines = [exportLines(parts.env), ...blockClock(parts.walltimeSeconds)]
  lines.push(
    '# records how the block ended; the provider reads it when the scheduler has forgotten the job',
    `tsflow_record_exit() { echo "$1 $(date +%s)" > ${shellQuote(parts.exitFile)}; }`,
  )
  lines.push(...workerInitSection(parts.blockId, parts.workerInit, 'tsflow_record_exit $tsflow_init_status'))
  lines.push(`trap 'tsflow_record_exit $?' EXIT`)
  // A scheduler ends a job (walltime, cancel) with SIGTERM to the batch shell. Untrapped, bash
  // dies at once and its EXIT trap records the last finished command's status, 0, as though the
  // block had ended well (seen on Slurm at a TIMEOUT). Trapped, the record says 143 (128 + TERM),
  // or there is none if the SIGKILL after the grace period comes first.
  lines.push(`trap 'exit 143' TERM`)
  return lines.join('\n')
}
