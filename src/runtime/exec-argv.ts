/**
 * The node flags a worker (thread or child process) should inherit from the workflow process:
 * loaders and runtime options yes (so TypeScript workflows and source maps work there too),
 * flags about how the main script was given or debugged no (`-e`, `--input-type`, `--inspect`
 * would break or collide in a worker).
 */
const DROPPED_WITH_VALUE = new Set(['-e', '--eval', '-p', '--print', '--input-type', '--inspect-port', '--debug-port'])
const DROPPED_PREFIXES = ['--input-type=', '--eval=', '--print=', '--inspect', '--debug', '--test', '--watch', '--prof', '--cpu-prof', '--heap-prof', '--heapsnapshot', '--diagnostic-dir', '--report']

export function workerExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const kept: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (DROPPED_WITH_VALUE.has(flag)) {
      i++
      continue
    }
    if (flag === '-i' || flag === '--interactive' || DROPPED_PREFIXES.some((prefix) => flag.startsWith(prefix))) continue
    kept.push(flag)
  }
  return kept
}
