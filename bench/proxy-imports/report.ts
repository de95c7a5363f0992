/** Plots and tables of the proxy-imports bench (like the seed's figures: one line per method). */
import { writeVegaLiteSvg } from '../lib/vega.js'

type Row = Record<string, unknown>

export interface LinePlot {
  title: string
  subtitle?: string
  x: { field: string; title: string; log?: boolean }
  y: { field: string; title: string; log?: boolean }
  /** a column per value of this field */
  column?: string
  /** a dash pattern per value of this field */
  dash?: string
}

export async function plotLines(file: string, rows: readonly Row[], plot: LinePlot): Promise<void> {
  const encoding: Record<string, unknown> = {
    x: { field: plot.x.field, type: 'quantitative', title: plot.x.title, ...(plot.x.log ? { scale: { type: 'log' } } : {}) },
    y: { field: plot.y.field, type: 'quantitative', title: plot.y.title, ...(plot.y.log ? { scale: { type: 'log' } } : {}) },
    color: { field: 'method', type: 'nominal', title: 'method' },
    ...(plot.dash ? { strokeDash: { field: plot.dash, type: 'nominal', title: null } } : {}),
    ...(plot.column ? { column: { field: plot.column, type: 'nominal', title: plot.column } } : {}),
  }
  await writeVegaLiteSvg(file, {
    title: { text: plot.title, ...(plot.subtitle ? { subtitle: plot.subtitle } : {}) },
    data: { values: rows },
    ...(plot.column ? { spec: { width: 300, height: 240, mark: { type: 'line', point: true }, encoding: withoutColumn(encoding) }, facet: { column: encoding.column }, resolve: { scale: { y: 'independent' } } } : { width: 520, height: 320, mark: { type: 'line', point: true }, encoding }),
  })
}

function withoutColumn(encoding: Record<string, unknown>): Record<string, unknown> {
  const { column: _column, ...rest } = encoding
  return rest
}

/** A bar per method (inference makespan). */
export async function plotBars(file: string, rows: readonly Row[], title: string, field: string, fieldTitle: string, subtitle?: string): Promise<void> {
  await writeVegaLiteSvg(file, {
    title: { text: title, ...(subtitle ? { subtitle } : {}) },
    width: 420,
    height: 260,
    data: { values: rows },
    mark: 'bar',
    encoding: {
      x: { field: 'method', type: 'nominal', title: 'method', sort: null },
      y: { field, type: 'quantitative', title: fieldTitle, aggregate: 'mean' },
      color: { field: 'method', type: 'nominal', legend: null },
    },
  })
}

/** A plain text table: one line per row, the given columns. */
export function table(rows: readonly Row[], columns: readonly string[]): string {
  const cell = (value: unknown) => (typeof value === 'number' ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : value === null || value === undefined ? '-' : String(value))
  const body = rows.map((row) => columns.map((c) => cell(row[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i]!.length)))
  const render = (cells: string[]) => cells.map((text, i) => text.padStart(widths[i]!)).join('  ')
  return [render([...columns]), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(render)].join('\n')
}

/**
 * The table and the plot of one benchmark's rows (the rows of several runs may be mixed: the
 * plot subcommand redraws from results files). Simulated runs also print the targets.
 */
