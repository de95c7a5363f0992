/**
 * Launchers that start the copies themselves, on the node the block's script runs on:
 * single_node (the local provider's default), simple (one copy, verbatim) and wrapped (each copy
 * under a prefix command such as `apptainer exec IMAGE`).
 */
import { ConfigError } from '../errors.js'
import { anyOf, arrayOf, optional, string, type Check } from '../util/schema.js'
import type { Launcher } from './base.js'
import { checkCommand, checkCounts, checkOptions } from './common.js'
import { shellQuote } from './shell.js'

/**
 * Bash text that runs `copies` copies of `body` side by side, each in a subshell with
 * TSFLOW_RANK (0..n-1), TSFLOW_NODE_RANK and TSFLOW_LOCAL_RANK exported, and waits for all of
 * them: its exit status is that of the first copy (by rank) that failed, so one broken copy
 * fails the block without cutting the others short.
 */
function copiesLoop(description: string, copies: number, tasksPerNode: number, body: string): string {
  // The subshell keeps each copy's exports and any `cd` or `exit` its own.
  return [
    `# ${description}`,
    `tsflow_pids=()`,
    `for ((tsflow_rank = 0; tsflow_rank < ${copies}; tsflow_rank++)); do`,
    `  (`,
    `    export TSFLOW_RANK=$tsflow_rank`,
    `    export TSFLOW_NODE_RANK=$((tsflow_rank / ${tasksPerNode}))`,
    `    export TSFLOW_LOCAL_RANK=$((tsflow_rank % ${tasksPerNode}))`,
    body,
    `  ) &`,
    `  tsflow_pids+=($!)`,
    `done`,
    `tsflow_status=0`,
    `for tsflow_pid in "\${tsflow_pids[@]}"; do`,
    `  wait "$tsflow_pid" || { tsflow_code=$?; [ "$tsflow_status" -ne 0 ] || tsflow_status=$tsflow_code; }`,
    `done`,
    `(exit "$tsflow_status")`,
  ].join('\n')
}

/**
 * Runs everything on the node the block's script runs on. One copy is the command verbatim.
 * Several copies (tasksPerNode > 1, or nodesPerBlock > 1 simulated on one machine, as the local
 * provider does) run side by side with their ranks exported (see copiesLoop).
 */
export class SingleNodeLauncher implements Launcher {
  readonly type = 'single_node'

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    if (copies === 1) return command
    return copiesLoop(`${copies} copies: ${nodesPerBlock} simulated node(s) x ${tasksPerNode} per node`, copies, tasksPerNode, command)
  }

  describe(): Record<string, unknown> {
    return { type: this.type }
  }
}

/**
 * Runs the command once, verbatim, whatever the counts: for commands that spread themselves over
 * the block's nodes (an MPI program, or a command that calls srun itself).
 */
export class SimpleLauncher implements Launcher {
  readonly type = 'simple'

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    checkCounts(this.type, tasksPerNode, nodesPerBlock)
    return command
  }

  describe(): Record<string, unknown> {
    return { type: this.type }
  }
}

export interface WrappedLauncherOptions {
  /**
   * The command each copy runs under: shell words inserted as written
   * (`'apptainer exec --bind /data image.sif'`), or an argv array, each element quoted
   * (`['podman', 'run', '--rm', 'image']`). The copy itself is `bash -c '<command>'`, so the
   * prefix must run its arguments as a command and `bash` must exist where it runs them.
   */
  prefix: string | readonly string[]
}

const nonBlank: Check<string> = (value, path) => {
  const text = string(value, path)
  if (text.trim() === '') throw new ConfigError(path, 'must not be blank')
  // The copy's `bash -c ...` follows on the same line; a line break would run it apart.
  if (/[\r\n]/.test(text)) throw new ConfigError(path, 'must be one line (shell words before the command); use an argv array for arguments with line breaks')
  return text
}
const prefixCheck = anyOf<string | string[]>(
  'a command prefix: a string like "apptainer exec image.sif" or an argv array like ["podman", "run", "--rm", "image"]',
  nonBlank,
  arrayOf(string, { nonEmpty: true }),
)
const wrappedShape = { type: optional(string), prefix: prefixCheck }

/**
 * Runs each copy under a prefix command (a container runtime, `env`, `nice`, `numactl`, ...).
 * Copies are started as single_node starts them; each runs
 * `PREFIX bash -c '<set ranks from $1 $2 $3>; <command>' tsflow-copy RANK NODE LOCAL`, so the
 * ranks reach the copy as arguments even through a prefix that does not pass the environment
 * on (`podman run` without `-e`).
 */
export class WrappedLauncher implements Launcher {
  readonly type = 'wrapped'
  private prefix: string

  constructor(private readonly raw: WrappedLauncherOptions = { prefix: '' }) {
    this.prefix = WrappedLauncher.render(raw?.prefix)
  }

  private static render(prefix: unknown): string {
    if (typeof prefix === 'string') return prefix.trim()
    if (Array.isArray(prefix)) return prefix.map((word) => shellQuote(String(word))).join(' ')
    return ''
  }

  validate(path: string): void {
    const options = checkOptions(wrappedShape, this.raw, path)
    if (options.prefix === undefined) throw new ConfigError(`${path}.prefix`, 'is required: the command each copy runs under, e.g. "apptainer exec image.sif"')
    this.prefix = WrappedLauncher.render(options.prefix)
  }

  wrap(command: string, tasksPerNode: number, nodesPerBlock: number): string {
    checkCommand(this.type, command)
    const copies = checkCounts(this.type, tasksPerNode, nodesPerBlock)
    if (this.prefix === '') throw new ConfigError('prefix', 'the wrapped launcher needs a prefix command, e.g. "apptainer exec image.sif"')
    const inner = `export TSFLOW_RANK="$1" TSFLOW_NODE_RANK="$2" TSFLOW_LOCAL_RANK="$3"; set --\n${command}`
    const copy = `${this.prefix} bash -c ${shellQuote(inner)} tsflow-copy "$TSFLOW_RANK" "$TSFLOW_NODE_RANK" "$TSFLOW_LOCAL_RANK"`
    return copiesLoop(`${copies} copies under ${this.prefix.replace(/[\r\n]+/g, ' ')}: ${nodesPerBlock} node(s) x ${tasksPerNode} per node`, copies, tasksPerNode, copy)
  }

  describe(): Record<string, unknown> {
    return { type: this.type, prefix: this.prefix }
  }
}
