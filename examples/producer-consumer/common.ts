/**
 * What the three producer-consumer programs share (futures.ts, filesystem.ts, ddict.ts): the
 * command line, starting the kernel on the embedded local default or a --config module, counting
 * workers and nodes, timing the two phases, and the printed lines (the seed's `Training data
 * size`, `Done in`, `IO time`, then one `RESULT {json}` line for bench/producer-consumer).
 */
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { UsageError, load, type Config, type DataFlowKernel, type Executor } from 'tsflow'
import { connectedWorkers, loadConfigFile, summarizeExecutors } from 'tsflow/perf/config-file'
import { SCHEME, STEPS, simulationBytes, schemeError, type FittedModel } from './wave.js'

export type Variant = 'futures' | 'filesystem' | 'ddict'

export interface Flags {
  numSims: number
  gridSize: number
  /** trainers; undefined = one per worker of the executor */
  workers: number | undefined
  config: string | undefined
  /** where models go; undefined = the run directory */
  out: string | undefined
  /** filesystem: the shared data directory; undefined = <out>/data */
  dir: string | undefined
  keep: boolean
  fsync: boolean
  /** ddict: totalMem in bytes; undefined = sized from the data */
  ddictMem: number | undefined
  /** ddict: Redis servers per node */
  managers: number
}

const USAGE = (variant: Variant) => `Usage: node out/examples/producer-consumer/${variant}.js [options]

Simulations of a 2-D wave equation (the producers) make training data; then one trainer per
worker reads ALL of it and fits a linear stencil model (the consumers). ${
  variant === 'futures'
    ? 'Here the data travel\nas the simulations\' results, passed to the trainers as futures.'
    : variant === 'filesystem'
      ? 'Here the data go\nthrough files in a shared directory (raw float64).'
      : 'Here the data go\nthrough a distributed dictionary (tsflow/ddict: Redis shards).'
}

Options:
  --num-sims N       simulations (default 32)
  --grid-size N      grid points per side (default 512); data = N_sims x N^2 x ${STEPS} x 8 bytes
  --workers N        trainers (default: one per worker of the executor)
  --config FILE      module exporting a tsflow config (default export or 'config', or a function
                     returning one), as tsflow-perf and bench/funcx take it${variant === 'ddict' ? "; its export\n                     'ddict' (options or a function) is passed to DDict.create" : ''}; default: the
                     embedded local default (one worker thread per CPU)
  --out DIR          where the trained models are saved (default: the run directory)${
    variant === 'filesystem'
      ? `
  --dir DIR          shared directory for the data files (default: <out>/data); every worker
                     must see it at the same path
  --fsync            fsync each data file before its simulation returns (default: no)
  --keep             keep the data files (default: removed at the end)`
      : ''
  }${
    variant === 'ddict'
      ? `
  --ddict-mem SIZE   the dictionary's totalMem, e.g. 2GB (default: 2 x data + 64 MiB per shard)
  --managers N       Redis servers (shards) per node (default 1)`
      : ''
  }
  --help             this text
`

function positiveInt(flag: string, text: string | undefined, fallback: number | undefined): number | undefined {
  if (text === undefined) return fallback
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--${flag} must be a positive integer (got ${JSON.stringify(text)})`)
  return Number(text)
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }

function size(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined
  if (!match || unit === undefined || Number(match[1]) <= 0) throw new UsageError(`--${flag} must be a size such as 2GB, 1500MiB or a number of bytes (got ${JSON.stringify(text)})`)
  return Math.round(Number(match[1]) * unit)
}

/** Parses argv; returns undefined after printing the usage for --help. Mistakes are UsageErrors. */
export function parseFlags(variant: Variant, argv: string[]): Flags | undefined {
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'num-sims': { type: 'string' },
        'grid-size': { type: 'string' },
        workers: { type: 'string' },
        config: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean' },
        ...(variant === 'filesystem' ? { dir: { type: 'string' }, keep: { type: 'boolean' }, fsync: { type: 'boolean' } } : {}),
        ...(variant === 'ddict' ? { 'ddict-mem': { type: 'string' }, managers: { type: 'string' } } : {}),
      } as const,
    }))
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`)
  }
  if (values.help) {
    console.log(USAGE(variant))
    return undefined
  }
  const gridSize = positiveInt('grid-size', values['grid-size'] as string | undefined, 512)!
  if (gridSize < 3) throw new UsageError(`--grid-size must be at least 3 (a grid needs interior points; got ${gridSize})`)
  return {
    numSims: positiveInt('num-sims', values['num-sims'] as string | undefined, 32)!,
    gridSize,
    workers: positiveInt('workers', values.workers as string | undefined, undefined),
    config: values.config as string | undefined,
    out: values.out as string | undefined,
    dir: values.dir as string | undefined,
    keep: values.keep === true,
    fsync: values.fsync === true,
    ddictMem: size('ddict-mem', values['ddict-mem'] as string | undefined),
    managers: positiveInt('managers', values.managers as string | undefined, 1)!,
  }
}

