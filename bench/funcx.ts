/**
 * bench/funcx: the funcX paper's eight experiments (seed 002; ../shared/docs/BENCHMARKS.md
 * section 2; bench/funcx/README.md), one entry with a subcommand each.
 *
 *   node out/bench/funcx.js latency [--calls 2000] [--target htex endpoint]
 *   node out/bench/funcx.js cold-start [--repeat 5]
 *   node out/bench/funcx.js instantiation [--runs 100]
 *   node out/bench/funcx.js scaling [--workers 1 2 4 8] [--sleeps 0 10] [--modes strong weak]
 *   node out/bench/funcx.js fault-tolerance [--duration 10] [--kill-after 100]
 *   node out/bench/funcx.js batching [--sizes 1 2 4 .. 1024]
 *   node out/bench/funcx.js prefetching [--capacities 0 1 4 16 auto] [--durations 0 1 10]
 *   node out/bench/funcx.js memoization [--fractions 0 25 50 100]
 *   node out/bench/funcx.js all                  # every experiment at its default size
 *   node out/bench/funcx.js plot <run dir>       # redraws the plot(s) from <run dir>/results.jsonl
 *
 * Every experiment takes --config FILE (a tsflow config module: Slurm, an endpoint, ...), --out
 * DIR, --repeat N, --history true|false; bench/funcx/common.ts is the frame.
 */
import { dirname, join } from 'node:path'
import { mkdirSync } from 'node:fs'
import { BenchUsage, parseArgs, usage } from './lib/args.js'
import { runBench } from './lib/cleanup.js'
import { COMMON_FLAGS, FUNCX_RESULTS, readRows, runExperiment, stamp, type Experiment } from './funcx/common.js'

/**
 * An experiment is either an Experiment of the frame (bench/funcx/common.ts: the frame parses the
 * common flags, writes results.jsonl, the SVG and the history line) or a module that does all of
 * that itself from its argv (`run(argv)`: exit code).
 */
interface RawExperiment {
  run(argv: string[]): Promise<number>
}
type Loader = () => Promise<Experiment<never> | RawExperiment>

const isFramed = (x: Experiment<never> | RawExperiment): x is Experiment<never> => 'plot' in x && 'summarize' in x && 'name' in x

/** The paper's order; an experiment not (yet) in EXPERIMENTS is named by `all` as missing. */
const ORDER = ['latency', 'cold-start', 'instantiation', 'scaling', 'fault-tolerance', 'batching', 'prefetching', 'memoization'] as const

// One line per experiment: its module is loaded only when it runs.
const EXPERIMENTS: Partial<Record<(typeof ORDER)[number], Loader>> = {
  latency: async () => (await import('./funcx/latency.js')).latency as Experiment<never>,
  'cold-start': async () => (await import('./funcx/cold-start.js')).coldStart as Experiment<never>,
  instantiation: async () => (await import('./funcx/instantiation.js')).instantiation as Experiment<never>,
  scaling: async () => (await import('./funcx/scaling.js')).scaling as Experiment<never>,
  'fault-tolerance': async () => (await import('./funcx/fault-tolerance.js')).faultTolerance as Experiment<never>,
  batching: async () => (await import('./funcx/batching.js')).batching as Experiment<never>,
  prefetching: async () => (await import('./funcx/prefetching.js')).prefetching as Experiment<never>,
  memoization: async () => (await import('./funcx/memoization.js')).memoization as Experiment<never>,
}

const SUMMARY = `The funcX paper's experiments: ${ORDER.join(', ')}; 'all' runs every one at its default
size (short: seconds each; flags give the paper's sizes), 'plot <dir>' redraws a run's plot.
Each writes <out>/results.jsonl (every line: experiment, machine, tsflow version, the config's
describe()), <out>/<experiment>.svg and a summary line in bench/results/funcx-<experiment>.jsonl.`

async function experimentNamed(name: string): Promise<Experiment | RawExperiment> {
  const loader = EXPERIMENTS[name as (typeof ORDER)[number]]
  if (!loader) {
    const known = ORDER.filter((n) => EXPERIMENTS[n])
    throw new BenchUsage(`unknown experiment '${name}': one of ${known.join(', ')}, all, or plot <dir>${(ORDER as readonly string[]).includes(name) ? ` ('${name}' is not written yet)` : ''}`)
  }
  const loaded = await loader()
  return isFramed(loaded) ? (loaded as unknown as Experiment) : loaded
}

