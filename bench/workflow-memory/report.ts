/**
 * What workflow-memory writes and prints after the runs: per-run memory figures from the sampler's
 * CSV, the summary table (per mode: makespan, peak memory above the run's baseline), and the plot of
 * memory over time (the store-empty check is bench/lib/store-check.ts).
 */
import { readFileSync } from 'node:fs'
import { formatBytes } from '../lib/args.js'
import type { MemorySample } from '../lib/meminfo.js'
import { writeVegaLiteSvg } from '../lib/vega.js'
import { RESULT_COLUMNS, type RunResult } from './workflow.js'

export function csvLine(values: readonly unknown[]): string {
  return `${values.map((v) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(6) : String(v))).join(',')}\n`
}

export function resultLine(result: RunResult): string {
  return csvLine(RESULT_COLUMNS.map((column) => result[column]))
}

/** A CSV of numbers with a header line, as the sampler writes them. */
export function readNumbersCsv<T>(file: string): T[] {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n')
  const columns = header!.split(',')
  return lines
    .filter((line) => line.trim() !== '')
    .map((line) => Object.fromEntries(line.split(',').map((value, i) => [columns[i]!, Number(value)])) as T)
}

export function readMemoryCsv(file: string): MemorySample[] {
  return readNumbersCsv<MemorySample>(file)
}

export interface TreeSample {
  unix_timestamp: number
  tree_rss_bytes: number
  processes: number
  stored_bytes: number
}

export interface RunMemory {
  result: RunResult
  index: number
  /** used memory at the run's start (last sample at or before it) */
  baselineBytes: number
  /** highest used memory sampled between the run's start and end */
  peakBytes: number
  samples: number
  /** the same for the resident memory of the bench's process tree */
  treeBaselineBytes: number
  treePeakBytes: number
  /** highest bytes the store held in files (file, shm) during the run */
  storedPeakBytes: number
}

/** Baseline (last sample at or before `start`) and peak (highest from start to end) of a series. */
function baselineAndPeak<S extends { unix_timestamp: number }>(samples: readonly S[], value: (s: S) => number, start: number, end: number): { baseline: number; peak: number; during: number } {
  const before = samples.filter((s) => s.unix_timestamp <= start).at(-1) ?? samples.find((s) => s.unix_timestamp >= start)
  const during = samples.filter((s) => s.unix_timestamp >= start && s.unix_timestamp <= end)
  const baseline = before ? value(before) : NaN
  return { baseline, peak: Math.max(baseline, ...during.map(value)), during: during.length }
}

export function runMemory(results: readonly RunResult[], samples: readonly MemorySample[], tree: readonly TreeSample[] = []): RunMemory[] {
  return results.map((result, index) => {
    const start = result.workflow_start_timestamp
    const end = result.workflow_end_timestamp
    const system = baselineAndPeak(samples, (s) => s.used_bytes, start, end)
    const own = baselineAndPeak(tree, (s) => s.tree_rss_bytes, start, end)
    const stored = baselineAndPeak(tree, (s) => s.stored_bytes, start, end)
    return { result, index, baselineBytes: system.baseline, peakBytes: system.peak, samples: system.during, treeBaselineBytes: own.baseline, treePeakBytes: own.peak, storedPeakBytes: stored.peak }
  })
}

export interface ModeSummary {
  mode: string
  runs: number
  makespanMeanS: number
  makespanStdS: number
  peakAboveBaselineMeanBytes: number
  peakAboveBaselineMaxBytes: number
  /** the bench's own processes: resident memory peak above the run's start, mean over runs */
  treePeakAboveBaselineMeanBytes: number
  treePeakAboveBaselineMaxBytes: number
  /** most bytes the store held in files (file, shm connectors) at once, mean over runs */
  storedPeakMeanBytes: number
}

export function summarize(runs: readonly RunMemory[]): ModeSummary[] {
  const modes = [...new Set(runs.map((r) => r.result.data_management))]
  return modes.map((mode) => {
    const mine = runs.filter((r) => r.result.data_management === mode)
    const makespans = mine.map((r) => r.result.workflow_makespan_s)
    const mean = makespans.reduce((a, b) => a + b, 0) / makespans.length
    const std = Math.sqrt(makespans.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, makespans.length - 1))
    const peaks = mine.map((r) => r.peakBytes - r.baselineBytes)
    const treePeaks = mine.map((r) => r.treePeakBytes - r.treeBaselineBytes)
    return {
      mode,
      runs: mine.length,
      makespanMeanS: mean,
      makespanStdS: makespans.length > 1 ? std : 0,
      peakAboveBaselineMeanBytes: peaks.reduce((a, b) => a + b, 0) / peaks.length,
      peakAboveBaselineMaxBytes: Math.max(...peaks),
      treePeakAboveBaselineMeanBytes: treePeaks.reduce((a, b) => a + b, 0) / treePeaks.length,
      treePeakAboveBaselineMaxBytes: Math.max(...treePeaks),
      storedPeakMeanBytes: mine.reduce((a, r) => a + r.storedPeakBytes, 0) / mine.length,
    }
  })
}

