/**
 * `tsflow-perf compare [FILE|DIR ...]`: reads the JSON-lines history tsflow-perf appends to,
 * groups the runs by configuration (host, executor, provider, launcher, nodes per block,
 * workers), prints best and median tasks/s per group, and writes an SVG plot of tasks/s per
 * configuration (vega-lite compiled to vega, rendered headless in this process: no browser, no
 * canvas).
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { UsageError } from '../errors.js'
import { DEFAULT_RESULTS_DIR } from './args.js'
import { formatRate, type Output } from './report.js'
import { RESULTS_FILE, setupOf, type PerfRecord, type RunSetup } from './results.js'

export const SVG_FILE = 'tsflow-perf-compare.svg'

export const COMPARE_USAGE = `Usage: tsflow-perf compare [options] [FILE|DIR ...]

Compares tsflow-perf runs: reads each history file (a directory means its ${RESULTS_FILE};
default ${join(DEFAULT_RESULTS_DIR, RESULTS_FILE)}), groups finished runs by host, executor,
provider, launcher, nodes per block and workers, prints best and median tasks/s per group, and
writes an SVG plot of tasks/s per configuration.

Options:
  --svg FILE   where the plot is written (default: ${SVG_FILE} next to the first history file)
  --no-svg     print the table only
  --help       show this help

Exit status: 0 done, 1 the plot could not be written, 2 bad arguments or an unreadable history.
`

export interface CompareOptions {
  files: string[]
  /** null: no plot */
  svg: string | null
}

export function parseCompareArgs(argv: readonly string[]): CompareOptions | 'help' {
  const files: string[] = []
  let svg: string | undefined
  let noSvg = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (arg === '--no-svg') noSvg = true
    else if (arg === '--svg' || arg.startsWith('--svg=')) {
      const value = arg === '--svg' ? argv[++i] : arg.slice('--svg='.length)
      if (value === undefined || value.trim() === '' || (arg === '--svg' && value.startsWith('--'))) {
        throw new UsageError('--svg needs a value (the path of the SVG file to write)')
      }
      svg = value
    } else if (arg.startsWith('-')) {
      throw new UsageError(`compare: unknown flag ${arg}; known flags: --svg FILE, --no-svg, --help`)
    } else files.push(arg)
  }
  if (noSvg && svg !== undefined) throw new UsageError('compare: --svg and --no-svg contradict each other; give one')
  const inputs = files.length ? files.map(historyFile) : [join(DEFAULT_RESULTS_DIR, RESULTS_FILE)]
  return { files: inputs, svg: noSvg ? null : (svg ?? join(dirname(inputs[0]!), SVG_FILE)) }
}

/** A directory stands for the history file tsflow-perf --results-dir DIR writes. */
function historyFile(path: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, RESULTS_FILE) : path
}

/** One finished run, as compare sees it. */
export interface RunRow {
  file: string
  line: number
  timestamp: string
  host: string
  setup: RunSetup
  tasksPerSecond: number
  tsflowVersion: string
  configFile: string | null
}

export interface History {
  runs: RunRow[]
  /** records that did not finish with a rate (interrupted, failed) */
  unfinished: number
}

/**
 * Reads and checks the history files. A missing file, a line that is not JSON or not a
 * tsflow-perf record is a UsageError naming the file (and line): a history is written by
 * tsflow-perf alone, so a bad line means the wrong file was given.
 */
