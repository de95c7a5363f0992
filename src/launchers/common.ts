/**
 * What every launcher shares: the checks on its inputs, the rank prelude that maps a parallel
 * launcher's own rank variables onto TSFLOW_RANK / TSFLOW_NODE_RANK / TSFLOW_LOCAL_RANK, and
 * the `overrides` option.
 */
import { ConfigError } from '../errors.js'
import { object, optional, string, type Check, type Shape, type Validated } from '../util/schema.js'
import { shellQuote } from './shell.js'

/** Launchers are handed counts the provider validated; a bad count here is a programming error. */
export function checkCounts(launcher: string, tasksPerNode: number, nodesPerBlock: number): number {
  for (const [name, value] of [['tasksPerNode', tasksPerNode], ['nodesPerBlock', nodesPerBlock]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ConfigError(name, `must be a positive integer for the ${launcher} launcher (got ${String(value)})`)
    }
  }
  return tasksPerNode * nodesPerBlock
}

export function checkCommand(launcher: string, command: string): void {
  if (typeof command !== 'string' || command.trim() === '') {
    throw new ConfigError('command', `must be a non-empty command for the ${launcher} launcher`)
  }
}

/**
 * Where a parallel launcher tells each copy who it is. The first variable set wins; a node or
 * local rank the tool does not give is derived from the rank, which is right for the block
 * placement these launchers request (copies filled node by node, tasksPerNode on each).
 */
export interface RankSources {
  rank: readonly string[]
  node?: readonly string[]
  local?: readonly string[]
}

function firstSet(names: readonly string[]): string {
  // ${A:-${B:-}}: the first non-empty one, or empty.
  return names.reduceRight((inner, name) => `\${${name}:-${inner}}`, '')
}

/**
 * Bash lines, run inside each copy before its command, that export the TSFLOW_* ranks from the
 * tool's variables. Nothing is exported when the tool set none of them (an unknown MPI, say), so
 * a command can tell "no rank" from rank 0.
 */
export function rankPrelude(sources: RankSources, tasksPerNode: number): string {
  const node = sources.node?.length ? firstSet(sources.node) : ''
  const local = sources.local?.length ? firstSet(sources.local) : ''
  return [
    `tsflow_rank=${firstSet(sources.rank)}`,
    `if [ -n "$tsflow_rank" ]; then`,
    `  export TSFLOW_RANK=$tsflow_rank`,
    `  tsflow_node=${node}; export TSFLOW_NODE_RANK=\${tsflow_node:-$((tsflow_rank / ${tasksPerNode}))}`,
    `  tsflow_local=${local}; export TSFLOW_LOCAL_RANK=\${tsflow_local:-$((tsflow_rank % ${tasksPerNode}))}`,
    `fi`,
    `unset tsflow_rank tsflow_node tsflow_local`,
  ].join('\n')
}

/**
 * `bash -c '<prelude>\n<command>'`: one quoted word, so multi-line commands and their quoting
 * reach each copy intact whatever the launcher does with its own arguments.
 */
export function bashCopy(command: string, prelude: string): string {
  return `bash -c ${shellQuote(`${prelude}\n${command}`)}`
}

/** The `overrides` option every tool launcher has: extra flags inserted as written. */
export const overridesShape = { type: optional(string), overrides: string } satisfies Shape

/**
 * Checks raw options against `shape` (naming problems under `path`) and returns them; used both
 * by a constructor (lenient: a bad value is caught again by validate) and by validate.
 */
export function checkOptions<S extends Shape>(shape: S, raw: unknown, path: string): Validated<S> {
  return (object(shape) as Check<Validated<S>>)(raw, path)
}

export function trimmed(value: unknown): string {
  return typeof value === 'string' ? value.trim() : ''
}

/** "tool flag flag ... bash -c '...'" with empty flags dropped. */
export function toolLine(tool: string, flags: readonly (string | undefined)[], copy: string): string {
  return [tool, ...flags.filter((flag): flag is string => !!flag), copy].join(' ')
}
