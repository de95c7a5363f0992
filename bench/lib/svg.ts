import { writeFileSync } from 'node:fs'

export interface BarGroup {
  /** label of the group (a run, a configuration) */
  label: string
  bars: { name: string; value: number }[]
}

const COLOURS = ['#4269d0', '#efb118', '#ff725c', '#6cc5b0', '#3ca951', '#ff8ab7', '#a463f2', '#97bbf5']

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
}

/**
 * A horizontal grouped bar chart as a standalone SVG file: one block of bars per group, one
 * colour per bar name (same name, same colour in every group), the value printed at each bar.
 */
export function writeBarChart(file: string, title: string, unit: string, groups: BarGroup[]): void {
  const names = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.name)))]
  const max = Math.max(1e-9, ...groups.flatMap((g) => g.bars.map((b) => b.value)))
  const left = 230
  const plotWidth = 460
  const barHeight = 16
  const gap = 14
  let y = 46
  const parts: string[] = []
  for (const group of groups) {
    parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${escape(group.label)}</text>`)
    y += 18
    for (const bar of group.bars) {
      const width = Math.max(1, (bar.value / max) * plotWidth)
      const colour = COLOURS[names.indexOf(bar.name) % COLOURS.length]
      parts.push(`<text x="${left - 6}" y="${y + 12}" text-anchor="end">${escape(bar.name)}</text>`)
      parts.push(`<rect x="${left}" y="${y}" width="${width.toFixed(1)}" height="${barHeight}" fill="${colour}"/>`)
      const shown = bar.value >= 100 ? Math.round(bar.value).toLocaleString('en-US') : bar.value.toFixed(1)
      parts.push(`<text x="${left + width + 4}" y="${y + 12}">${shown}</text>`)
      y += barHeight + 3
    }
    y += gap
  }
  const height = y + 10
  const width = left + plotWidth + 110
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
    `<text x="8" y="36" fill="#555">${escape(unit)}</text>`,
    ...parts,
    '</svg>',
  ].join('\n')
  writeFileSync(file, `${svg}\n`)
}
