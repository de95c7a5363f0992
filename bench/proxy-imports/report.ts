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
    ...(plot.dash ? { strokeDash: { field: plot.dash, type: 'nominal', title: plot.dash } } : {}),
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
