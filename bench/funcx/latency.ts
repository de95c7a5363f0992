/**
 * latency: the round trip of a warm hello-world task. One priming call, then --calls sequential
 * calls, each timed from the call to its result. Targets: `htex` (the local HTEX, direct),
 * `endpoint` (a local endpoint daemon this experiment starts in a private TSFLOW_HOME, reached
 * through an EndpointExecutor), `config` (the --config module's executors, whatever they are).
 * Paper: funcX 73.9 ms median through its cloud service; Parsl HTEX ~1.5 ms locally.
 */
import { writeVegaLiteSvg } from '../lib/vega.js'
import { hello } from './apps.js'
import { ints, loadKernel, round, stats, BenchUsage, type Experiment, type FlagSpec, type Row, type RunContext, type Config } from './common.js'
import { endpointConfig, endpointUnavailable, startLocalEndpoint } from './endpoint.js'

const TARGETS = ['htex', 'endpoint', 'config'] as const

const flags = {
  calls: { default: '2000', help: 'timed calls after the priming call' },
  target: { default: [] as string[], list: true, commas: true, choices: TARGETS, help: 'what to call: htex (direct), endpoint (a local endpoint), config (the --config executors); default htex and endpoint, or config with --config' },
} satisfies Record<string, FlagSpec>

async function measure(ctx: RunContext, target: string, config: Config, calls: number, repetition: number, extra: Row = {}): Promise<Row> {
  const kernel = await loadKernel(config)
  try {
    const primed = await hello('prime')
    if (primed !== 'Hello prime!') throw new Error(`latency: the priming call returned ${JSON.stringify(primed)}`)
    const latencies: number[] = new Array(calls)
    for (let i = 0; i < calls; i++) {
      const started = performance.now()
      await hello('world')
      latencies[i] = performance.now() - started
    }
    const s = stats(latencies)
    ctx.log(`${target.padEnd(9)} ${calls} calls: median ${s.median.toFixed(3)} ms, p95 ${s.p95.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms, max ${s.max.toFixed(2)} ms`)
    return ctx.record({ target, repetition, calls, median_ms: round(s.median, 4), p95_ms: round(s.p95, 4), p99_ms: round(s.p99, 4), mean_ms: round(s.mean, 4), min_ms: round(s.min, 4), max_ms: round(s.max, 4), latencies_ms: latencies.map((x) => round(x, 4)), ...extra }, config)
  } finally {
    await kernel.cleanup()
  }
}

export const latency: Experiment<typeof flags> = {
  name: 'latency',
  summary: `Warm hello-world round trip: one priming call, then --calls sequential calls; median, p95,
p99 and a CDF per target (htex: the local HTEX directly; endpoint: a local endpoint daemon started
in a private TSFLOW_HOME; config: the --config executors). Paper: funcX 73.9 ms median (cloud
service), Parsl HTEX ~1.5 ms locally. tsflow's target: endpoint median <= 1 ms.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    const calls = ints([f.calls], '--calls')[0]!
    const targets = f.target.length > 0 ? [...new Set(f.target)] : ctx.config.file ? ['config'] : ['htex', 'endpoint']
    if (targets.includes('config') && !ctx.config.file) throw new BenchUsage('--target config needs --config FILE')
    for (let r = 0; r < ctx.repeat; r++) {
      for (const target of targets) {
        if (target === 'endpoint') {
          const why = await endpointUnavailable()
          if (why) {
            ctx.log(`endpoint: skipped (${why})`)
            continue
          }
          const endpoint = await startLocalEndpoint(ctx.scratch, { workers: 1 })
          try {
            await measure(ctx, target, await endpointConfig(endpoint, ctx.scratch), calls, r, { endpoint_config: endpoint.config() })
          } finally {
            await endpoint.stop()
          }
        } else {
          // htex: the local default with one worker (calls are sequential); config: as written.
          await measure(ctx, target, target === 'htex' ? await ctx.config.make({ maxWorkersPerNode: 1 }) : await ctx.config.make(), calls, r)
        }
      }
    }
  },
  async plot(rows, svg) {
    // The empirical CDF of each target's latencies (at most ~400 points per line).
    const values: Row[] = []
    for (const target of [...new Set(rows.map((row) => String(row.target)))]) {
      const all = rows.filter((row) => row.target === target).flatMap((row) => row.latencies_ms as number[]).sort((a, b) => a - b)
      const step = Math.max(1, Math.floor(all.length / 400))
      for (let i = 0; i < all.length; i += step) values.push({ target, latency_ms: all[i], fraction: (i + 1) / all.length })
      if (all.length > 0) values.push({ target, latency_ms: all[all.length - 1], fraction: 1 })
    }
    await writeVegaLiteSvg(svg, {
      title: 'Warm hello-world round trip (CDF)',
      width: 520,
      height: 300,
      data: { values },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'latency_ms', type: 'quantitative', title: 'round trip (ms, log)', scale: { type: 'log' } },
        y: { field: 'fraction', type: 'quantitative', title: 'fraction of calls' },
        color: { field: 'target', type: 'nominal' },
      },
    })
  },
  summarize(rows) {
    const figures: Row = {}
    const lines: string[] = []
    for (const target of [...new Set(rows.map((row) => String(row.target)))]) {
      const s = stats(rows.filter((row) => row.target === target).flatMap((row) => row.latencies_ms as number[]))
      figures[`${target}_median_ms`] = round(s.median, 4)
      figures[`${target}_p95_ms`] = round(s.p95, 4)
      figures[`${target}_p99_ms`] = round(s.p99, 4)
      const goal = target === 'endpoint' ? ` (target <= 1 ms: ${s.median <= 1 ? 'met' : 'NOT met'})` : ''
      lines.push(`latency ${target}: ${s.n} calls, median ${s.median.toFixed(3)} ms, p95 ${s.p95.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms${goal}; paper: funcX 73.9 ms, Parsl HTEX ~1.5 ms`)
    }
    return { lines, figures }
  },
}
