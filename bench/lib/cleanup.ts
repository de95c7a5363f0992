/**
 * Cleanup steps a bench registers before it starts something (a sampler process, a redis-server,
 * a kernel): run in reverse order when the bench ends, and also on Ctrl-C, SIGTERM or SIGHUP, so
 * no child process outlives the bench. A second signal while cleaning up exits at once.
 */
type Step = () => unknown

const steps: Step[] = []
let installed = false
let running: Promise<void> | undefined

export function onCleanup(step: Step): void {
  steps.push(step)
  if (installed) return
  installed = true
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (running) process.exit(signal === 'SIGINT' ? 130 : 143)
      console.error(`\n${signal}: stopping (cleaning up child processes and stored objects)`)
      void runCleanups().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
    })
  }
}

/** True once a signal (or the end of the bench) started the clean-up: errors after it are its echo. */
export function stopping(): boolean {
  return running !== undefined
}

/** Runs every registered step once, newest first; a failing step is reported, not fatal. */
export function runCleanups(): Promise<void> {
  running ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!
      try {
        await step()
      } catch (error) {
        console.error(`cleanup step failed: ${(error as Error)?.message ?? error}`)
      }
    }
  })()
  return running
}

/**
 * A data-layer bench's entry: runs it, maps a usage error to exit code 2 with a hint, reports other
 * errors unless a signal is already stopping the bench, and always runs the cleanups.
 */
export async function runBench(name: string, bench: (argv: string[]) => Promise<number>, usageError: new (...args: never[]) => Error): Promise<void> {
  try {
    process.exitCode = await bench(process.argv.slice(2))
  } catch (error) {
    if (error instanceof usageError) {
      console.error(`${name}: ${error.message}\n(see --help)`)
      process.exitCode = 2
    } else if (!stopping()) {
      console.error(error)
      process.exitCode = 1
    }
  } finally {
    await runCleanups()
  }
}
