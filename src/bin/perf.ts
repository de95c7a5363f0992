#!/usr/bin/env node
/**
 * `tsflow-perf`: measures the task throughput of a tsflow configuration, like parsl-perf.
 * See src/perf/cli.ts and docs/perf.md. The body is guarded so that importing this module (a
 * worker resolving apps, a test) starts nothing.
 */
import { isMainModule } from '../app/main.js'
import { runPerf, ExitCode } from '../perf/cli.js'

if (isMainModule(import.meta)) {
  let code: number
  try {
    code = await runPerf(process.argv.slice(2), {
      stdout: process.stdout,
      stderr: process.stderr,
      tty: process.stdout.isTTY === true && process.env.TERM !== 'dumb',
      env: process.env,
    })
  } catch (error) {
    process.stderr.write(`tsflow-perf: internal error: ${(error as Error)?.stack ?? String(error)}\n`)
    code = ExitCode.failed
  }
  // Let stdout drain, but never let a handle someone left open keep a finished run alive.
  process.exitCode = code
  setTimeout(() => process.exit(code), 1000).unref()
}
