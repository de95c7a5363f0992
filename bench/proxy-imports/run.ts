/**
 * One configuration of the proxy-imports bench (a method, a package, nodes x tasks per node): a
 * fresh high-throughput executor whose blocks (local provider, each its own manager: a "node")
 * start one worker process per task, the tasks submitted together, the executor shut down.
 *
 * Methods (docs/proxy-imports.md "Benchmarks"):
 *  - file-system: workers import from the workflow's install where it is (--fs-root);
 *  - local: from a copy of the install on a node-local directory (the baseline for a warm cache);
 *  - pack: the whole install packed into one tar before the run (like conda-pack), unpacked by
 *    each block's workerInit into a node-local directory; workers import from there;
 *  - lazy: the executor option proxyImports (store, packages 'trace', cacheDir per block), with a
 *    cold node cache, a fresh store and a fresh pack cache;
 *  - lazy-warm: the same again right after `lazy`, with that run's store, pack cache and node
 *    caches (a second run of a workflow).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, type Executor, type ExecutorImportsOptions } from 'tsflow'
import { FileConnector, Store } from 'tsflow/proxy'
import { fileNameOf } from './generate.js'
import type { ImportResult, ImportSpec, InferenceResult, InferenceSpec } from './task-body.js'

export const METHODS = ['file-system', 'local', 'pack', 'lazy', 'lazy-warm'] as const
export type Method = (typeof METHODS)[number]

/** What one bench invocation set up for its configurations. */
export interface BenchEnv {
  /** private scratch directory: runinfo, barriers, stores, pack caches */
  scratch: string
  /** the workflow's install (on --fs-root) */
  install: string
  /** its copy on a node-local directory (method local), and how long the copy took, s */
  localInstall?: string
  localCopyS?: number
  /** pack: the tar and how long packing it took, s */
  packTar?: string
  packS?: number
  /** where blocks unpack the tar (pack) and keep their proxy-imports cache (lazy): node-local */
  nodeRoot: string
  /** prefix of everything this invocation puts under nodeRoot, for the cleanup */
  nodePrefix: string
  /** the interchange's address (default 127.0.0.1) */
  address?: string
  /** wraps each block's command (cloud-burst: run it on a network-namespace host) */
  wrapCommand?: (command: string, blockId: string) => string
}

export interface Configuration {
  method: Method
  pkg: string
  nodes: number
  tasksPerNode: number
  sleep: number
  barrierTimeoutMs: number
}

/** The store, pack cache and node cache of a lazy run, kept for the lazy-warm run after it. */
export interface LazyState {
  id: number
  storeDir: string
  store: Store
  packCache: string
  cacheDir: string
}

let sequence = 0

export function newLazyState(env: BenchEnv): LazyState {
  const id = ++sequence
  const storeDir = join(env.scratch, `store-${id}`)
  mkdirSync(storeDir, { recursive: true })
  return {
    id,
    storeDir,
    store: new Store(`proxy-imports-${process.pid}-${id}`, new FileConnector({ directory: storeDir }), { cacheSize: 0 }),
    packCache: join(env.scratch, `pack-cache-${id}`),
    cacheDir: join(env.nodeRoot, `${env.nodePrefix}-cache-${id}-{block}`),
  }
}

export async function disposeLazyState(env: BenchEnv, state: LazyState): Promise<void> {
  await state.store.close()
  rmSync(state.storeDir, { recursive: true, force: true })
  rmSync(state.packCache, { recursive: true, force: true })
  removeNodeDirs(env, `${env.nodePrefix}-cache-${state.id}-`)
}

/** Removes this invocation's node-local directories whose names start with `prefix`. */
export function removeNodeDirs(env: BenchEnv, prefix = env.nodePrefix): void {
  if (!existsSync(env.nodeRoot)) return
  for (const name of readdirSync(env.nodeRoot)) if (name.startsWith(prefix)) rmSync(join(env.nodeRoot, name), { recursive: true, force: true })
}

/** The pack method's node-local directory of a block (`{block}` is expanded by the task). */
export function packDir(env: BenchEnv): string {
  return join(env.nodeRoot, `${env.nodePrefix}-pack-{block}`)
}

/**
 * Packs the whole install (node_modules and importers) into one tar on the submit side, timed,
 * as conda-pack packs an environment. Uncompressed: unpacking is then bound by file creation.
 */
export function packInstall(env: BenchEnv): void {
  const tar = join(env.scratch, 'install.tar')
  const started = performance.now()
  execFileSync('tar', ['-cf', tar, '-C', env.install, 'node_modules', 'importers'])
  env.packS = (performance.now() - started) / 1000
  env.packTar = tar
}