export function readHistory(files: readonly string[]): History {
  const runs: RunRow[] = []
  let unfinished = 0
  for (const file of files) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const why = code === 'ENOENT' ? `no such file (looked for ${resolve(file)}); tsflow-perf writes <results-dir>/${RESULTS_FILE}` : (error as Error).message
      throw new UsageError(`compare: cannot read ${file}: ${why}`)
    }
    const lines = text.split('\n')
    let records = 0
    for (let index = 0; index < lines.length; index++) {
      const raw = lines[index]!.trim()
      if (raw === '') continue
      const where = `${file}:${index + 1}`
      let value: unknown
      try {
        value = JSON.parse(raw)
      } catch (error) {
        throw new UsageError(`compare: ${where} is not a JSON line (${(error as Error).message}); expected a ${RESULTS_FILE} written by tsflow-perf`)
      }
      const record = checkRecord(value, where)
      records++
      if (record.status !== 'finished' || typeof record.tasksPerSecond !== 'number' || !Number.isFinite(record.tasksPerSecond)) {
        unfinished++
        continue
      }
      runs.push({
        file,
        line: index + 1,
        timestamp: record.timestamp,
        host: record.host.hostname,
        setup: record.setup ?? setupOf(record.config.executors, record.iterations),
        tasksPerSecond: record.tasksPerSecond,
        tsflowVersion: record.tsflowVersion,
        configFile: record.config.file,
      })
    }
    if (records === 0) throw new UsageError(`compare: ${file} holds no tsflow-perf records`)
  }
  return { runs, unfinished }
}

function checkRecord(value: unknown, where: string): PerfRecord {
  const record = value as Partial<PerfRecord> | null
  if (typeof record !== 'object' || record === null || record.record !== 'tsflow-perf') {
    throw new UsageError(`compare: ${where} is not a tsflow-perf record (no "record": "tsflow-perf")`)
  }
  const missing = [
    typeof record.timestamp !== 'string' && 'timestamp',
    (typeof record.host !== 'object' || typeof record.host?.hostname !== 'string') && 'host.hostname',
    (typeof record.config !== 'object' || !Array.isArray(record.config?.executors)) && 'config.executors',
    !Array.isArray(record.iterations) && 'iterations',
  ].filter((field): field is string => typeof field === 'string')
  if (missing.length) throw new UsageError(`compare: ${where}: the tsflow-perf record lacks ${missing.join(', ')}`)
  return record as PerfRecord
}

export interface Group {
  label: string
  host: string
  setup: RunSetup
  runs: RunRow[]
  best: number
  median: number
  /** latest run's start time */
  last: string
}

/** "vm htex/local 1 node x 2 workers"; the launcher is named when it is not the default one. */
export function configurationLabel(host: string, setup: RunSetup): string {
  const provider = setup.provider ? `/${setup.provider}` : ''
  const launcher = setup.launcher && setup.launcher !== 'single_node' ? ` (${setup.launcher})` : ''
  const nodes = `${setup.nodesPerBlock} node${setup.nodesPerBlock === 1 ? '' : 's'}`
  const workers = setup.workers === null ? '? workers' : `${setup.workers} worker${setup.workers === 1 ? '' : 's'}`
  return `${host} ${setup.executor}${provider}${launcher} ${nodes} x ${workers}`
}

export function groupRuns(runs: readonly RunRow[]): Group[] {
  const groups = new Map<string, Group>()
  for (const run of runs) {
    const label = configurationLabel(run.host, run.setup)
    let group = groups.get(label)
    if (!group) groups.set(label, (group = { label, host: run.host, setup: run.setup, runs: [], best: 0, median: 0, last: run.timestamp }))
    group.runs.push(run)
    if (run.timestamp > group.last) group.last = run.timestamp
  }
  for (const group of groups.values()) {
    const rates = group.runs.map((run) => run.tasksPerSecond).sort((a, b) => a - b)
    const middle = rates.length >> 1
    group.best = rates[rates.length - 1]!
    group.median = rates.length % 2 ? rates[middle]! : (rates[middle - 1]! + rates[middle]!) / 2
  }
  return [...groups.values()].sort(
    (a, b) =>
      a.host.localeCompare(b.host) ||
      (a.setup.provider ?? '').localeCompare(b.setup.provider ?? '') ||
      a.setup.executor.localeCompare(b.setup.executor) ||
      a.setup.nodesPerBlock - b.setup.nodesPerBlock ||
      (a.setup.workers ?? 0) - (b.setup.workers ?? 0) ||
      a.label.localeCompare(b.label),
  )
}

const COLUMNS = ['host', 'executor', 'provider', 'launcher', 'nodes', 'workers', 'runs', 'best tasks/s', 'median tasks/s', 'last run'] as const
const NUMERIC = new Set<string>(['nodes', 'workers', 'runs', 'best tasks/s', 'median tasks/s'])

