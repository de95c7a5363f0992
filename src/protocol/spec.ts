/**
 * The machinery behind each boundary spec (interchange.ts, manager.ts): a table of fields, each
 * with its command-line flag, its check and its help line. From that one table come the
 * validation of an options object (errors name `executors[0].coresPerWorker`), the argv the
 * spawning side passes, the strict parsing of that argv on the other side (errors name
 * `--cores-per-worker`) and the usage text. So a new option is one line in one table.
 */
import { ConfigError, UsageError } from '../errors.js'
import { join, object, type Check, type Shape } from '../util/schema.js'

export interface Field<T> {
  /** command-line flag, without the leading dashes */
  flag: string
  check: Check<T>
  /** how the command-line text becomes the value the check sees (default: the text itself) */
  parse?: (text: string) => unknown
  /** how a value becomes command-line text (default: String(value)) */
  format?(value: T): string
  /** the help line, with its default in brackets */
  help: string
  /** placeholder in the usage text (default VALUE) */
  arg?: string
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each field has its own value type
export type Fields = Record<string, Field<any>>
export type ValuesOf<F extends Fields> = { [K in keyof F]?: F[K] extends Field<infer T> ? T : never }

/** Cross-field rules, reported at the option path `at(key)` gives (an option path or a flag). */
export type Refine<F extends Fields> = (values: ValuesOf<F>, at: (key: keyof F & string) => string) => void

export interface ArgvSpec<F extends Fields> {
  readonly program: string
  readonly fields: F
  /** Validates an options object; errors name `path.key`. Unset keys stay unset. */
  validate(value: unknown, path: string): ValuesOf<F>
  /** The argv for these values: `--flag value` for each one set, in table order. */
  encode(values: ValuesOf<F>): string[]
  /** Parses what `encode` produced (or a person typed); 'help' for --help. Throws UsageError naming the flag. */
  decode(argv: readonly string[]): ValuesOf<F> | 'help'
  /** One line per flag. */
  usage(): string
}

/** Number(text) when the text looks like a number, else the text itself (so the error shows it). */
export const asNumber = (text: string): unknown => (/^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(text) ? Number(text) : text)

/** A comma-separated list; empty items are kept so the check can refuse them. */
export const asList = (text: string): unknown => text.split(',').map((item) => item.trim())

export function defineArgvSpec<F extends Fields>(program: string, fields: F, refine?: Refine<F>): ArgvSpec<F> {
  const shape: Shape = {}
  const byFlag = new Map<string, keyof F & string>()
  for (const [key, field] of Object.entries(fields)) {
    shape[key] = field.check
    byFlag.set(field.flag, key)
  }
  const check = object(shape)
  const flagOf = (key: keyof F & string) => `--${fields[key]!.flag}`
  return {
    program,
    fields,
    validate(value, path) {
      const values = check(value, path) as ValuesOf<F>
      refine?.(values, (key) => join(path, key))
      return values
    },
    encode(values) {
      const argv: string[] = []
      for (const [key, field] of Object.entries(fields)) {
        const value = (values as Record<string, unknown>)[key]
        if (value === undefined) continue
        argv.push(`--${field.flag}`, field.format ? field.format(value) : String(value))
      }
      return argv
    },
    decode(argv) {
      const raw = new Map<keyof F & string, string>()
      for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!
        if (arg === '--help' || arg === '-h') return 'help'
        if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (flags start with --; see --help)`)
        const eq = arg.indexOf('=')
        const flag = arg.slice(2, eq < 0 ? undefined : eq)
        const key = byFlag.get(flag)
        if (key === undefined) throw new UsageError(`unknown flag --${flag} (see --help for the flags ${program} accepts)`)
        let text: string | undefined
        if (eq >= 0) text = arg.slice(eq + 1)
        else {
          text = argv[i + 1]
          if (text === undefined || text.startsWith('--')) throw new UsageError(`--${flag} expects a value`)
          i++
        }
        if (raw.has(key)) throw new UsageError(`--${flag} was given twice`)
        raw.set(key, text)
      }
      const values: Record<string, unknown> = {}
      try {
        for (const [key, text] of raw) {
          const field = fields[key]!
          values[key] = field.check(field.parse ? field.parse(text) : text, flagOf(key))
        }
        refine?.(values as ValuesOf<F>, flagOf)
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error })
        throw error
      }
      return values as ValuesOf<F>
    },
    usage() {
      const rows = Object.values(fields).map((field) => [`--${field.flag} ${field.arg ?? 'VALUE'}`, field.help] as const)
      const width = Math.max(...rows.map(([left]) => left.length)) + 2
      return rows.map(([left, help]) => `  ${left.padEnd(width)}${help}`).join('\n')
    },
  }
}

/** A check that refuses empty and blank strings (paths, ids). */
export const nonEmptyString: Check<string> = (value, path) => {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(path, `must be a non-empty string (got ${JSON.stringify(value)})`)
  }
  return value
}
