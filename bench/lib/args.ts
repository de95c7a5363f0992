/**
 * Command-line flags for the data-layer benches, in the style of Python's argparse (the seed
 * benchmarks' CLI): `--flag value`, `--flag=value`, and list flags that take every value up to
 * the next `--flag` (`--stage-task-counts 1 3 1 1`). Errors are thrown as BenchUsage so the entry
 * point prints them with the usage text and exits 2.
 */

export class BenchUsage extends Error {
  override name = 'BenchUsage'
}

export interface FlagSpec {
  /** default value(s); a list flag has an array */
  default: string | string[]
  /** takes one or more values (argparse nargs='+') */
  list?: boolean
  /** a list flag whose values may also be given comma-separated ("1,3,1,1") */
  commas?: boolean
  /** allowed values */
  choices?: readonly string[]
  help: string
}

export type Flags<S extends Record<string, FlagSpec>> = { [K in keyof S]: S[K]['list'] extends true ? string[] : string }

export function parseArgs<S extends Record<string, FlagSpec>>(argv: readonly string[], spec: S): Flags<S> | 'help' {
  const out: Record<string, string | string[]> = {}
  for (const [name, flag] of Object.entries(spec)) out[name] = Array.isArray(flag.default) ? [...flag.default] : flag.default
  const known = () => Object.keys(spec).map((k) => `--${k}`).join(' ')
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (!arg.startsWith('--')) throw new BenchUsage(`unexpected argument '${arg}' (values follow their flag)`)
    const eq = arg.indexOf('=')
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    const flag = spec[name]
    if (!flag) {
      const near = Object.keys(spec).find((k) => k.includes(name) || name.includes(k))
      throw new BenchUsage(`unknown flag --${name}${near ? ` (did you mean --${near}?)` : ''}; known: ${known()}`)
    }
    const values: string[] = []
    if (eq >= 0) values.push(arg.slice(eq + 1))
    else if (flag.list) while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) values.push(argv[++i]!)
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) values.push(argv[++i]!)
    if (values.length === 0) throw new BenchUsage(`--${name} needs ${flag.list ? 'one or more values' : 'a value'}`)
    if (flag.list) {
      const split = flag.commas ? values.flatMap((v) => v.split(/[ ,]+/)).filter(Boolean) : values
      for (const v of split) checkChoice(name, flag, v)
      out[name] = split
    } else {
      checkChoice(name, flag, values[0]!)
      out[name] = values[0]!
    }
  }
  return out as Flags<S>
}

function checkChoice(name: string, flag: FlagSpec, value: string): void {
  if (flag.choices && !flag.choices.includes(value)) throw new BenchUsage(`--${name} ${value}: must be one of ${flag.choices.join(', ')}`)
}

export function usage(command: string, summary: string, spec: Record<string, FlagSpec>): string {
  const lines = Object.entries(spec).map(([name, flag]) => {
    const value = flag.list ? ' V [V ...]' : ' V'
    const shown = Array.isArray(flag.default) ? flag.default.join(' ') : flag.default
    const choices = flag.choices ? ` [${flag.choices.join('|')}]` : ''
    return `  --${name}${value}`.padEnd(34) + `${flag.help}${choices}${shown !== '' ? ` (default: ${shown})` : ''}`
  })
  return `Usage: ${command} [options]\n\n${summary}\n\nOptions:\n${lines.join('\n')}\n`
}

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40, K: 1e3, M: 1e6, G: 1e9 }

/** "100MB" -> 100_000_000, "10KiB" -> 10_240, "1000" -> 1000 (decimal units like ProxyStore's readable sizes). */
export function parseBytes(text: string, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = match?.[2]?.toUpperCase() ?? ''
  if (!match || !(unit in UNITS)) throw new BenchUsage(`${flag} ${text}: not a size; use bytes or a number with KB, MB, GB (1000s) or KiB, MiB, GiB (1024s), e.g. 100MB`)
  return Math.round(Number(match[1]) * UNITS[unit]!)
}

/** 1536 -> "1.5 KB"-style text for tables (decimal units). */
export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes)
  for (const [unit, size] of [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]] as const) {
    if (abs >= size) return `${(bytes / size).toFixed(abs >= size * 100 ? 0 : 1)} ${unit}`
  }
  return `${bytes} B`
}

export function parseNumber(text: string, flag: string, { min = 0, integer = false } = {}): number {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new BenchUsage(`${flag} ${text}: must be ${integer ? 'an integer' : 'a number'} >= ${min}`)
  }
  return value
}
