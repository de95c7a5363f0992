#!/usr/bin/env node
/** Entry point of the interchange process (`tsflow-interchange`); see src/interchange/cli.ts. */
import { runInterchangeCli } from '../interchange/cli.js'

runInterchangeCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // Sockets are closed by now and the process ends by itself; this only guards against a
    // handle someone forgot, so a stopped interchange never lingers.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`tsflow-interchange: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
