/**
 * The shared frame of the funcX paper suite (bench/funcx.ts; ../shared/docs/BENCHMARKS.md
 * section 2). An experiment is a name, its own flags, a run that records JSON rows, a plot drawn
 * from those rows (so `plot <dir>` redraws it later) and a summary. The frame adds the flags every
 * experiment has (--config, --out, --repeat, --history), loads the config, stamps every row with
 * the experiment, the machine, tsflow's version and the config's describe(), and writes
 * <out>/results.jsonl, <out>/<experiment>.svg and a summary line in
 * bench/results/funcx-<experiment>.jsonl.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { HighThroughputExecutor, load, resolveConfig, TSFLOW_VERSION, type Config, type DataFlowKernel, type HighThroughputExecutorOptions } from 'tsflow'
import { describeExecutors, loadConfigFile } from 'tsflow/perf/config-file'
import { BenchUsage, parseNumber, type FlagSpec } from '../lib/args.js'
import { onCleanup } from '../lib/cleanup.js'
import { appendResult, machine, percentile, RESULTS_DIR } from '../lib/results.js'

export { BenchUsage, parseNumber, percentile, type Config, type FlagSpec }

/** The flags every experiment accepts, before its own. */
export const COMMON_FLAGS = {
  config: { default: '', help: 'a tsflow config module (default export or `config`, an object or a function returning one); default: the local HTEX of the experiment (LocalProvider, 1 block)' },
  out: { default: '', help: 'output directory (default bench/results/funcx/<experiment>-<UTC stamp>/)' },
  repeat: { default: '', help: 'repetitions (each experiment says what one is; default: the experiment\'s own)' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the summary line to bench/results/funcx-<experiment>.jsonl' },
} satisfies Record<string, FlagSpec>

export type Row = Record<string, unknown>

/** Where a config comes from: the --config module, or the experiment's local default. */
export interface ConfigSource {
  /** the --config path, or undefined for the embedded default */
  file: string | undefined
  /**
   * A fresh config (executors are single-use: an experiment that loads several kernels asks for
   * one each time). `defaults` are HTEX options the experiment wants on its local default (one
   * worker for batching, ...); a --config file is taken as written.
   */
  make(defaults?: Partial<HighThroughputExecutorOptions>): Promise<Config>
  /** describe() of each executor of a config (what the JSON rows carry) */
  describe(config: Config): Row[]
}

export interface RunContext {
  experiment: string
  /** the output directory (exists) */
  out: string
  /** a private scratch directory, removed at the end */
  scratch: string
  /** --repeat, or the experiment's default when not given */
  repeat: number
  config: ConfigSource
  /** appends one row to results.jsonl, stamped with experiment, time, machine, tsflow version and config */
  record(row: Row, config: Row[] | Config): Row
  log(line: string): void
}

export interface Experiment<S extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  name: string
  /** one paragraph for --help: what it measures, the paper's figure */
  summary: string
  /** the experiment's own flags (the common ones are added by the frame) */
  flags: S
  /** --repeat when not given */
  defaultRepeat: number
  run(ctx: RunContext, flags: { [K in keyof S]: S[K]['list'] extends true ? string[] : string }): Promise<void>
  /** draws the figure from the rows of results.jsonl (this experiment's only) */
  plot(rows: Row[], svg: string): Promise<void>
  /** the human summary (lines) and the figures for the history line */
  summarize(rows: Row[]): { lines: string[]; figures: Row }
}

/** UTC stamp for directory names: 20261201T065012Z. */
export function stamp(date = new Date()): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
}

export const FUNCX_RESULTS = join(RESULTS_DIR, 'funcx')

export function configSource(file: string, scratch: string): ConfigSource {
  let used = false
  return {
    file: file || undefined,
    async make(defaults = {}) {
      if (!file) return { runDir: join(scratch, 'runinfo'), executors: [new HighThroughputExecutor({ label: 'htex', ...defaults })] }
      const config = await loadConfigFile(file)
      // An exported object holds executors that cannot start twice: say how to give fresh ones.
      if (used && !(await exportsFunction(file))) {
        throw new BenchUsage(`--config ${file}: this experiment loads several kernels, and the module exports one config object whose executors cannot start twice; export a function returning a new config instead (export default () => ({ executors: [...] }))`)
      }
      used = true
      return config
    },
    describe(config) {
      return describeExecutors(resolveConfig(config).executors)
    },
  }
}

async function exportsFunction(file: string): Promise<boolean> {
  const module = (await import(new URL(`file://${resolve(file)}`).href)) as Record<string, unknown>
  return typeof (module.default ?? module.config) === 'function'
}

