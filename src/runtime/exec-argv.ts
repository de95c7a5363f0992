/**
 * The node flags a worker (thread or child process) should inherit from the workflow process:
 * loaders and runtime options yes (so TypeScript workflows and source maps work there too),
 * flags about how the main script was given or debugged no (`-e`, `--input-type`, `--inspect`
 * would break or collide in a worker).
 *
 * A workflow under tsx (`npx tsx flow.ts`, `node --import tsx flow.ts`, tsx in NODE_OPTIONS)
 * also gets typescript-loader.js preloaded in its workers, because tsx alone registers its
 * hooks in main threads only on Node 20; a workflow whose main module is TypeScript without any
 * visible loader gets tsx (a dependency of tsflow) added.
 */
import { createRequire } from 'node:module'
import { isAbsolute, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'

const DROPPED_WITH_VALUE = new Set(['-e', '--eval', '-p', '--print', '--input-type', '--inspect-port', '--debug-port'])
const DROPPED_PREFIXES = ['--input-type=', '--eval=', '--print=', '--inspect', '--debug', '--test', '--watch', '--prof', '--cpu-prof', '--heap-prof', '--heapsnapshot', '--diagnostic-dir', '--report']
/** Flags that load code before the main module, each with its value. */
const PRELOAD_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader'])
const TS_EXTENSION = /\.(?:ts|mts|cts|tsx)$/

const LOADER_URL = new URL('./typescript-loader.js', import.meta.url).href

export interface ExecArgvContext {
  /** The main module's path (process.argv[1]). */
  mainScript?: string | undefined
  /** NODE_OPTIONS of the workflow process; children get it through their environment. */
  nodeOptions?: string | undefined
  /** Where bare preload specifiers (`--import tsx`) resolve from: the workflow's cwd. */
  cwd?: string
}

export function workerExecArgv(argv: readonly string[] = process.execArgv, context: ExecArgvContext = currentContext()): string[] {
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
  return withTypeScript(kept, context)
}

function currentContext(): ExecArgvContext {
  return { mainScript: process.argv[1], nodeOptions: process.env.NODE_OPTIONS, cwd: process.cwd() }
}

/** Each preload flag's value, and where it sits in argv (for `--import=x`, the flag's index). */
function preloads(argv: readonly string[]): { index: number; flag: string; value: string; joined: boolean }[] {
  const found: { index: number; flag: string; value: string; joined: boolean }[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    const eq = word.indexOf('=')
    if (eq > 0 && PRELOAD_FLAGS.has(word.slice(0, eq))) found.push({ index: i, flag: word.slice(0, eq), value: word.slice(eq + 1), joined: true })
    else if (PRELOAD_FLAGS.has(word) && i + 1 < argv.length) {
      found.push({ index: i, flag: word, value: argv[i + 1]!, joined: false })
      i++
    }
  }
  return found
}

/** `tsx`, `tsx/esm`, `tsx/cjs`, or a file inside a tsx package (what tsx's CLI passes). */
function isTsx(value: string): boolean {
  return /^tsx(?:\/(?:esm|cjs|preflight))?$/.test(value) || /[\\/]node_modules[\\/]tsx[\\/]/.test(value)
}

function withTypeScript(argv: string[], context: ExecArgvContext): string[] {
  if (argv.includes(LOADER_URL)) return argv
  const flags = preloads(argv)
  const optionFlags = preloads(splitNodeOptions(context.nodeOptions))
  if (flags.some((p) => isTsx(p.value)) || optionFlags.some((p) => isTsx(p.value))) {
    return [...absoluteTsx(argv, flags, context.cwd), '--import', LOADER_URL]
  }
  const main = context.mainScript
  const typeScriptMain = main !== undefined && TS_EXTENSION.test(main)
  const otherLoader = flags.length > 0 || optionFlags.length > 0 || argv.some((flag) => /^--experimental-(?:strip|transform)-types/.test(flag))
  if (typeScriptMain && !otherLoader && !nativeTypeScript()) {
    const tsx = resolveTsx()
    if (tsx) return [...argv, '--import', tsx, '--import', LOADER_URL]
  }
  return argv
}

/**
 * `--import tsx` resolves from the cwd: a manager started elsewhere (a batch job's directory)
 * would not find it, so bare tsx specifiers become the file they resolve to here.
 */
function absoluteTsx(argv: string[], flags: ReturnType<typeof preloads>, cwd: string | undefined): string[] {
  const out = [...argv]
  const require = createRequire(join(cwd ?? process.cwd(), 'noop.js'))
  for (const p of flags) {
    if (!isTsx(p.value) || p.value.startsWith('file:') || isAbsolute(p.value)) continue
    let resolved: string
    try {
      resolved = require.resolve(p.value)
    } catch {
      continue
    }
    const value = p.flag === '--require' || p.flag === '-r' ? resolved : pathToFileURL(resolved).href
    if (p.joined) out[p.index] = `${p.flag}=${value}`
    else out[p.index + 1] = value
  }
  return out
}

/** tsx's `--import` entry as a file URL, resolved from tsflow itself; undefined if missing. */
function resolveTsx(): string | undefined {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
  } catch {
    return undefined
  }
}

