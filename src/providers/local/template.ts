import { exportLines, shellQuote } from '../../launchers/shell.js'
import { workerInitSection } from '../script.js'

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
 * workerInit runs as script.ts's workerInitSection describes.
 */
export function localBlockScript(parts: LocalScriptParts): string {
  const lines = [
    '#!/usr/bin/env bash',
    `# tsflow block ${parts.blockId} (local provider), written ${new Date().toISOString()} by pid ${process.pid}.`,
    `# To reproduce the block by hand: bash ${shellQuote(parts.scriptPath)}`,
    exportLines(parts.env),
  ]
  lines.push(...workerInitSection(parts.blockId, parts.workerInit))
  lines.push('', `# the block's command, through the ${parts.launcherType} launcher`, parts.launched, '')
  return lines.join('\n')
}