async function framed(name: string, why: string): Promise<Experiment> {
  const experiment = await experimentNamed(name)
  if (!isFramed(experiment as Experiment<never>)) throw new BenchUsage(`${name} ${why}`)
  return experiment as Experiment
}

async function bench(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h') {
    console.log(usage(`node out/bench/funcx.js {${ORDER.join('|')}|all|plot <dir>}`, SUMMARY, COMMON_FLAGS))
    return first === undefined ? 2 : 0
  }
  if (first === 'plot') return replot(rest)
  if (first === 'all') return runAll(rest)
  const found = await experimentNamed(first)
  if (!isFramed(found as Experiment<never>)) return (found as RawExperiment).run(rest)
  const experiment = found as Experiment
  const spec = { ...COMMON_FLAGS, ...experiment.flags }
  const flags = parseArgs(rest, spec)
  if (flags === 'help') {
    console.log(usage(`node out/bench/funcx.js ${experiment.name}`, experiment.summary, spec))
    return 0
  }
  await runExperiment(experiment, flags)
  return 0
}

/** Every experiment at its default size; --out DIR holds one directory per experiment. */
async function runAll(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, COMMON_FLAGS)
  if (flags === 'help') {
    console.log(usage('node out/bench/funcx.js all', SUMMARY, COMMON_FLAGS))
    return 0
  }
  const root = flags.out || join(FUNCX_RESULTS, `all-${stamp()}`)
  mkdirSync(root, { recursive: true })
  const failed: string[] = []
  for (const name of ORDER) {
    if (!EXPERIMENTS[name]) {
      console.log(`\n== ${name}: not written yet, skipped`)
      continue
    }
    console.log(`\n== ${name}`)
    try {
      const experiment = await experimentNamed(name)
      if (isFramed(experiment as Experiment<never>)) {
        // the experiment's own flags at their defaults, the common ones as given
        const defaults = parseArgs([], (experiment as Experiment).flags) as Record<string, string | string[]>
        await runExperiment(experiment as Experiment, { ...defaults, ...flags, out: join(root, name) })
      }
      else if ((await (experiment as RawExperiment).run(['--out', join(root, name), '--history', flags.history, ...(flags.config ? ['--config', flags.config] : []), ...(flags.repeat ? ['--repeat', flags.repeat] : [])])) !== 0) failed.push(name)
    } catch (error) {
      if (error instanceof BenchUsage) throw error
      console.error(`${name} failed: ${(error as Error)?.stack ?? error}`)
      failed.push(name)
    }
  }
  console.log(`\nall: results under ${root}${failed.length ? `; failed: ${failed.join(', ')}` : ''}`)
  return failed.length ? 1 : 0
}

/** `plot <dir> [--out DIR]`: redraws each experiment's SVG from <dir>/results.jsonl. */
async function replot(args: string[]): Promise<number> {
  const outAt = args.indexOf('--out')
  const out = outAt >= 0 ? args[outAt + 1] : undefined
  const dirs = args.filter((_, i) => outAt < 0 || (i !== outAt && i !== outAt + 1))
  if (dirs.length !== 1 || (outAt >= 0 && !out)) throw new BenchUsage('plot needs one run directory (or its results.jsonl), and optionally --out DIR (default: that directory)')
  const rows = readRows(dirs[0]!)
  const target = out ?? (dirs[0]!.endsWith('.jsonl') ? dirname(dirs[0]!) : dirs[0]!)
  mkdirSync(target, { recursive: true })
  const names = [...new Set(rows.map((row) => String(row.experiment)))]
  for (const name of names) {
    const experiment = await framed(name, 'draws its plot when it runs; plot <dir> redraws only the experiments of the frame')
    const mine = rows.filter((row) => row.experiment === name)
    const svg = join(target, `${name}.svg`)
    await experiment.plot(mine, svg)
    for (const line of experiment.summarize(mine).lines) console.log(line)
    console.log(`plot ${svg}`)
  }
  return 0
}

await runBench('funcx', bench, BenchUsage)
