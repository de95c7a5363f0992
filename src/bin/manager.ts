#!/usr/bin/env node
/**
 * `tsflow-manager`: the per-node worker pool of the high-throughput executor. Parses the command
 * line and runs src/manager/manager.ts; see docs/manager.md.
 */
import { parseManagerArgs, UsageError, USAGE } from '../manager/cli.js'
import { ExitCode, runManager } from '../manager/manager.js'

let options: ReturnType<typeof parseManagerArgs>
try {
  options = parseManagerArgs(process.argv.slice(2))
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  process.stderr.write(`tsflow-manager: ${error.message}\n`)
  process.exit(ExitCode.usage)
}

if (options === 'help') {
  process.stdout.write(USAGE)
  process.exit(ExitCode.ok)
}

let code: number
try {
  code = await runManager(options)
} catch (error) {
  process.stderr.write(`tsflow-manager: ${(error as Error)?.stack ?? String(error)}\n`)
  code = ExitCode.failed
}
// Explicit exit: nothing the workers or libraries left behind may keep the process alive.
process.exit(code)