/** The workerInit of the pack method: unpack the tar into the block's node-local dir, timed. */
function packWorkerInit(env: BenchEnv): string {
  const dir = packDir(env).replace('{block}', '${TSFLOW_BLOCK_ID}')
  return [
    `tsflow_pack_dir="${dir}"`,
    'tsflow_pack_start=$(date +%s.%N)',
    'rm -rf "$tsflow_pack_dir" && mkdir -p "$tsflow_pack_dir"',
    `tar -xf '${env.packTar}' -C "$tsflow_pack_dir"`,
    'echo "$tsflow_pack_start $(date +%s.%N)" > "$tsflow_pack_dir/.unpack-time"',
  ].join('\n')
}

interface ShipApi {
  traceImports(entry: string, options?: object): Promise<unknown>
  shipPackages(traced: unknown, store: Store, options?: object): Promise<unknown>
  createPackMemo?(): unknown
}

/**
 * The lazy methods' setup: tracing the app module, packing and putting its packages into the
 * store, timed here before the run (with its own memo, so nothing packed for an earlier
 * configuration counts). The executor then finds the packs in the pack cache and the store
 * already holding them, as it would in a second run. Undefined where tsflow/imports has no
 * shipPackages yet.
 */
async function preShip(appFile: string, state: LazyState): Promise<number | undefined> {
  const api = (await import('tsflow/imports')) as unknown as Partial<ShipApi>
  if (typeof api.traceImports !== 'function' || typeof api.shipPackages !== 'function') return undefined
  const started = performance.now()
  const traced = await api.traceImports(appFile)
  await api.shipPackages(traced, state.store, { packCacheDir: state.packCache, ...(api.createPackMemo ? { memo: api.createPackMemo() } : {}), cacheDir: state.cacheDir })
  return (performance.now() - started) / 1000
}

function makeExecutor(env: BenchEnv, config: Configuration, state: LazyState | undefined): Executor {
  const { nodes, tasksPerNode } = config
  const provider = new LocalProvider({ initBlocks: nodes, minBlocks: nodes, maxBlocks: nodes, ...(config.method === 'pack' ? { workerInit: packWorkerInit(env) } : {}) })
  if (env.wrapCommand) {
    const submit = provider.submit.bind(provider)
    const wrap = env.wrapCommand
    provider.submit = (command: string, blockId: string, options?: Parameters<LocalProvider['submit']>[2]) => submit(wrap(command, blockId), blockId, options)
  }
  // Exactly one worker process per task: the tasks sleep at a barrier or import, they do not
  // compute, so workers beyond one per CPU are fine (HTEX caps workers at CPUs / coresPerWorker).
  const options = {
    label: 'proxy-imports',
    maxWorkersPerNode: tasksPerNode,
    coresPerWorker: Math.min(1, cpus().length / tasksPerNode),
    workerMode: 'processes' as const,
    prefetchCapacity: 0,
    managerSelector: 'spread' as const,
    provider,
    ...(env.address ? { address: env.address } : {}),
  }
  if (!state) return new HighThroughputExecutor(options)
  // The executor's packing uses this configuration's pack cache, which preShip filled.
  const proxyImports: ExecutorImportsOptions = { store: state.store, packages: 'trace', cacheDir: state.cacheDir, packCacheDir: state.packCache }
  return new HighThroughputExecutor({ ...options, proxyImports })
}

/** The app module a method's workers import (local: the node-local copy of the install). */
export function appFileOf(env: BenchEnv, method: Method, pkg: string): string {
  return join(method === 'local' ? env.localInstall! : env.install, 'apps', `${fileNameOf(pkg)}.mjs`)
}

type AppCall<A extends unknown[], R> = { with(options: { dfk: DataFlowKernel }): (...args: A) => Promise<R> }
interface AppModule {
  importApp: AppCall<[ImportSpec], ImportResult>
  inferenceApp: AppCall<[InferenceSpec, unknown], InferenceResult>
}

export interface Ran<R> {
  results: R[]
  launch_time: number
  end_time: number
  /** seconds of setup outside the tasks: pack: packing + slowest unpack; local: the copy; lazy: shipping; null: not measured */
  setup: number | null
  setup_detail: Record<string, number>
}

/**
 * Starts the configuration's executor, runs `submit` (which submits every task through the app
 * module's apps and awaits them), stops the executor. launch_time/end_time: epoch seconds from
 * before the first submit to after the last result.
 */