/** Bytes of training data: num_sims x grid^2 x 10 levels x 8 bytes (the seed's formula). */
export const dataBytes = (flags: Flags): number => flags.numSims * simulationBytes(flags.gridSize)

/**
 * The data size "in GB" as the seed prints it: the seed's 0.62 for 32 x 512 x 512 x 10 x 8 bytes
 * is 0.625 GiB (2^30 bytes) printed with Python's round-half-to-even, so both are used here.
 */
export function gigabytes(bytes: number): number {
  return bytes / 1024 ** 3
}

/** `x.toFixed(digits)`, except that an exact tie rounds to even as Python's format() does. */
export function fixed(x: number, digits: number): string {
  const scaled = x * 10 ** digits
  const floor = Math.floor(scaled)
  if (scaled - floor === 0.5 && floor % 2 === 0) return (floor / 10 ** digits).toFixed(digits)
  return x.toFixed(digits)
}

export interface Setup {
  kernel: DataFlowKernel
  /** one line: executor kind, blocks, workers */
  executor: string
  workers: number
  nodes: number
  /** the config module's `ddict` export (resolved if a function), for ddict.ts */
  ddictOptions: Record<string, unknown> | undefined
  /** where models go */
  out: string
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** Workers an executor will have once its blocks are up, from its describe(); undefined if it cannot tell. */
function expectedWorkers(executor: Executor): number | undefined {
  const d = executor.describe()
  if (num(d.maxThreads) !== undefined) return num(d.maxThreads)
  const provider = (d.provider ?? {}) as Record<string, unknown>
  const perNode = num(d.workersPerNode)
  if (perNode === undefined) return undefined
  return (num(provider.initBlocks) ?? 1) * (num(provider.nodesPerBlock) ?? 1) * perNode
}

/** Distinct hosts of the executors' connected managers (1 for worker threads). */
function nodesOf(executors: readonly Executor[]): number {
  const hosts = new Set<string>()
  let threads = false
  for (const executor of executors) {
    const managers = (executor as { managers?: () => { host?: string }[] }).managers
    if (typeof managers === 'function') for (const m of managers.call(executor)) hosts.add(String(m.host))
    else threads = true
  }
  return hosts.size + (threads && hosts.size === 0 ? 1 : 0)
}

/**
 * Starts the kernel (the --config module, or the embedded local default), waits until the
 * workers it will have are connected (so the phases time the work, not the blocks' start),
 * and says where things are.
 */
export async function setup(variant: Variant, flags: Flags): Promise<Setup> {
  let config: Config | undefined
  let ddictOptions: Record<string, unknown> | undefined
  if (flags.config) {
    config = await loadConfigFile(flags.config)
    // The same module, already imported by loadConfigFile: its other exports.
    const module = (await import(pathToFileURL(resolve(flags.config)).href)) as Record<string, unknown>
    let ddict = module.ddict
    if (typeof ddict === 'function') ddict = await (ddict as () => unknown)()
    if (ddict !== undefined && (typeof ddict !== 'object' || ddict === null)) throw new UsageError(`--config ${flags.config}: its export 'ddict' must be DDict options (an object) or a function returning them`)
    ddictOptions = ddict as Record<string, unknown> | undefined
  }
  const kernel = await load(config)
  const executors = kernel.config.executors
  const expected = executors.reduce<number | undefined>((sum, e) => {
    const n = expectedWorkers(e)
    return sum === undefined || n === undefined ? undefined : sum + n
  }, 0)
  // HTEX and kin: wait for the managers' workers (bounded; a block that never starts is an error).
  if (executors.some((e) => typeof (e as { managers?: unknown }).managers === 'function')) {
    const want = Math.max(1, expected ?? 1)
    const deadline = Date.now() + 180_000
    for (;;) {
      const have = connectedWorkers(executors)?.workers ?? 0
      if (have >= want) break
      if (Date.now() > deadline) {
        throw new Error(`only ${have} of ${want} workers connected within 180 s; check the blocks (the run directory ${kernel.runDir} has their logs), or pass --workers to start with fewer`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const connected = connectedWorkers(executors)?.workers
  const workers = connected ?? expected ?? 1
  const out = resolve(flags.out ?? kernel.runDir)
  mkdirSync(out, { recursive: true })
  return { kernel, executor: summarizeExecutors(executors), workers, nodes: nodesOf(executors), ddictOptions, out }
}

/** The opening lines every variant prints. */
export function printHeader(variant: Variant, flags: Flags, s: Setup, trainers: number): void {
  console.log(`Producer-consumer workflow, data through ${variant === 'futures' ? 'futures' : variant === 'filesystem' ? 'the file system' : 'a DDict'}`)
  console.log(`Executor: ${s.executor}; ${s.workers} worker${s.workers === 1 ? '' : 's'} on ${s.nodes} node${s.nodes === 1 ? '' : 's'}`)
  console.log(`Number of simulations: ${flags.numSims}, grid size: ${flags.gridSize}, time steps: ${STEPS}`)
  console.log(`Training data size: ${fixed(gigabytes(dataBytes(flags)), 2)} GB`)
  console.log(`Trainers: ${trainers} (one per worker), each reads all the data`)
}

export interface PhaseTiming {
  seconds: number
  /** mean IO seconds per task; undefined = NA (futures) */
  io: number | undefined
}

/** Times one phase in the workflow process, then prints `Done in` and `IO time` (mean per task). */
export async function phase<T>(title: string, run: () => Promise<T[]>, ioOf: ((result: T) => number) | undefined): Promise<{ results: T[]; timing: PhaseTiming }> {
  console.log(title)
  const started = performance.now()
  const results = await run()
  const seconds = (performance.now() - started) / 1000
  const io = ioOf && results.length ? results.reduce((sum, r) => sum + ioOf(r), 0) / results.length : undefined
  console.log(`Done in ${fixed(seconds, 2)} s`)
  console.log(`IO time: ${io === undefined ? 'NA' : `${fixed(io, 3)} s`}`)
  return { results, timing: { seconds, io } }
}

/** What each trainer task returns. */
export interface TrainerResult {
  trainer: number
  model: FittedModel
  /** checksum of each simulation it read, by simulation index */
  checksums: number[]
  path: string
  /** seconds spent reading data (undefined for futures) */
  ioSeconds?: number
}

/**
 * Checks that every trainer read every simulation intact (its checksums equal the producers'),
 * prints the model, and returns the largest distance of a trainer's coefficients from the scheme.
 */
export function reportModels(trainers: TrainerResult[], simChecksums: number[]): number {
  for (const t of trainers) {
    const bad = simChecksums.findIndex((c, i) => t.checksums[i] !== c)
    if (t.checksums.length !== simChecksums.length || bad >= 0) {
      throw new Error(`trainer ${t.trainer} did not read the data the simulations made (simulation ${bad < 0 ? t.checksums.length : bad} differs); the variant's data path is broken`)
    }
  }
  const first = trainers[0]!.model
  const [c, e, w, n, s, p] = first.coefficients.map((x) => x.toFixed(6))
  const signed = (x: string) => (x.startsWith('-') ? `- ${x.slice(1)}` : `+ ${x}`)
  console.log(`Data check: each of the ${trainers.length} trainers read all ${simChecksums.length} simulations intact (${first.samples.toLocaleString('en-US')} samples each)`)
  console.log(`Model: u[t+1] = ${c} u ${signed(e!)} E ${signed(w!)} W ${signed(n!)} N ${signed(s!)} S ${signed(p!)} u[t-1] (the scheme: ${SCHEME.map((x) => x.toFixed(2)).join(', ')}); rmse ${first.rmse.toExponential(2)}`)
  console.log(`Models saved: ${trainers.map((t) => t.path).join(' ')}`)
  return Math.max(...trainers.map((t) => schemeError(t.model.coefficients)))
}

/** The machine-readable last line, for bench/producer-consumer. */
export function printResult(variant: Variant, flags: Flags, s: Setup, trainers: number, sim: PhaseTiming, train: PhaseTiming, extra: Record<string, unknown>): void {
  const record = {
    variant,
    numSims: flags.numSims,
    gridSize: flags.gridSize,
    dataBytes: dataBytes(flags),
    /** GiB, unrounded (the printed figure is rounded to 2 decimals) */
    dataGB: gigabytes(dataBytes(flags)),
    simSeconds: sim.seconds,
    simIOSeconds: sim.io ?? null,
    trainSeconds: train.seconds,
    trainIOSeconds: train.io ?? null,
    workers: s.workers,
    trainers,
    nodes: s.nodes,
    executor: s.executor,
    ...extra,
  }
  console.log(`RESULT ${JSON.stringify(record)}`)
}

/**
 * Runs a program's body with the common error handling: a UsageError prints its message and the
 * hint, exit status 2; anything else propagates to main(), which prints it (exit status 1).
 */
export async function runProgram(variant: Variant, body: (flags: Flags) => Promise<void>): Promise<void> {
  let flags: Flags | undefined
  try {
    flags = parseFlags(variant, process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`${variant}: ${error.message}`)
    process.exitCode = 2
    return
  }
  if (!flags) return
  try {
    await body(flags)
  } catch (error) {
    // A bad --config (or its ddict export) is the user's to fix: the message, not a stack.
    if (!(error instanceof UsageError)) throw error
    console.error(`${variant}: ${error.message}`)
    process.exitCode = 2
  }
}
