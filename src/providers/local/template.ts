import { exportLines, shellQuote } from '../../launchers/shell.js'
import { BLOCK_START_ENV } from '../../protocol/manager.js'

export interface LocalScriptParts {
  blockId: string
  /** the command after the launcher wrapped it */
  launched: string
  launcherType: string
  /** exported before workerInit; includes TSFLOW_BLOCK_ID */
  env: Readonly<Record<string, string>>
  /** shell lines, '' for none */
  workerInit: string
  scriptPath: string
}

/**
 * The bash script of one local block. It is self-contained (environment exported in it, not
 * passed by the provider) so that `bash <script>` by hand reproduces the block exactly.
 *
 * workerInit runs under `set -eE`: a failing line (a missing venv, a module that will not load)
 * ends the block at once with that line's exit code and names the line in the block's stderr,
 * instead of letting the command start in a half-prepared environment.
 */
export function localBlockScript(parts: LocalScriptParts): string {
  const lines = [
    '#!/usr/bin/env bash',
    `# tsflow block ${parts.blockId} (local provider), written ${new Date().toISOString()} by pid ${process.pid}.`,
    `# To reproduce the block by hand: bash ${shellQuote(parts.scriptPath)}`,
    // The start of the block's walltime, for its managers (seconds since the epoch).
    `export ${BLOCK_START_ENV}="\${EPOCHREALTIME:-$(date +%s)}"`,
    exportLines(parts.env),
  ]
  if (parts.workerInit.trim() !== '') {
    // blockId is restricted to [A-Za-z0-9_.-] by the provider, so it is safe inside double quotes.
    const ended = `tsflow: block ${parts.blockId} ended during workerInit with exit code $?\${tsflow_init_cmd:+ (failing line: $tsflow_init_cmd)}; the command did not start`
    lines.push(
      '',
      '# workerInit',
      'set -eE',
      // ERR remembers the failing line; EXIT reports it, because some failures (a missing file
      // given to `source`) end the shell without running the ERR trap.
      `trap 'tsflow_init_cmd=$BASH_COMMAND' ERR`,
      `trap 'echo "${ended}" >&2' EXIT`,
      parts.workerInit,
      'trap - ERR EXIT',
      'set +eE',
    )
  }
  lines.push('', `# the block's command, through the ${parts.launcherType} launcher`, parts.launched, '')
  return lines.join('\n')
}
