#!/usr/bin/env node
/**
 * `tsflow-manager`: the per-node worker pool of the high-throughput executor. Parses the command
 * line and runs src/manager/manager.ts; see docs/manager.md.
 */
import { parseManagerArgs, UsageError, USAGE } from '../manager/cli.js'
import { ExitCode, runManager } from '../manager/manager.js'
import { TSFLOW_VERSION } from '../protocol/version.js'

// `--version` after the whole runtime is loaded (the imports above): what starting a worker
// runtime costs, which the funcX suite's instantiation experiment times, bare and in a container.
if (process.argv.length === 3 && process.argv[2] === '--version') {
  process.stdout.write(`tsflow-manager ${TSFLOW_VERSION}\n`)
  process.exit(ExitCode.ok)
}

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
