#!/usr/bin/env node
/**
 * `tsflow`: the command line (`npx tsflow endpoint start <name>`, ...); see src/cli/main.ts. It
 * loads only what its commands need, never the kernel, so it starts fast.
 */
import { ExitCode } from '../cli/args.js'
import { runTsflow } from '../cli/main.js'

runTsflow(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  (code) => {
    process.exitCode = code
    // Let stdout drain, but never let a handle someone left open keep a finished command alive.
    setTimeout(() => process.exit(code), 1000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`tsflow: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(ExitCode.failed)
  },
)