/**
 * True when a loader in this thread maps `.js` specifiers to TypeScript sources, as tsx and
 * ts-node do. The probe is this file's own source, which the package ships under src/; without
 * a loader its `.js` URL comes back unchanged (import.meta.resolve does not check that a file
 * exists).
 */
export function typeScriptHooksActive(): boolean {
  try {
    return import.meta.resolve('../../src/runtime/exec-argv.js').endsWith('.ts')
  } catch {
    return false
  }
}

/** Node 22.18+ strips types by itself, in worker threads too. */
function nativeTypeScript(): boolean {
  return Boolean((process.features as { typescript?: unknown }).typescript)
}

/** NODE_OPTIONS split into words (double or single quotes group, as node reads it). */
function splitNodeOptions(options: string | undefined): string[] {
  if (!options) return []
  const words: string[] = []
  for (const match of options.matchAll(/"((?:\\.|[^"])*)"|'([^']*)'|(\S+)/g)) words.push(match[1] ?? match[2] ?? match[3]!)
  return words
}

const threadArgvCache = new Map<string, string[]>()

/**
 * The subset of `argv` a worker thread accepts. V8 and per-process flags (`--expose-gc`,
 * `--max-old-space-size`, `--stack-size`, `--title`, ...) make `new Worker()` throw
 * ERR_WORKER_INVALID_EXEC_ARGV, which would fail every task of a workflow started with them;
 * they still apply to the process the threads live in. Node validates the flags synchronously
 * in the Worker constructor, so a probe that is terminated at once tells which to drop.
 */
export function threadExecArgv(argv: readonly string[] = workerExecArgv()): string[] {
  const key = argv.join('\0')
  const cached = threadArgvCache.get(key)
  if (cached) return cached
  const units = flagUnits(argv)
  const accepted = acceptedByThread(argv) ? [...argv] : units.filter((unit) => acceptedByThread(unit)).flat()
  threadArgvCache.set(key, accepted)
  return accepted
}

/** Each flag with its separate value, if it takes one (`--import x`). */
function flagUnits(argv: readonly string[]): string[][] {
  const units: string[][] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    const next = argv[i + 1]
    if (next !== undefined && !next.startsWith('-') && !word.includes('=')) {
      units.push([word, next])
      i++
    } else units.push([word])
  }
  return units
}

function acceptedByThread(flags: readonly string[]): boolean {
  if (flags.length === 0) return true
  try {
    const probe = new Worker('', { eval: true, execArgv: [...flags], stdout: true, stderr: true })
    void probe.terminate()
    probe.unref()
    return true
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_WORKER_INVALID_EXEC_ARGV') return false
    throw error
  }
}