export async function report(benchmark: string, rows: readonly Row[], svg: string): Promise<void> {
  let plotted = rows.filter((row) => row.mean_import !== undefined || row.benchmark === 'inference')
  // Runs over different file systems in one figure: the method says which (e.g. "file-system [sshfs]").
  const systems = new Set(plotted.map((row) => fileSystemLabel(row.file_system)))
  if (systems.size > 1) plotted = plotted.map((row) => ({ ...row, method: `${row.method} [${fileSystemLabel(row.file_system)}]` }))
  if (benchmark === 'scaling') {
    console.log(`\n${table(plotted, ['method', 'module', 'nodes', 'tasks_per_node', 'mean_import', 'max_import', 'makespan', 'setup'])}`)
    await plotLines(svg, plotted.map((row) => ({ ...row, nodes_label: `${row.nodes} node${row.nodes === 1 ? '' : 's'}` })), {
      title: 'proxy-imports scaling: mean import time per task',
      subtitle: 'one worker process per task, every import a first import; dashes: nodes',
      x: { field: 'tasks_per_node', title: 'tasks per node' },
      y: { field: 'mean_import', title: 'mean import time (s)' },
      column: 'module',
      dash: 'nodes_label',
    })
  } else if (benchmark === 'simulated') {
    console.log(`\n${table(plotted, ['method', 'package_size', 'nodes', 'tasks_per_node', 'mean_import', 'max_import', 'makespan', 'setup'])}`)
    await plotLines(svg, plotted.map((row) => ({ ...row, shape: `${row.nodes} node(s) x ${row.tasks_per_node}` })), {
      title: 'proxy-imports simulated packages: mean import time per task',
      subtitle: 'a package of N x 1,000 small files whose entry imports all of them; dashes: nodes x tasks per node',
      x: { field: 'package_size', title: 'package size (files)' },
      y: { field: 'mean_import', title: 'mean import time (s)' },
      dash: 'shape',
    })
    summarizeTargets(plotted)
  } else if (benchmark === 'cloud-burst') {
    console.log(`\n${table(plotted, ['method', 'module', 'package_files', 'package_bytes', 'mean_import', 'round_trip', 'setup'])}`)
    const long = plotted.flatMap((row) => [
      { ...row, what: 'import', seconds: row.mean_import },
      { ...row, what: 'round trip', seconds: row.round_trip },
    ])
    await plotLines(svg, long, {
      title: 'proxy-imports cloud burst: a worker on a host without the package',
      subtitle: 'lazy: the package travels with the task; dashes: import time inside the task, round trip from submit',
      x: { field: 'package_bytes', title: 'package size (bytes)', log: true },
      y: { field: 'seconds', title: 'seconds' },
      dash: 'what',
    })
  } else {
    console.log(`\n${table(plotted, ['method', 'nodes', 'tasks_per_node', 'mean_import', 'mean_infer', 'makespan', 'setup'])}`)
    await plotBars(svg, plotted, 'proxy-imports inference: makespan per method', 'makespan', 'makespan (s)', 'a model by proxy and mathjs, the inputs split over every worker')
  }
}

/** The target figures, when the rows hold what they compare. */
function summarizeTargets(rows: readonly Row[]): void {
  const mean = (method: string, size: unknown, n: unknown, t: unknown, field = 'mean_import') => {
    const found = rows.filter((r) => r.method === method && r.package_size === size && r.nodes === n && r.tasks_per_node === t).map((r) => r[field] as number | null)
    const values = found.filter((v): v is number => typeof v === 'number')
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined
  }
  const shapes = new Set(rows.map((r) => `${r.package_size}|${r.nodes}|${r.tasks_per_node}`))
  for (const shape of shapes) {
    const [size, n, t] = shape.split('|').map(Number)
    const fs = mean('file-system', size, n, t)
    const lazy = mean('lazy', size, n, t)
    const warm = mean('lazy-warm', size, n, t)
    const local = mean('local', size, n, t)
    const lazySetup = mean('lazy', size, n, t, 'setup')
    const packSetup = mean('pack', size, n, t, 'setup')
    const parts: string[] = []
    if (fs !== undefined && lazy !== undefined) parts.push(`file-system / lazy import ${(fs / lazy).toFixed(2)}x (target >= 3)`)
    if (lazySetup !== undefined && packSetup !== undefined) parts.push(`setup lazy ${lazySetup.toFixed(2)} s vs pack ${packSetup.toFixed(2)} s (target: lazy lower)`)
    if (warm !== undefined && local !== undefined) parts.push(`lazy-warm / local import ${(warm / local).toFixed(2)}x (target <= 1.5)`)
    if (parts.length) console.log(`${size} files, ${n} node(s) x ${t}: ${parts.join('; ')}`)
  }
}

/** 'sshfs mount /x, rtt +1 ms (relay)' -> 'sshfs +1 ms'; 'local disk (/tmp)' -> 'local': runs over one file system at two latencies stay apart. */
function fileSystemLabel(fileSystem: unknown): string {
  const text = String(fileSystem ?? '?')
  const rtt = /rtt \+([\d.]+) ms/.exec(text)
  const kind = text.split(' ')[0]!
  return rtt && Number(rtt[1]) > 0 ? `${kind} +${rtt[1]} ms` : kind
}
