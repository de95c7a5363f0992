/**
 * instantiation: start a worker runtime and have it report the tsflow version, bare (node running
 * `tsflow-manager --version`, the entry a block starts) and inside a container built here from
 * the files that runtime loads (image.ts). Each run is timed from spawn to exit.
 * Paper: Docker 1.8-1.9 s, Singularity 1.2 s (container, load Python and Parsl, print the version).
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { buildRootfs, ENTRY_ARGS, EXPECTED, packageRoot, prepareRuntime } from './image.js'
import { BenchUsage, ints, round, stats, writeDistributionSvg, type Experiment, type FlagSpec, type Row } from './common.js'

const run = promisify(execFile)

const flags = {
  runs: { default: '20', help: 'runs of each mode (the paper: 100)' },
  modes: { default: ['bare', 'container'], list: true, commas: true, choices: ['bare', 'container'], help: 'bare: node on this machine; container: in the image built here' },
  runtime: { default: 'auto', choices: ['auto', 'podman', 'bwrap', 'unshare-chroot'], help: 'container runtime (auto: the first of podman, bwrap, unshare-chroot that works)' },
} satisfies Record<string, FlagSpec>

async function timed(command: string[], cwd: string): Promise<number> {
  const started = performance.now()
  const { stdout } = await run(command[0]!, command.slice(1), { cwd, timeout: 120_000 })
  const ms = performance.now() - started
  if (stdout.trim() !== EXPECTED) throw new Error(`instantiation: ${command.join(' ')} printed ${JSON.stringify(stdout.trim())}, expected ${EXPECTED}`)
  return ms
}

export const instantiation: Experiment<typeof flags> = {
  name: 'instantiation',
  summary: `Start a worker runtime and report the tsflow version (node ${ENTRY_ARGS.join(' ')}), --runs times,
bare and inside a container whose image is built here from the files that runtime loads (no
registry needed; the runtime is the first of podman, bwrap, unshare-chroot that works, recorded in
every line). Timed from spawn to exit; a distribution plot. --config does not apply (no executor
runs). Paper: Docker 1.8-1.9 s, Singularity 1.2 s.`,
  flags,
  defaultRepeat: 1,
  async run(ctx, f) {
    if (ctx.config.file) ctx.log('instantiation: --config is ignored (this experiment starts the worker runtime itself, no executor)')
    const runs = ints([f.runs], '--runs')[0]!
    const modes = [...new Set(f.modes)]
    const root = packageRoot()
    const bare = [process.execPath, ...ENTRY_ARGS]
    let container: string[] | undefined
    let runtimeInfo: Row = {}
    if (modes.includes('container')) {
      const built = buildRootfs(ctx.scratch)
      ctx.log(`image: ${built.files} files, ${(built.bytes / 1e6).toFixed(1)} MB (node, its libraries, the traced tsflow runtime)`)
      const { runtime, notes } = await prepareRuntime(ctx.scratch, built.rootfs, f.runtime === 'auto' ? undefined : f.runtime)
      for (const note of notes) ctx.log(`container runtime passed over: ${note}`)
      if (!runtime) throw new BenchUsage(`instantiation: no container runtime works here (${notes.join('; ')}); install podman or bubblewrap, or run --modes bare`)
      ctx.log(`container runtime: ${runtime.name} (${runtime.version}); image: ${runtime.image}`)
      container = runtime.command
      runtimeInfo = { runtime: runtime.name, runtime_version: runtime.version, image: runtime.image, image_files: built.files, image_bytes: built.bytes, passed_over: notes }
    }
    // Runs alternate between the modes, so a busy moment of a shared machine hits both.
    const config = { executors: [] }
    for (let r = 0; r < ctx.repeat * runs; r++) {
      for (const mode of modes) {
        const command = mode === 'bare' ? bare : container!
        const ms = await timed(command, root)
        ctx.record({ mode, run: r, ms: round(ms, 3), command: command.join(' '), ...(mode === 'container' ? runtimeInfo : {}) }, [{ type: 'none', note: 'no executor: the worker runtime is started directly' }])
      }
    }
    void config
  },
  async plot(rows, svg) {
    const values = rows.map((row) => ({ group: row.mode === 'container' ? `container (${row.runtime})` : 'bare', value: Number(row.ms) / 1000 }))
    await writeDistributionSvg(svg, 'Worker runtime instantiation (start, print the version, exit)', values, 'seconds')
  },
  summarize(rows) {
    const lines: string[] = []
    const figures: Row = {}
    for (const mode of ['bare', 'container']) {
      const mine = rows.filter((row) => row.mode === mode)
      if (mine.length === 0) continue
      const s = stats(mine.map((row) => Number(row.ms)))
      const runtime = mode === 'container' ? String(mine[0]!.runtime) : undefined
      figures[`${mode}_median_s`] = round(s.median / 1000, 4)
      figures[`${mode}_mean_s`] = round(s.mean / 1000, 4)
      if (runtime) figures.runtime = runtime
      lines.push(`instantiation ${mode}${runtime ? ` (${runtime})` : ''}: ${s.n} runs, median ${(s.median / 1000).toFixed(3)} s, mean ${(s.mean / 1000).toFixed(3)} s, p95 ${(s.p95 / 1000).toFixed(3)} s; paper: Docker 1.8-1.9 s, Singularity 1.2 s`)
    }
    return { lines, figures }
  },
}