export function summaryTable(summaries: readonly ModeSummary[]): string {
  const rows = [
    ['mode', 'runs', 'makespan mean (s)', '± std', 'system: peak above start, mean', 'max', 'bench processes: RSS peak above start, mean', 'max', 'store files: peak, mean'],
    ...summaries.map((s) => [
      s.mode,
      String(s.runs),
      s.makespanMeanS.toFixed(3),
      s.makespanStdS.toFixed(3),
      formatBytes(s.peakAboveBaselineMeanBytes),
      formatBytes(s.peakAboveBaselineMaxBytes),
      Number.isFinite(s.treePeakAboveBaselineMeanBytes) ? formatBytes(s.treePeakAboveBaselineMeanBytes) : '-',
      Number.isFinite(s.treePeakAboveBaselineMaxBytes) ? formatBytes(s.treePeakAboveBaselineMaxBytes) : '-',
      Number.isFinite(s.storedPeakMeanBytes) ? formatBytes(s.storedPeakMeanBytes) : '-',
    ]),
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  const render = (row: string[]) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')
  return [render(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(render)].join('\n')
}

/**
 * Panels: the system's used memory over the whole benchmark with each run shaded from its start
 * to its end (colour: mode); the bench's own processes' RSS and the store's files over the same
 * time; and one chart per mode of every run's memory above its
 * baseline against the time since its start, with a rule at each run's end.
 */
export async function plotMemory(file: string, title: string, runs: readonly RunMemory[], samples: readonly MemorySample[], tree: readonly TreeSample[] = []): Promise<void> {
  const t0 = samples[0]?.unix_timestamp ?? 0
  const mb = (bytes: number) => bytes / 1e6
  const timeline = samples.map((s) => ({ t: s.unix_timestamp - t0, used: mb(s.used_bytes) }))
  const own = tree.flatMap((s) => [
    { t: s.unix_timestamp - t0, series: 'bench processes (RSS)', mb: mb(s.tree_rss_bytes) },
    { t: s.unix_timestamp - t0, series: 'store files (file, shm)', mb: mb(s.stored_bytes) },
  ])
  const spans = runs.map((r) => ({ mode: r.result.data_management, run: r.index + 1, start: r.result.workflow_start_timestamp - t0, end: r.result.workflow_end_timestamp - t0 }))
  const overlay = runs.flatMap((r) => {
    const start = r.result.workflow_start_timestamp
    const end = r.result.workflow_end_timestamp
    const margin = Math.min(0.5, (end - start) * 0.1)
    return samples
      .filter((s) => s.unix_timestamp >= start - margin && s.unix_timestamp <= end + margin)
      .map((s) => ({ mode: r.result.data_management, run: r.index + 1, t: s.unix_timestamp - start, above: mb(s.used_bytes - r.baselineBytes) }))
  })
  const ends = runs.map((r) => ({ mode: r.result.data_management, run: r.index + 1, t: r.result.workflow_makespan_s }))
  const colour = { field: 'mode', type: 'nominal', title: 'data management', scale: { domain: ['none', 'default-proxy', 'manual-proxy', 'owned-proxy', 'executor-proxy'] } }
  await writeVegaLiteSvg(file, {
    title: { text: title, subtitle: 'system memory used (/proc/meminfo, sampled by a separate process)' },
    config: { legend: { labelLimit: 0 } },
    vconcat: [
      {
        width: 760,
        height: 220,
        title: 'whole benchmark: shaded from each run\u2019s start to its end',
        layer: [
          { data: { values: spans }, mark: { type: 'rect', opacity: 0.2 }, encoding: { x: { field: 'start', type: 'quantitative', title: 'seconds since the first sample' }, x2: { field: 'end' }, color: colour } },
          { data: { values: spans }, mark: { type: 'rule', strokeWidth: 1 }, encoding: { x: { field: 'start', type: 'quantitative' }, color: colour } },
          { data: { values: timeline }, mark: { type: 'line', color: '#222', strokeWidth: 1.2 }, encoding: { x: { field: 't', type: 'quantitative' }, y: { field: 'used', type: 'quantitative', title: 'used memory (MB)', scale: { zero: false } } } },
        ],
      },
      ...(own.length === 0
        ? []
        : [
            {
              width: 760,
              height: 160,
              title: 'the bench\u2019s own processes and what the store holds in files (not moved by other tenants)',
              layer: [
                { data: { values: spans }, mark: { type: 'rect', opacity: 0.2 }, encoding: { x: { field: 'start', type: 'quantitative', title: 'seconds since the first sample' }, x2: { field: 'end' }, color: colour } },
                { data: { values: own }, mark: { type: 'line', strokeWidth: 1.2 }, encoding: { x: { field: 't', type: 'quantitative' }, y: { field: 'mb', type: 'quantitative', title: 'MB' }, strokeDash: { field: 'series', type: 'nominal', title: null } } },
              ],
            },
          ]),
      {
        // One small chart per mode, so runs of different modes do not hide each other.
        data: { values: [...overlay.map((row) => ({ ...row, kind: 'sample' })), ...ends.map((row) => ({ ...row, kind: 'end' }))] },
        title: 'per mode, each run: memory above its start against time since its start (dashed: its end)',
        facet: { column: { field: 'mode', type: 'nominal', title: null, sort: ['none', 'default-proxy', 'manual-proxy', 'owned-proxy', 'executor-proxy'] } },
        spec: {
          width: 170,
          height: 200,
          layer: [
            { transform: [{ filter: "datum.kind === 'sample'" }], mark: { type: 'line', strokeWidth: 1.2, opacity: 0.85 }, encoding: { x: { field: 't', type: 'quantitative', title: 'seconds since the run started' }, y: { field: 'above', type: 'quantitative', title: 'used memory above start (MB)' }, color: colour, detail: { field: 'run', type: 'nominal' } } },
            { transform: [{ filter: "datum.kind === 'end'" }], mark: { type: 'rule', strokeDash: [4, 3], opacity: 0.6 }, encoding: { x: { field: 't', type: 'quantitative' }, color: colour } },
          ],
        },
      },
    ],
  })
}