export async function runConfiguration<R>(
  env: BenchEnv,
  config: Configuration,
  state: LazyState | undefined,
  submit: (apps: AppModule, kernel: DataFlowKernel) => Promise<R[]>,
): Promise<Ran<R>> {
  const appFile = appFileOf(env, config.method, config.pkg)
  const detail: Record<string, number> = {}
  if (config.method === 'local') detail.copy_install = env.localCopyS ?? 0
  if (config.method === 'pack') detail.pack = env.packS ?? 0
  let shipped: number | undefined
  if (state) {
    shipped = await preShip(appFile, state)
    if (shipped !== undefined) detail.ship = shipped
  }
  const executor = makeExecutor(env, config, state)
  const runDir = join(env.scratch, 'runinfo')
  const kernel = await new DataFlowKernel({ runDir, executors: [executor] }).start()
  let launch = 0
  let results: R[]
  try {
    // Every node's manager registered first: launch_time is when the tasks are submitted to ready
    // nodes (the pack method's unpacking in workerInit is before that, counted in its setup).
    const htex = executor as HighThroughputExecutor
    const deadline = Date.now() + 120_000
    while (htex.managers().length < config.nodes) {
      if (Date.now() > deadline) throw new Error(`only ${htex.managers().length} of ${config.nodes} managers registered within 120 s (see ${runDir})`)
      await new Promise((r) => setTimeout(r, 20))
    }
    const apps = (await import(pathToFileURL(appFile).href)) as AppModule
    launch = Date.now()
    results = await submit(apps, kernel)
  } finally {
    await kernel.cleanup({ deadlineMs: 10_000 })
    if (config.method === 'pack') removeNodeDirs(env, `${env.nodePrefix}-pack-`)
  }
  const end = Date.now()
  let setup: number | null = 0
  if (config.method === 'pack') {
    const unpack = Math.max(0, ...results.map((r) => (r as { unpack_s?: number }).unpack_s ?? 0))
    detail.unpack_max = unpack
    setup = (env.packS ?? 0) + unpack
  } else if (config.method === 'local') setup = env.localCopyS ?? 0
  else if (state) setup = shipped ?? null
  return { results, launch_time: launch / 1000, end_time: end / 1000, setup, setup_detail: detail }
}

/** The import tasks of one scaling/simulated configuration: one per worker, behind a barrier. */
export async function runImports(env: BenchEnv, config: Configuration, state: LazyState | undefined, probe?: string): Promise<Ran<ImportResult>> {
  const total = config.nodes * config.tasksPerNode
  const barrierDir = join(env.scratch, `barrier-${++sequence}`)
  mkdirSync(barrierDir, { recursive: true })
  try {
    const ran = await runConfiguration(env, config, state, (apps, kernel) =>
      Promise.all(
        Array.from({ length: total }, (_, index) =>
          apps.importApp.with({ dfk: kernel })({
            module: config.pkg,
            index,
            total,
            barrierDir,
            barrierTimeoutMs: config.barrierTimeoutMs,
            sleep: config.sleep,
            ...(config.method === 'pack' ? { packDir: packDir(env) } : {}),
            ...(probe ? { probe } : {}),
          }),
        ),
      ),
    )
    const again = ran.results.filter((r) => !r.first)
    if (again.length > 0) throw new Error(`${again.length} task(s) ran in a process that had imported ${config.pkg} before: the import times would be cached ones`)
    const pids = new Set(ran.results.map((r) => r.pid))
    if (pids.size !== total) throw new Error(`${total} tasks ran in only ${pids.size} worker processes`)
    // Each method's package must come from where the method says (not silently from the install).
    const install = realpathSync(env.install)
    const expected = realpathSync(config.method === 'file-system' ? env.install : config.method === 'local' ? env.localInstall! : env.nodeRoot)
    const stray = ran.results.find((r) => !r.resolved.startsWith(`${expected}/`) || (config.method !== 'file-system' && r.resolved.startsWith(`${install}/`)))
    if (stray) throw new Error(`${config.method}: a task loaded ${config.pkg} from ${stray.resolved}, not from under ${expected}`)
    return ran
  } finally {
    rmSync(barrierDir, { recursive: true, force: true })
  }
}

/** The JSON line of one import configuration (the seed's fields first). */
export function importRow(benchmark: string, config: Configuration, ran: Ran<ImportResult>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const times = ran.results.map((r) => r.import_s)
  const sorted = [...times].sort((a, b) => a - b)
  return {
    benchmark,
    ntasks: times.length,
    cumulative_time: times.reduce((a, b) => a + b, 0),
    times,
    launch_time: ran.launch_time,
    end_time: ran.end_time,
    method: config.method,
    module: config.pkg,
    nodes: config.nodes,
    tasks_per_node: config.tasksPerNode,
    sleep: config.sleep,
    setup: ran.setup,
    ...extra,
    setup_detail: ran.setup_detail,
    mean_import: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length),
    median_import: sorted[Math.floor(sorted.length / 2)] ?? null,
    max_import: sorted.at(-1) ?? null,
    makespan: ran.end_time - ran.launch_time,
    blocks: [...new Set(ran.results.map((r) => r.block))].length,
    loaded_from: ran.results[0]?.resolved ?? null,
  }
}
