/**
 * What every `tsflow` command shares: its IO, exit codes, the command table entry, and a small
 * strict argument parser (flags declared per command; an unknown flag is a UsageError with a
 * did-you-mean). Command families (cli/endpoint.ts, later `monitor`) plug into cli/main.ts
 * through `CommandFamily`.
 */
import { UsageError } from '../errors.js'
import { nearest } from '../util/schema.js'

/**
 * 0 done; 1 failed (the message says why); 2 bad command line; 3 the endpoint is not running
 * (`status <name>`, as LSB init scripts answer "status" for a stopped service); 130 Ctrl-C.
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, notRunning: 3, interrupted: 130 } as const

export interface Output {
  write(text: string): unknown
}

export interface CliIo {
  stdout: Output
  stderr: Output
  env: NodeJS.ProcessEnv
}

/** A top-level command of `tsflow` (`endpoint`, and later `monitor`): a name, one help line, a runner. */
export interface CommandFamily {
  name: string
  summary: string
  run(argv: readonly string[], io: CliIo): Promise<number>
}

export interface FlagSpec {
  /** without the dashes */
  name: string
  /** placeholder of its value; none for a switch */
  value?: string
  /** may be given several times (values collected in order) */
  repeat?: boolean
  help: string
}

export interface ArgsSpec {
  /** `tsflow endpoint configure`, for messages */
  command: string
  flags: readonly FlagSpec[]
  /** positional arguments in order; `?` suffix marks an optional one */
  positionals: readonly string[]
}

export interface ParsedArgs {
  positionals: string[]
  /** switches map to true, valued flags to their text, repeatable ones to their texts */
  flags: Map<string, string | string[] | true>
}

/** Parses `argv` strictly against `spec`; 'help' for -h/--help anywhere. Throws UsageError naming the problem. */
export function parseArgs(argv: readonly string[], spec: ArgsSpec): ParsedArgs | 'help' {
  const byName = new Map(spec.flags.map((flag) => [flag.name, flag]))
  const positionals: string[] = []
  const flags = new Map<string, string | string[] | true>()
  let onlyPositionals = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (onlyPositionals || !arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    if (arg === '--') {
      onlyPositionals = true
      continue
    }
    if (arg === '-h' || arg === '--help') return 'help'
    if (!arg.startsWith('--')) throw new UsageError(`${spec.command}: unknown option '${arg}' (options are spelled --name; see --help)`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    const flag = byName.get(name)
    if (!flag) {
      const guess = nearest(name, [...byName.keys()])
      const known = spec.flags.map((f) => `--${f.name}`).join(', ') || 'none'
      throw new UsageError(`${spec.command}: unknown option --${name}${guess ? ` (did you mean --${guess}?)` : ''}; its options: ${known}`)
    }
    if (flag.value === undefined) {
      if (eq >= 0) throw new UsageError(`${spec.command}: --${name} takes no value (got '${arg.slice(eq + 1)}')`)
      flags.set(name, true)
      continue
    }
    let text: string
    if (eq >= 0) text = arg.slice(eq + 1)
    else {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${spec.command}: --${name} expects a value (${flag.value})`)
      text = next
      i++
    }
    if (flag.repeat) {
      const list = (flags.get(name) as string[] | undefined) ?? []
      list.push(text)
      flags.set(name, list)
    } else {
      if (flags.has(name)) throw new UsageError(`${spec.command}: --${name} was given twice`)
      flags.set(name, text)
    }
  }
  const required = spec.positionals.filter((p) => !p.endsWith('?')).length
  if (positionals.length < required) {
    const missing = spec.positionals.slice(positionals.length).filter((p) => !p.endsWith('?'))
    throw new UsageError(`${spec.command}: missing ${missing.map((p) => `<${p}>`).join(' ')}`)
  }
  if (positionals.length > spec.positionals.length) {
    throw new UsageError(`${spec.command}: unexpected argument '${positionals[spec.positionals.length]}'`)
  }
  return { positionals, flags }
}

/** The usage text of one command: its synopsis, a description and one line per flag. */
export function usageOf(spec: ArgsSpec, description: string): string {
  const synopsis = [spec.command, ...spec.positionals.map((p) => (p.endsWith('?') ? `[${p.slice(0, -1)}]` : `<${p}>`))]
  if (spec.flags.length > 0) synopsis.push('[options]')
  const rows = spec.flags.map((flag) => [`--${flag.name}${flag.value ? ` ${flag.value}` : ''}`, flag.help] as const)
  const width = Math.max(0, ...rows.map(([left]) => left.length)) + 2
  const options = rows.length > 0 ? `\nOptions:\n${rows.map(([left, help]) => `  ${left.padEnd(width)}${help}`).join('\n')}\n` : ''
  return `Usage: ${synopsis.join(' ')}\n\n${description.trim()}\n${options}`
}

export function flagText(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name)
  return typeof value === 'string' ? value : undefined
}

export function flagList(args: ParsedArgs, name: string): string[] {
  const value = args.flags.get(name)
  return Array.isArray(value) ? value : []
}

export function flagSet(args: ParsedArgs, name: string): boolean {
  return args.flags.get(name) === true
}

/** A positive integer flag in milliseconds (timeouts), or the default. */
export function flagMs(args: ParsedArgs, name: string, fallback: number): number {
  const text = flagText(args, name)
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`--${name} must be a positive whole number of milliseconds (got '${text}')`)
  }
  return value
}

/** "unknown command 'stat' (did you mean 'status'?)" for a subcommand name. */
export function unknownCommand(what: string, word: string, known: readonly string[]): UsageError {
  // A prefix of exactly one command ('stat' -> 'status') beats the nearest spelling ('start').
  const prefixed = known.filter((name) => name.startsWith(word))
  const guess = prefixed.length === 1 ? prefixed[0] : nearest(word, known)
  return new UsageError(`${what}: unknown command '${word}'${guess ? ` (did you mean '${guess}'?)` : ''}; commands: ${known.join(', ')}`)
}
