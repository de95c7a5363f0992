import type { File } from '../data/file.js'
import type { ResourceSpec } from '../protocol/resources.js'
import type { PtyOptions } from '../protocol/task.js'
import { ConfigError } from '../errors.js'
import { AUTO_LOGNAME, type StdStreamOption } from './std-streams.js'
import type { FunctionDescriptor, TransportMode } from '../serialize/function-ref.js'
import { packageName } from '../executors/imports.js'
import { arrayOf, anyOf, boolean, integer, literal, nonNegativeInt, number, object, oneOf, positiveNumber, recordOf, string, type Check } from '../util/schema.js'

/** Options fixed when an app is defined. */
export interface AppOptions {
  /** Name in logs, errors and the memo key. Default: the function's name. */
  name?: string
  /** Labels of executors that may run this app, or 'all' (default). */
  executors?: 'all' | string[]
  /** Memoize results (needs `appCache` in the config, on by default). */
  cache?: boolean
  /** Argument indices and call-option names left out of the memo key. */
  ignoreForCache?: (number | string)[]
  /** Retries for this app, instead of the config's `retries`. */
  retries?: number
  /** Seconds a try may run before it is stopped and fails with WalltimeExceeded. */
  walltime?: number
  /** Higher-priority tasks leave executor queues first. Default 0. */
  priority?: number
  /** Per-task resource needs, for executors that place tasks on slots. */
  resources?: ResourceSpec
  /** How the function reaches workers; see docs/apps.md. Default 'auto'. */
  transport?: TransportMode
  /**
   * Packages shipped with this app's tasks by an executor's `proxyImports` option, besides those
   * traced from its module (docs/proxy-imports.md); ignored by executors without the option.
   */
  modules?: string[]
}

export interface BashAppOptions extends AppOptions {
  /** Run the command under a pseudo-terminal (for tools that insist on one). */
  pty?: boolean | PtyOptions
  /** Default `stdout` of every call (a call's own `stdout` wins); AUTO_LOGNAME names a file per task. */
  stdout?: StdStreamOption
  /** Default `stderr` of every call. */
  stderr?: StdStreamOption
}

/** Options for one call, given with `app.with({...})(...args)`. */
export interface CallOptions {
  /** Extra dependencies: futures here are awaited before launch; values reach the task as `inputs`. */
  inputs?: unknown[]
  /** Files the task produces; each gets a DataFuture in `future.outputs`. */
  outputs?: (File | string)[]
  /**
   * bash apps: where stdout goes: a path or File (appended to), [path, 'w' | 'a'], or
   * AUTO_LOGNAME (a file per task under the run directory). Other apps see it as `this.stdout`.
   */
  stdout?: StdStreamOption
  /** bash apps: where stderr goes (as stdout; the same file for both is opened once). */
  stderr?: StdStreamOption
  walltime?: number
  priority?: number
  executors?: string[]
  resources?: ResourceSpec
  /** bash apps: working directory and extra environment variables. */
  cwd?: string
  env?: Record<string, string>
  pty?: boolean | PtyOptions
}

export type AppKind = 'js' | 'bash' | 'join'

export interface AppDefinition {
  readonly name: string
  readonly kind: AppKind
  readonly fn: (...args: never[]) => unknown
  /** How the function travels; absent for join apps, which run in the workflow process. */
  readonly descriptor: FunctionDescriptor | undefined
  /** Module/key or source digest: the memo key's notion of "the same app". */
  readonly identity: string
  readonly options: Readonly<BashAppOptions>
}

const resources = object({ cores: positiveNumber, memoryMb: positiveNumber, gpus: nonNegativeInt })
const pty = anyOf<boolean | PtyOptions>(
  'true, false or { cols, rows }',
  boolean as Check<boolean | PtyOptions>,
  object({ cols: integer(1, 1000), rows: integer(1, 1000) }) as Check<boolean | PtyOptions>,
)
// anyOf tries the next alternative only after a ConfigError, so each alternative throws one.
const fileCheck: Check<unknown> = (value, path) => {
  if (typeof value === 'object' && value !== null && typeof (value as File).url === 'string') return value
  throw new ConfigError(path, 'is not a File')
}
const streamTarget: Check<unknown> = anyOf(
  "a path, [path, 'w' | 'a'], a File or AUTO_LOGNAME",
  string as Check<unknown>,
  literal(AUTO_LOGNAME) as Check<unknown>,
  ((value: unknown, path: string) => {
    if (Array.isArray(value) && value.length === 2) {
      string(value[0], `${path}[0]`)
      oneOf('w', 'a')(value[1], `${path}[1]`)
      return value
    }
    throw new ConfigError(path, 'is not a [path, mode] pair')
  }) as Check<unknown>,
  fileCheck,
)

export const appOptionsSchema = object({
  name: string,
  executors: anyOf<'all' | string[]>("'all' or an array of executor labels", literal('all'), arrayOf(string, { nonEmpty: true })),
  cache: boolean,
  ignoreForCache: arrayOf(anyOf<number | string>('an argument index or a call-option name', nonNegativeInt, string)),
  retries: nonNegativeInt,
  walltime: positiveNumber,
  priority: number(),
  resources,
  transport: oneOf('auto', 'reference', 'source'),
  modules: arrayOf(packageName),
  pty,
  stdout: streamTarget,
  stderr: streamTarget,
})

export const callOptionsSchema = object({
  inputs: arrayOf((value) => value),
  outputs: arrayOf(anyOf('a path or a File', string as Check<unknown>, fileCheck)),
  stdout: streamTarget,
  stderr: streamTarget,
  walltime: positiveNumber,
  priority: number(),
  executors: arrayOf(string, { nonEmpty: true }),
  resources,
  cwd: string,
  env: recordOf(string),
  pty,
  dfk: (value) => value,
})
