/**
 * The executor and connector flags shared by the data-layer benches (workflow-memory, task-rtt).
 * Connectors are built through the registry (`connectorFromConfig({ type, ...options })`), so a
 * connector type registered by tsflow/proxy works here as soon as it exists; a type not (yet)
 * registered fails with the registry's error naming the known types.
 */
import { mkdirSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, type Executor, type ExecutorProxyOptions } from 'tsflow'
import { connectorFromConfig, type Connector, type ConnectorConfig } from 'tsflow/proxy'
import { BenchUsage, parseBytes, parseNumber, type FlagSpec } from './args.js'
import { onCleanup } from './cleanup.js'
import { startRedisServer } from './redis-server.js'

export const CONNECTOR_TYPES = ['file', 'redis', 'shm', 'zmq', 'local', 'multi'] as const

export const EXECUTOR_FLAGS = {
  executor: { default: 'threads', choices: ['threads', 'htex'], help: 'threads: the embedded local default (ThreadPoolExecutor); htex: local HighThroughputExecutor, 1 block' },
  workers: { default: '4', help: 'threads (threads) or workers (htex; all started, even beyond one per CPU)' },
  'worker-mode': { default: 'processes', choices: ['processes', 'threads'], help: 'htex workers as processes or threads' },
} satisfies Record<string, FlagSpec>

export const CONNECTOR_OPTION_FLAGS = {
  'file-dir': { default: '', help: 'file connector directory (default: <run dir>/objects)' },
  'redis-host': { default: '', help: 'redis connector host (with neither host nor port, a private redis-server is started on a free port)' },
  'redis-port': { default: '', help: 'redis connector port' },
  'shm-prefix': { default: '', help: 'shm connector: name prefix of its segments (option "prefix"; default bench_<pid>, so the end-of-run check can list them)' },
  'multi-threshold': { default: '1MB', help: 'multi connector without --connector-config: objects below this size go to a file connector, the rest to shm' },
  'zmq-address': { default: '', help: 'zmq connector: the IP address each process serves its objects on (option "address"; default the connector\'s, 127.0.0.1)' },
  'zmq-interface': { default: '', help: 'zmq connector: a network interface whose address to use, looked up in each process (option "interface")' },
  'zmq-port': { default: '', help: 'zmq connector: the port (option "port"; default any free port)' },
  'connector-option': { default: [], list: true, help: 'extra connector options as key=value (JSON values allowed), merged into the config' },
  'connector-config': { default: '', help: 'the whole connector config as JSON ({"type": ..., ...}); overrides --connector and its options' },
} satisfies Record<string, FlagSpec>

export interface ExecutorChoice {
  kind: 'threads' | 'htex'
  workers: number
  workerMode: 'processes' | 'threads'
}

export function executorChoice(flags: { executor: string; workers: string; 'worker-mode': string }): ExecutorChoice {
  return {
    kind: flags.executor as ExecutorChoice['kind'],
    workers: parseNumber(flags.workers, '--workers', { min: 1, integer: true }),
    workerMode: flags['worker-mode'] as ExecutorChoice['workerMode'],
  }
}

export interface ExecutorExtras {
  label?: string
  /** the executor option that proxies large arguments and results through a store */
  proxy?: ExecutorProxyOptions
}

export function makeExecutor(choice: ExecutorChoice, extras: ExecutorExtras = {}): Executor {
  if (choice.kind === 'threads') return new ThreadPoolExecutor({ maxThreads: choice.workers, ...extras })
  // Exactly `workers` workers, also beyond one per CPU (HTEX caps workers at CPUs / coresPerWorker):
  // these tasks sleep or move data, they do not compute.
  const coresPerWorker = Math.min(1, cpus().length / choice.workers)
  return new HighThroughputExecutor({ maxWorkersPerNode: choice.workers, coresPerWorker, workerMode: choice.workerMode, provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }), ...extras })
}

/** How the results name an executor: `threads(4)`, `htex(4 worker processes)`, `htex(1 worker thread)`. */
export function executorLabel(choice: ExecutorChoice): string {
  // No commas: the label is a CSV field.
  const kind = choice.workers === 1 ? choice.workerMode.replace(/e?s$/, '') : choice.workerMode
  return choice.kind === 'threads' ? `threads(${choice.workers})` : `htex(${choice.workers} worker ${kind})`
}

function optionValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

type ConnectorFlags = { [K in keyof typeof CONNECTOR_OPTION_FLAGS]: (typeof CONNECTOR_OPTION_FLAGS)[K] extends { list: true } ? string[] : string }

