/**
 * cold-start: from no running pool to the first result, repeated. htex: load() of a fresh kernel
 * (the interchange, a block, its manager and worker start) and the first call, timed from load()
 * to the result. endpoint: the local endpoint restarted (stopped, then started with the real CLI,
 * whose daemon starts its interchange and block) and the first result through a fresh client (a
 * process of its own, loaded before the start: cold-client.ts), timed from the start command to
 * that result. Paper: funcX 83 ms median (warm container),
 * 3.6 s mean (cold).
 */
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { onCleanup } from '../lib/cleanup.js'
import { hello } from './apps.js'
import { BenchUsage, loadKernel, round, stats, writeDistributionSvg, type Config, type Experiment, type FlagSpec, type Row, type RunContext } from './common.js'
import { endpointConfig, endpointUnavailable, startLocalEndpoint, type LocalEndpoint } from './endpoint.js'

const flags = {
  target: { default: [] as string[], list: true, commas: true, choices: ['htex', 'endpoint', 'config'], help: 'htex (a fresh kernel of the local HTEX), endpoint (a local endpoint restarted), config (fresh kernels of the --config executors); default htex and endpoint, or config with --config' },
} satisfies Record<string, FlagSpec>

/** load() and the first call of a fresh kernel; the parts in ms. */
async function firstResult(config: Config): Promise<{ load_ms: number; first_call_ms: number }> {
  const started = performance.now()
  const kernel = await loadKernel(config)
  try {
    const loaded = performance.now()
    const result = await hello('cold')
    if (result !== 'Hello cold!') throw new Error(`cold-start: the first call returned ${JSON.stringify(result)}`)
    const done = performance.now()
    return { load_ms: loaded - started, first_call_ms: done - loaded }
  } finally {
    await kernel.cleanup()
  }
}

/** The fresh client process (cold-client.ts), loaded and waiting for `go`. */
async function freshClient(endpoint: LocalEndpoint, runDir: string): Promise<{ go(): Promise<{ load_ms: number; first_call_ms: number; done_at: number }> }> {
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'cold-client.js'), endpoint.name, endpoint.home, runDir], { stdio: ['pipe', 'pipe', 'inherit'] })
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const next = async (what: string): Promise<string> => {
    const line = await Promise.race([lines.next(), exited.then((code) => ({ done: true, value: `exit ${code}` }))])
    if (line.done) throw new Error(`cold-start: the client process ended (${line.value ?? 'no output'}) before ${what}`)
    return line.value as string
  }
  const ready = await next('it was ready')
  if (ready !== 'ready') throw new Error(`cold-start: the client process said ${JSON.stringify(ready)} instead of ready`)
  return {
    async go() {
      child.stdin!.write('go\n')
      const parts = JSON.parse(await next('its first result')) as { load_ms: number; first_call_ms: number; done_at: number }
      const code = await exited
      if (code !== 0) throw new Error(`cold-start: the client process exited with ${code}`)
      return parts
    },
  }
}

async function endpointRuns(ctx: RunContext): Promise<void> {
  const why = await endpointUnavailable()
  if (why) {
    ctx.log(`endpoint: skipped (${why})`)
    return
  }
  // Configured and started once (keys made, client allowed), then each run restarts it and a new
  // client process, already loaded and waiting, connects as soon as the start command returns.
  const endpoint: LocalEndpoint = await startLocalEndpoint(ctx.scratch, { workers: 1 })
  const described = ctx.config.describe(await endpointConfig(endpoint, ctx.scratch))
  try {
    for (let r = 0; r < ctx.repeat; r++) {
      await endpoint.stop()
      const client = await freshClient(endpoint, join(ctx.scratch, 'runinfo'))
      const startedAt = performance.timeOrigin + performance.now()
      await endpoint.start()
      const up = performance.timeOrigin + performance.now() - startedAt
      const parts = await client.go()
      const total = parts.done_at - startedAt
      ctx.record({ target: 'endpoint', run: r, ms: round(total, 3), endpoint_start_ms: round(up, 3), client_load_ms: round(parts.load_ms, 3), first_call_ms: round(parts.first_call_ms, 3), endpoint_config: endpoint.config() }, described)
      ctx.log(`endpoint run ${r}: ${total.toFixed(1)} ms (start command ${up.toFixed(1)} ms, client load ${parts.load_ms.toFixed(1)} ms, first call ${parts.first_call_ms.toFixed(1)} ms)`)
    }
  } finally {
    await endpoint.stop()
  }
}

export const coldStart: Experiment<typeof flags> = {
  name: 'cold-start',
  summary: `From no running pool to the first result, --repeat times (default 5): htex, a fresh kernel
(load() starts the interchange, a block, its manager and worker) and its first call; endpoint, a
local endpoint daemon restarted (tsflow endpoint stop, start) and the first result through a fresh
client. A distribution plot. Paper: funcX 83 ms median warm, 3.6 s mean cold. tsflow's target:
<= 0.5 s.`,
  flags,
  defaultRepeat: 5,
  async run(ctx, f) {
    const targets = f.target.length > 0 ? [...new Set(f.target)] : ctx.config.file ? ['config'] : ['htex', 'endpoint']
    if (targets.includes('config') && !ctx.config.file) throw new BenchUsage('--target config needs --config FILE')
    for (const target of targets) {
      if (target === 'endpoint') {
        await endpointRuns(ctx)
        continue
      }
      for (let r = 0; r < ctx.repeat; r++) {
        const config = target === 'htex' ? await ctx.config.make({ maxWorkersPerNode: 1 }) : await ctx.config.make()
        const parts = await firstResult(config)
        const total = parts.load_ms + parts.first_call_ms
        ctx.record({ target, run: r, ms: round(total, 3), load_ms: round(parts.load_ms, 3), first_call_ms: round(parts.first_call_ms, 3) }, config)
        ctx.log(`${target} run ${r}: ${total.toFixed(1)} ms (load ${parts.load_ms.toFixed(1)} ms, first call ${parts.first_call_ms.toFixed(1)} ms)`)
      }
    }
  },
  async plot(rows, svg) {
    await writeDistributionSvg(svg, 'Cold start: no running pool to the first result', rows.map((row) => ({ group: String(row.target), value: Number(row.ms) / 1000 })), 'seconds')
  },
  summarize(rows) {
    const lines: string[] = []
    const figures: Row = {}
    for (const target of [...new Set(rows.map((row) => String(row.target)))]) {
      const s = stats(rows.filter((row) => row.target === target).map((row) => Number(row.ms)))
      figures[`${target}_median_s`] = round(s.median / 1000, 4)
      figures[`${target}_mean_s`] = round(s.mean / 1000, 4)
      figures[`${target}_max_s`] = round(s.max / 1000, 4)
      lines.push(`cold-start ${target}: ${s.n} runs, median ${(s.median / 1000).toFixed(3)} s, mean ${(s.mean / 1000).toFixed(3)} s, max ${(s.max / 1000).toFixed(3)} s (target <= 0.5 s: ${s.median <= 500 ? 'met' : 'NOT met'} by the median); paper: funcX 83 ms median warm, 3.6 s mean cold`)
    }
    return { lines, figures }
  },
}
