#!/usr/bin/env node
/**
 * `tsflow`: the command line (`npx tsflow endpoint start <name>`, ...); see src/cli/main.ts. It
 * loads only what its commands need, never the kernel, so it starts fast.
 */
import { ExitCode } from '../cli/args.js'
import { runTsflow } from '../cli/main.js'

// A reader that goes away (`tsflow endpoint list | head -1`) is not an error of the command: what
// it did (a daemon started, a key allowed) is done; the rest of the output has nowhere to go.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw error
  })
}

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