/** load() with the kernel's cleanup (idempotent) registered for Ctrl-C and the bench's end. */
export async function loadKernel(config: Config): Promise<DataFlowKernel> {
  const kernel = await load(config)
  onCleanup(() => kernel.cleanup())
  return kernel
}

/** Sets up the output directory and context, runs the experiment, plots, summarizes. */
export async function runExperiment(experiment: Experiment, flags: Record<string, string | string[]>): Promise<{ out: string; rows: Row[] }> {
  const out = resolve((flags.out as string) || join(FUNCX_RESULTS, `${experiment.name}-${stamp()}`))
  mkdirSync(out, { recursive: true })
  const scratch = mkdtempSync(join(tmpdir(), `tsflow-funcx-${experiment.name}-`))
  onCleanup(() => rmSync(scratch, { recursive: true, force: true }))
  const repeat = flags.repeat ? parseNumber(flags.repeat as string, '--repeat', { min: 1, integer: true }) : experiment.defaultRepeat
  const config = configSource(flags.config as string, scratch)
  if (config.file && !existsSync(config.file)) throw new BenchUsage(`--config ${config.file}: no such file`)
  const file = join(out, 'results.jsonl')
  const rows: Row[] = []
  const host = machine()
  const ctx: RunContext = {
    experiment: experiment.name,
    out,
    scratch,
    repeat,
    config,
    record(row, configOrDescription) {
      const described = Array.isArray(configOrDescription) ? configOrDescription : config.describe(configOrDescription)
      // loadavg: the 1-minute load when the line was written (a shared machine's figures say so)
      const full = { experiment: experiment.name, at: new Date().toISOString(), machine: host, loadavg: round(loadavg()[0]!, 2), tsflow: TSFLOW_VERSION, config: described, configFile: config.file ?? null, ...row }
      rows.push(full)
      appendFileSync(file, `${JSON.stringify(full)}\n`)
      return full
    },
    log: (line) => console.log(line),
  }
  console.log(`funcx ${experiment.name}: output ${out}; config ${config.file ?? 'the local default (HTEX, LocalProvider)'}; ${host.cores} cores (load average ${loadavg()[0]!.toFixed(1)}), node ${host.node}, tsflow ${TSFLOW_VERSION}`)
  await experiment.run(ctx, flags as never)
  const svg = join(out, `${experiment.name}.svg`)
  if (rows.length > 0) await experiment.plot(rows, svg)
  const { lines, figures } = experiment.summarize(rows)
  for (const line of lines) console.log(line)
  console.log(`results ${file}\nplot ${svg}`)
  if (flags.history !== 'false' && rows.length > 0) {
    const history = appendResult(`funcx-${experiment.name}`, { experiment: experiment.name, tsflow: TSFLOW_VERSION, loadavg: round(loadavg()[0]!, 2), out, configFile: config.file ?? null, config: rows[0]!.config, rows: rows.length, ...figures })
    console.log(`summary appended to ${history}`)
  }
  return { out, rows }
}

/** Reads a run directory's results.jsonl. */
export function readRows(dir: string): Row[] {
  const file = existsSync(join(dir, 'results.jsonl')) ? join(dir, 'results.jsonl') : dir
  if (!existsSync(file)) throw new BenchUsage(`plot: no results.jsonl in ${dir}`)
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Row)
}

/** Sorted copy; median/p95/p99 of a list of numbers. */
export function stats(values: number[]): { n: number; median: number; p95: number; p99: number; mean: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)
  return { n: sorted.length, median: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), mean, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN }
}

/** Rounds for JSON/humans: 3 significant decimals below 10, else 1 decimal. */
export function round(value: number, digits = 3): number {
  return Number.isFinite(value) ? Number(value.toFixed(digits)) : value
}

export const ints = (values: string[], flag: string) => values.map((v) => parseNumber(v, flag, { min: 1, integer: true }))

/** A distribution figure: a box (min-max whiskers) and every run as a tick, per group. */
export async function writeDistributionSvg(svg: string, title: string, values: { group: string; value: number }[], axis: string, log = false): Promise<void> {
  const { writeVegaLiteSvg } = await import('../lib/vega.js')
  const x = { field: 'value', type: 'quantitative', title: axis, ...(log ? { scale: { type: 'log' } } : { scale: { zero: true } }) }
  const y = { field: 'group', type: 'nominal', title: null }
  await writeVegaLiteSvg(svg, {
    title,
    width: 520,
    height: { step: 60 },
    data: { values },
    layer: [
      { mark: { type: 'boxplot', extent: 'min-max', size: 30, opacity: 0.5 }, encoding: { x, y, color: { field: 'group', type: 'nominal', legend: null } } },
      { mark: { type: 'tick', color: 'black', opacity: 0.6, thickness: 1 }, encoding: { x, y } },
    ],
  })
}
