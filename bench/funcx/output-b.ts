/**
 * Flags and output shared by the scaling, fault-tolerance, prefetching and memoization
 * experiments: --config, --out, --repeat; a run directory with results.jsonl (one line per
 * measurement: experiment, machine, tsflow version, each executor's describe()) and the SVG; a
 * summary line appended to bench/results/funcx-<experiment>.jsonl.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { TSFLOW_VERSION } from 'tsflow'
import { parseArgs, usage, type FlagSpec, type Flags } from '../lib/args.js'
import { appendResult, machine } from '../lib/results.js'
import { writeVegaLiteSvg } from '../lib/vega.js'

export const COMMON_FLAGS = {
  config: { default: '', help: 'a tsflow config module (default export: a config, or a function of the sweep point returning one); default: HTEX on the LocalProvider' },
  out: { default: 'runs/', help: 'results go to <out>/funcx-<experiment>-<date>/' },
  repeat: { default: '1', help: 'measurements of each point; the summary takes the median' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the summary line to bench/results/funcx-<experiment>.jsonl' },
} satisfies Record<string, FlagSpec>

export type CommonFlags = Flags<typeof COMMON_FLAGS>

/** Parses an experiment's flags together with the common ones; 'help' prints the usage. */
export function parseExperimentFlags<S extends Record<string, FlagSpec>>(name: string, summary: string, spec: S, argv: readonly string[]): (Flags<S> & CommonFlags) | undefined {
  const all = { ...spec, ...COMMON_FLAGS }
  const flags = parseArgs(argv, all)
  if (flags === 'help') {
    console.log(usage(`node out/bench/funcx.js ${name}`, summary, all))
    return undefined
  }
  return flags as Flags<S> & CommonFlags
}

function stamp(date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}-${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`
}

export interface Output {
  dir: string
  resultsFile: string
  /** one measurement, with the experiment, machine, version and config added */
  record(row: Record<string, unknown>): void
  /** draws the SVG and appends the summary line; returns the SVG's path */
  finish(summary: Record<string, unknown>, plot: Record<string, unknown>): Promise<string>
}

export function openOutput(experiment: string, flags: CommonFlags, config: () => Record<string, unknown>): Output {
  const dir = resolve(flags.out, `funcx-${experiment}-${stamp()}`)
  mkdirSync(dir, { recursive: true })
  const resultsFile = join(dir, 'results.jsonl')
  const m = machine()
  console.log(`run directory ${dir}`)
  return {
    dir,
    resultsFile,
    record(row) {
      appendFileSync(resultsFile, `${JSON.stringify({ experiment, machine: m, tsflow: TSFLOW_VERSION, config: config(), ...row })}\n`)
    },
    async finish(summary, plot) {
      const svg = join(dir, `${experiment}.svg`)
      await writeVegaLiteSvg(svg, plot)
      console.log(`results ${resultsFile}\nplot ${svg}`)
      if (flags.history === 'true') console.log(`summary appended to ${appendResult(`funcx-${experiment}`, { experiment, tsflow: TSFLOW_VERSION, config: config(), ...summary })}`)
      return svg
    },
  }
}