/** The table, columns aligned (numbers to the right). */
export function formatTable(groups: readonly Group[]): string {
  const rows = groups.map((g) => [
    g.host,
    g.setup.executor,
    g.setup.provider ?? '-',
    g.setup.launcher ?? '-',
    String(g.setup.nodesPerBlock),
    g.setup.workers === null ? '?' : String(g.setup.workers),
    String(g.runs.length),
    formatRate(g.best),
    formatRate(g.median),
    g.last.replace('T', ' ').slice(0, 16),
  ])
  const widths = COLUMNS.map((name, column) => Math.max(name.length, ...rows.map((row) => row[column]!.length)))
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (NUMERIC.has(COLUMNS[column]!) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd()
  return [render(COLUMNS), render(widths.map((width) => '-'.repeat(width))), ...rows.map(render)].join('\n') + '\n'
}

/**
 * The plot: one row per configuration, a bar at its median tasks/s and a dot per run, colored by
 * host. vega and vega-lite are loaded here only, so plain `tsflow-perf` runs never load them.
 */
export async function renderSvg(groups: readonly Group[]): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')])
  const order = groups.map((g) => g.label)
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'tsflow-perf: tasks/s per configuration', subtitle: 'bar: median of the runs; dots: each run' },
    width: 480,
    height: { step: 26 },
    background: 'white',
    // Configuration labels are long; cutting them would make rows indistinguishable.
    config: { axis: { labelLimit: 0 } },
    layer: [
      {
        data: { values: groups.map((g) => ({ configuration: g.label, host: g.host, median: g.median, runs: g.runs.length })) },
        mark: { type: 'bar', opacity: 0.55 },
        encoding: {
          y: { field: 'configuration', type: 'nominal', sort: order, title: null },
          x: { field: 'median', type: 'quantitative', title: 'tasks/s' },
          color: { field: 'host', type: 'nominal', title: 'host' },
        },
      },
      {
        data: { values: groups.flatMap((g) => g.runs.map((run) => ({ configuration: g.label, host: g.host, tasksPerSecond: run.tasksPerSecond }))) },
        mark: { type: 'point', filled: true, size: 40, color: '#222' },
        encoding: {
          y: { field: 'configuration', type: 'nominal', sort: order },
          x: { field: 'tasksPerSecond', type: 'quantitative' },
        },
      },
    ],
  }
  const compiled = vegaLite.compile(spec as unknown as Parameters<typeof vegaLite.compile>[0]).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

export interface CompareIo {
  stdout: Output
  stderr: Output
}

/** Runs `tsflow-perf compare`; returns the exit status. */
export async function runCompare(argv: readonly string[], io: CompareIo): Promise<number> {
  let options: CompareOptions
  let history: History
  try {
    const parsed = parseCompareArgs(argv)
    if (parsed === 'help') {
      io.stdout.write(COMPARE_USAGE)
      return 0
    }
    options = parsed
    history = readHistory(options.files)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr.write(`tsflow-perf: ${error.message}\nRun tsflow-perf compare --help for usage.\n`)
    return 2
  }
  const groups = groupRuns(history.runs)
  const skipped = history.unfinished ? `; ${history.unfinished} interrupted or failed run${history.unfinished === 1 ? '' : 's'} left out` : ''
  io.stdout.write(`${history.runs.length} finished run${history.runs.length === 1 ? '' : 's'} in ${groups.length} configuration${groups.length === 1 ? '' : 's'} from ${options.files.join(', ')}${skipped}\n\n`)
  if (groups.length === 0) {
    io.stdout.write('nothing to compare: no run finished with a rate\n')
    return 0
  }
  io.stdout.write(formatTable(groups))
  if (options.svg === null) return 0
  try {
    writeFileSync(options.svg, await renderSvg(groups))
  } catch (error) {
    io.stderr.write(`tsflow-perf: could not write the plot to ${options.svg}: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout.write(`\nplot written to ${options.svg}\n`)
  return 0
}