/**
 * The connector config the flags describe. For redis without host and port, a private
 * redis-server is started (and stopped at cleanup). `scratch` is where a file connector goes by
 * default.
 */
export async function connectorConfig(type: string, flags: ConnectorFlags, scratch: string): Promise<ConnectorConfig> {
  let config: ConnectorConfig
  if (flags['connector-config'] !== '') {
    const parsed = optionValue(flags['connector-config'])
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { type?: unknown }).type !== 'string') {
      throw new BenchUsage(`--connector-config must be a JSON object with a "type" (got ${flags['connector-config']})`)
    }
    config = parsed as ConnectorConfig
  } else if (type === 'file') {
    const directory = resolve(flags['file-dir'] || join(scratch, 'objects'))
    mkdirSync(directory, { recursive: true })
    config = { type, directory }
  } else if (type === 'redis') {
    let host = flags['redis-host']
    let port = flags['redis-port'] === '' ? undefined : parseNumber(flags['redis-port'], '--redis-port', { min: 1, integer: true })
    if (host === '' && port === undefined) {
      const server = await startRedisServer()
      onCleanup(() => server.stop())
      console.log(`started a private redis-server on ${server.host}:${server.port}`)
      host = server.host
      port = server.port
    }
    // A key prefix of this bench's own, so the end-of-run check can list what is left.
    config = { type, host: host || '127.0.0.1', ...(port !== undefined ? { port } : {}), keyPrefix: `tsflow-bench-${process.pid}:` }
  } else if (type === 'multi') {
    // Routes by size, as the issue describes: small objects to files, large ones to shared memory.
    const threshold = parseBytes(flags['multi-threshold'], '--multi-threshold')
    const small = await connectorConfig('file', { ...flags, 'connector-option': [], 'file-dir': flags['file-dir'] || join(scratch, 'objects-small') }, scratch)
    const large = await connectorConfig('shm', { ...flags, 'connector-option': [], 'shm-prefix': `${flags['shm-prefix'] || `bench_${process.pid}`}_multi` }, scratch)
    config = { type, connectors: { small: { connector: small, policy: { maxSize: Math.max(0, threshold - 1) } }, large: { connector: large, policy: { minSize: threshold } } } }
  } else {
    config = { type }
    if (type === 'shm') config.prefix = flags['shm-prefix'] || `bench_${process.pid}`
    if (type === 'zmq' && flags['zmq-address'] !== '') config.address = flags['zmq-address']
    if (type === 'zmq' && flags['zmq-interface'] !== '') config.interface = flags['zmq-interface']
    if (type === 'zmq' && flags['zmq-port'] !== '') config.port = parseNumber(flags['zmq-port'], '--zmq-port', { min: 0, integer: true })
  }
  for (const option of flags['connector-option']) {
    const eq = option.indexOf('=')
    if (eq <= 0) throw new BenchUsage(`--connector-option ${option}: expected key=value`)
    config[option.slice(0, eq)] = optionValue(option.slice(eq + 1))
  }
  return config
}

/** Builds the connector through the registry; an unknown type says which types are registered. */
export function buildConnector(config: ConnectorConfig): Connector {
  try {
    return connectorFromConfig(config, 'connector')
  } catch (error) {
    const message = (error as Error).message
    throw new BenchUsage(`cannot build connector ${JSON.stringify(config)}: ${message}${['redis', 'shm', 'zmq', 'multi'].includes(config.type) ? ` (the ${config.type} connector lands with issue 8; is this tsflow build older?)` : ''}`)
  }
}

/**
 * Whether tasks on worker threads or processes can read what this connector stores. `local` keeps
 * objects in this process's memory, so a task on another thread or process would not find them.
 */
export function refuseLocalWithWorkers(type: string, what: string): void {
  if (type === 'local') {
    throw new BenchUsage(`--connector local keeps objects in this process only; ${what} run on worker threads or processes that cannot see them: use file, redis, shm or zmq`)
  }
}

/**
 * The zmq connector serves each process's objects from that process's main thread; a task on a
 * worker thread cannot own (put) objects, so tasks that store their outputs need HTEX worker
 * processes. Undefined when fine, else why not.
 */
export function zmqUnfit(type: string, choice: ExecutorChoice): string | undefined {
  if (type !== 'zmq' || (choice.kind === 'htex' && choice.workerMode === 'processes')) return undefined
  return 'the zmq connector cannot own objects in worker threads, and the tasks store their outputs: use --executor htex (worker processes)'
}
