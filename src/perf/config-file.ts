/**
 * Loading the --config module, and describing a config for humans (the final line) and for
 * the result record (each executor's describe()).
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Config } from '../config/config.js'
import type { Executor } from '../executors/base.js'
import { HighThroughputExecutor } from '../executors/htex/executor.js'
import { typeScriptHooksActive } from '../runtime/exec-argv.js'
import { UsageError } from './args.js'

const EXAMPLE = '{ executors: [new HighThroughputExecutor()] }'

/** The config used without --config: the local HTEX (LocalProvider, 1 block, a worker per CPU). */
export function defaultConfig(): Config {
  return { executors: [new HighThroughputExecutor()] }
}

/**
 * Imports `file` and returns its config: the default export, else the export named `config`;
 * either may also be a (possibly async) function returning the config, like parsl's
 * `fresh_config`. Every problem is a UsageError naming the file and what was expected.
 */
export async function loadConfigFile(file: string): Promise<Config> {
  const path = resolve(file)
  if (!existsSync(path)) throw new UsageError(`--config ${file}: no such file (looked for ${path})`)
  if (!statSync(path).isFile()) throw new UsageError(`--config ${file}: not a file; expected a module exporting a tsflow config`)
  if (TS_EXTENSION.test(path)) await registerTypeScript(file)
  let module: Record<string, unknown>
  try {
    module = (await import(pathToFileURL(path).href)) as Record<string, unknown>
  } catch (error) {
    const err = error as NodeJS.ErrnoException
    const hint = /\.tsx?$/.test(path) && !inModuleScope(path) ? `; tsx loads ${file} as CommonJS because no package.json above it says "type": "module": rename it to .mts or add "type": "module"` : ''
    const message = err?.message ?? String(error)
    throw new UsageError(`--config ${file}: the module failed to load: ${hint ? message.replace(/\.$/, '') : message}${hint}`)
  }
  const exported = module.default !== undefined ? { name: 'default export', value: module.default } : module.config !== undefined ? { name: "export 'config'", value: module.config } : undefined
  if (!exported) {
    const names = Object.keys(module)
    throw new UsageError(
      `--config ${file}: expected a default export (or an export named 'config') holding a tsflow config such as ${EXAMPLE}; ` +
        `the module exports ${names.length ? names.join(', ') : 'nothing'}`,
    )
  }
  let value: unknown = exported.value
  if (typeof value === 'function') {
    try {
      value = await (value as () => unknown)()
    } catch (error) {
      throw new UsageError(`--config ${file}: the ${exported.name} is a function and it threw: ${(error as Error)?.message ?? String(error)}`)
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
    throw new UsageError(`--config ${file}: the ${exported.name} must be a tsflow config object such as ${EXAMPLE} (got ${got})`)
  }
  return value as Config
}

const TS_EXTENSION = /\.(?:ts|mts|cts|tsx)$/

/**
 * A TypeScript config needs a loader in this process: tsx (a dependency of tsflow) is registered
 * unless one is active already (`node --import tsx ...`). Workers never import the config, so
 * they need nothing.
 */
async function registerTypeScript(file: string): Promise<void> {
  if (typeScriptHooksActive()) return
  let register: () => unknown
  try {
    ;({ register } = await import('tsx/esm/api'))
  } catch (error) {
    throw new UsageError(
      `--config ${file}: a TypeScript config needs the tsx loader, which could not be loaded (${(error as Error)?.message ?? String(error)}); ` +
        'reinstall tsflow (tsx is one of its dependencies) or compile the config to .js',
    )
  }
  register()
}

/** Whether the nearest package.json above `file` declares "type": "module". */
function inModuleScope(file: string): boolean {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        return (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: unknown }).type === 'module'
      } catch {
        return false
      }
    }
    if (dirname(dir) === dir) return false
  }
}

/** One executor in a few words: "HighThroughputExecutor htex, 1 block x 2 workers". */
export function summarizeExecutor(executor: Executor): string {
  const d = executor.describe()
  const kind = executor.constructor?.name && executor.constructor.name !== 'Object' ? executor.constructor.name : d.type
  const head = `${String(kind)} ${executor.label}`
  if (typeof d.maxThreads === 'number') return `${head}, ${d.maxThreads} thread${d.maxThreads === 1 ? '' : 's'}`
  const provider = isRecord(d.provider) ? d.provider : undefined
  const workers = typeof d.workersPerNode === 'number' ? d.workersPerNode : undefined
  if (!provider || workers === undefined) return head
  const init = num(provider.initBlocks)
  const max = num(provider.maxBlocks)
  const nodes = num(provider.nodesPerBlock) ?? 1
  const blocks = init === undefined ? '?' : max !== undefined && max > init ? `${init}-${max}` : String(init)
  const plural = blocks === '1' ? 'block' : 'blocks'
  const nodePart = nodes > 1 ? ` x ${nodes} nodes` : ''
  return `${head}, ${blocks} ${plural}${nodePart} x ${workers} worker${workers === 1 ? '' : 's'}`
}

/** All executors of a config, joined: "ThreadPoolExecutor threads, 2 threads". */
export function summarizeExecutors(executors: readonly Executor[]): string {
  return executors.map(summarizeExecutor).join(' + ')
}

/**
 * Each executor's describe(), plus what it reports about live managers (HTEX and kin expose
 * `managers()`): the workers that actually connected, which a config alone cannot tell.
 */
export function describeExecutors(executors: readonly Executor[]): Record<string, unknown>[] {
  return executors.map((executor) => {
    let description: Record<string, unknown>
    try {
      description = { ...executor.describe() }
    } catch (error) {
      description = { type: executor.type, describeError: (error as Error)?.message ?? String(error) }
    }
    return { label: executor.label, class: executor.constructor?.name, ...description }
  })
}

/** Managers and workers connected now, for executors that can tell; undefined otherwise. */
export function connectedWorkers(executors: readonly Executor[]): { managers: number; workers: number } | undefined {
  let found = false
  let managers = 0
  let workers = 0
  for (const executor of executors) {
    const list = (executor as { managers?: () => unknown }).managers
    if (typeof list !== 'function') continue
    const infos = list.call(executor)
    if (!Array.isArray(infos)) continue
    found = true
    managers += infos.length
    for (const info of infos) workers += num((info as Record<string, unknown>)?.workers) ?? 0
  }
  return found ? { managers, workers } : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}
