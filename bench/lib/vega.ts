import { writeFileSync } from 'node:fs'

/**
 * Renders a vega-lite spec to a standalone SVG file (compiled to vega, rendered headless in this
 * process, as `tsflow-perf compare` does). vega is loaded only when a plot is drawn.
 */
export async function writeVegaLiteSvg(file: string, spec: Record<string, unknown>): Promise<void> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')])
  const compiled = vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white', ...spec } as unknown as Parameters<typeof vegaLite.compile>[0]).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  try {
    writeFileSync(file, await view.toSVG())
  } finally {
    view.finalize()
  }
}
