/**
 * bench/proxy-imports: the seed's proxy-imports benchmark suite (../shared/docs/BENCHMARKS.md
 * section 5; docs/proxy-imports.md "Benchmarks"). Methods file-system, local, pack, lazy,
 * lazy-warm (run.ts says what each one does); "nodes" are HTEX blocks of the local provider.
 *
 *   node out/bench/proxy-imports.js scaling      # tasks per node x nodes, a heavy and a small package
 *   node out/bench/proxy-imports.js simulated    # generated packages of N x 1,000 files
 *   node out/bench/proxy-imports.js cloud-burst  # a worker on a host without the package (root)
 *   node out/bench/proxy-imports.js inference    # a model by proxy + mathjs, split over the workers
 *   node out/bench/proxy-imports.js simulated --sizes 15 --nodes 2 --tasks-per-node 8 --warm true
 *   node out/bench/proxy-imports.js plot <run dir>/results.jsonl <other run dir>/results.jsonl --out docs/figures
 *
 * Writes <run-dir>/proxy-imports-<benchmark>-<date>/results.jsonl (one JSON line per
 * configuration: ntasks, cumulative_time, times[], launch_time, end_time, method, module, nodes,
 * sleep, setup, ...) and <benchmark>.svg, prints a table, and appends the lines to
 * bench/results/proxy-imports-<benchmark>.jsonl unless --history false.
 */
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { BenchUsage, formatBytes, parseArgs, parseNumber, usage, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { appendResult, machine } from './lib/results.js'
import { burstHostUp, burstUnavailable, onBurstHost } from './proxy-imports/cloud-burst.js'
import { copyInstalled, makeSimulatedPackage, packageSize, writeAppModule } from './proxy-imports/generate.js'
import { report } from './proxy-imports/report.js'
import { disposeLazyState, importRow, METHODS, newLazyState, packInstall, removeNodeDirs, runConfiguration, runImports, type BenchEnv, type Configuration, type LazyState, type Method } from './proxy-imports/run.js'
import { makeModel, type InferenceResult } from './proxy-imports/task-body.js'

const BENCHMARKS = ['scaling', 'simulated', 'cloud-burst', 'inference'] as const
type Benchmark = (typeof BENCHMARKS)[number]

const NODE_ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()

const FLAGS = {
  methods: { default: ['file-system', 'pack', 'lazy'], list: true, commas: true, choices: METHODS, help: 'methods to compare (cloud-burst: lazy and lazy-warm, and file-system once to show it fails there)' },
  warm: { default: 'false', choices: ['true', 'false'], help: 'also run local (a node-local install) and lazy-warm (lazy again on the warm node cache)' },
  nodes: { default: ['1', '2'], list: true, commas: true, help: 'nodes (HTEX blocks, each its own manager); inference: the first value (default 2)' },
  'tasks-per-node': { default: ['1', '2', '4'], list: true, commas: true, help: 'tasks (= worker processes) per node; inference: the first value (default 2)' },
  modules: { default: ['mathjs', 'ms'], list: true, commas: true, help: 'scaling/cloud-burst: installed packages to import (the project\'s devDependencies mathjs, ms)' },
  sizes: { default: ['1', '4'], list: true, commas: true, help: 'simulated/cloud-burst: generated packages of N x 1,000 files (0.05: 50 files)' },
  'file-bytes': { default: '256', help: 'simulated: bytes per generated file' },
  sleep: { default: '0', help: 'seconds each task sleeps after its import' },
  repeat: { default: '1', help: 'runs of each configuration' },
  'fs-root': { default: '', help: 'where the workflow\'s install is made (the file-system method imports from there; e.g. a network file system mount); default the temporary directory' },
  'network-fs': { default: 'none', choices: ['none', 'auto', 'nfs', 'sshfs'], help: 'make the install in a directory served by a fake host and mounted over the network (bench/lib/network-fs.ts, root), and read it through the mount: file-system then imports over the network' },
  'rtt-ms': { default: '0', help: '--network-fs: round-trip time added on the link, ms' },
  'node-root': { default: NODE_ROOT, help: 'node-local directory for the local copy, the pack method\'s unpacked tar and the lazy node caches' },
  samples: { default: '4000', help: 'inference: input rows, split over all workers' },
  hidden: { default: '256', help: 'inference: hidden units of the model (its size)' },
  'barrier-timeout': { default: '300', help: 'seconds the tasks of a configuration wait for each other to start' },
  'run-dir': { default: 'runs/', help: 'results go to <run-dir>/proxy-imports-<benchmark>-<date>/' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the result lines to bench/results/proxy-imports-<benchmark>.jsonl' },
} satisfies Record<string, FlagSpec>

const SUMMARY = `The seed's proxy-imports benchmarks: ${BENCHMARKS.join(', ')} (first argument).
Each task imports a package by one of the methods: file-system (from the workflow's install),
local (from a copy on a node-local directory), pack (the install packed into one tar before the run
and unpacked by each block's workerInit), lazy (the executor option proxyImports: packed on the
submit side, shipped through a store, unpacked once per node, loaded lazily), lazy-warm (lazy again
with the node caches of the run before). Every task's import is its process's first: one worker
process per task, a fresh executor per configuration.`

function stamp(date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}-${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`
}

const ints = (values: string[], flag: string) => values.map((v) => parseNumber(v, flag, { min: 1, integer: true }))

/** Runs `methods` on one configuration; lazy-warm reuses the state of the lazy run just before it. */
async function eachMethod(env: BenchEnv, methods: readonly Method[], base: Omit<Configuration, 'method'>, run: (config: Configuration, state: LazyState | undefined, record: boolean) => Promise<void>): Promise<void> {
  let state: LazyState | undefined
  try {
    for (const method of methods) {
      if (method === 'lazy' || method === 'lazy-warm') {
        if (method === 'lazy' || !state) {
          if (state) await disposeLazyState(env, state)
          state = newLazyState(env)
          // lazy-warm alone: a cold lazy run first fills the caches, not recorded.
          if (method === 'lazy-warm') await run({ ...base, method: 'lazy' }, state, false)
        }
      }
      await run({ ...base, method }, method === 'lazy' || method === 'lazy-warm' ? state : undefined, true)
    }
  } finally {
    if (state) await disposeLazyState(env, state)
  }
}

async function bench(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h') {
    console.log(usage(`node out/bench/proxy-imports.js {${BENCHMARKS.join('|')}}`, SUMMARY, FLAGS))
    return first === undefined ? 2 : 0
  }
  if (first === 'plot') return replot(rest)
  if (!(BENCHMARKS as readonly string[]).includes(first)) throw new BenchUsage(`unknown benchmark '${first}': one of ${BENCHMARKS.join(', ')}, or plot`)
  const benchmark = first as Benchmark
  const flags = parseArgs(rest, FLAGS)
  if (flags === 'help') {
    console.log(usage(`node out/bench/proxy-imports.js ${benchmark}`, SUMMARY, FLAGS))
    return 0
  }
  let methods = [...new Set(flags.methods)] as Method[]
  if (flags.warm === 'true') methods = [...new Set<Method>([...methods, 'local', 'lazy', 'lazy-warm'])]
  methods.sort((a, b) => METHODS.indexOf(a) - METHODS.indexOf(b))
  const nodes = ints(flags.nodes, '--nodes')
  const perNode = ints(flags['tasks-per-node'], '--tasks-per-node')
  const sizes = flags.sizes.map((v) => Math.max(1, Math.round(parseNumber(v, '--sizes', { min: 0.001 }) * 1000)))
  const sleep = parseNumber(flags.sleep, '--sleep')
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const barrierTimeoutMs = parseNumber(flags['barrier-timeout'], '--barrier-timeout', { min: 1 }) * 1000

  let burst: ReturnType<typeof burstHostUp> | undefined
  if (benchmark === 'cloud-burst') {
    const why = burstUnavailable()
    if (why) {
      console.log(`cloud-burst skipped: ${why} (run it as root on Linux with iproute2)`)
      return 0
    }
  }

  const runDir = resolve(flags['run-dir'], `proxy-imports-${benchmark}-${stamp()}`)
  mkdirSync(runDir, { recursive: true })
  const fsRoot = resolve(flags['fs-root'] || tmpdir())
  const nodeRoot = resolve(flags['node-root'])
  for (const [flag, dir] of [['--fs-root', fsRoot], ['--node-root', nodeRoot]] as const) if (!existsSync(dir)) throw new BenchUsage(`${flag} ${dir}: no such directory`)
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-pi-'))
  onCleanup(() => rmSync(scratch, { recursive: true, force: true }))
  // The executor's own packing (lazy) uses the default pack cache under $XDG_CACHE_HOME: a private
  // one, set before any pack thread starts (threads keep the environment they started with), so
  // the bench neither reads nor fills the user's cache.
  process.env.XDG_CACHE_HOME = join(scratch, 'xdg-cache')
  if (flags['network-fs'] !== 'none' && flags['fs-root'] !== '') throw new BenchUsage('--network-fs makes the install on its own mount: leave out --fs-root')
  if (flags['network-fs'] !== 'none' && benchmark === 'cloud-burst') throw new BenchUsage('cloud-burst hides the install from its worker: --network-fs does not apply')
  // Written here; read (by every method and the tracing) at env.install, the mount with --network-fs.
  // With --network-fs, in a directory of its own that the fake host exports.
  const exported = flags['network-fs'] !== 'none' ? mkdtempSync(join(tmpdir(), 'tsflow-bench-pi-export-')) : undefined
  const install = mkdtempSync(join(exported ?? fsRoot, 'tsflow-bench-pi-install-'))
  onCleanup(() => rmSync(exported ?? install, { recursive: true, force: true }))
  const env: BenchEnv = { scratch, install, nodeRoot, nodePrefix: `tsflow-bench-pi-${process.pid}` }
  onCleanup(() => removeNodeDirs(env))

  // The workflow's install: the packages under test and their app modules.
  const packages: { pkg: string; files?: number }[] = []
  if (benchmark === 'scaling' || benchmark === 'cloud-burst' || benchmark === 'inference') {
    const names = benchmark === 'inference' ? ['mathjs'] : flags.modules
    await copyInstalled(install, names)
    for (const pkg of names) packages.push({ pkg })
  }
  if (benchmark === 'simulated' || benchmark === 'cloud-burst') {
    const fileBytes = parseNumber(flags['file-bytes'], '--file-bytes', { min: 1, integer: true })
    for (const files of sizes) packages.push({ pkg: makeSimulatedPackage(install, files, fileBytes), files })
  }
  for (const { pkg } of packages) writeAppModule(install, pkg)
  const sizeOf = new Map(packages.map(({ pkg }) => [pkg, packageSize(install, pkg)]))
  let fsLabel = flags['fs-root'] ? `--fs-root ${fsRoot}` : `local disk (${fsRoot})`
  if (flags['network-fs'] !== 'none') {
    const mounted = await mountInstall(install, flags['network-fs'], parseNumber(flags['rtt-ms'], '--rtt-ms'))
    env.install = mounted.path
    fsLabel = mounted.label
  }

  if (methods.includes('local') && benchmark !== 'cloud-burst') {
    const local = join(nodeRoot, `${env.nodePrefix}-local`)
    const started = performance.now()
    cpSync(env.install, local, { recursive: true })
    env.localCopyS = (performance.now() - started) / 1000
    env.localInstall = local
  }
  if (methods.includes('pack') && benchmark !== 'cloud-burst') packInstall(env)

  const resultsFile = join(runDir, 'results.jsonl')
  const rows: Record<string, unknown>[] = []
  const record = (row: Record<string, unknown>) => {
    rows.push(row)
    appendFileSync(resultsFile, `${JSON.stringify(row)}\n`)
  }
  console.log(`run directory ${runDir}\ninstall ${env.install} (${fsLabel}); node-local root ${nodeRoot}; methods ${methods.join(', ')}`)
  for (const { pkg } of packages) {
    const size = sizeOf.get(pkg)!
    console.log(`package ${pkg}: ${size.files} files, ${formatBytes(size.bytes)}`)
  }
  if (env.packS !== undefined) console.log(`pack: the install packed into one tar in ${env.packS.toFixed(2)} s`)
  if (env.localCopyS !== undefined) console.log(`local: the install copied to ${env.localInstall} in ${env.localCopyS.toFixed(2)} s`)

  const show = (row: Record<string, unknown>) =>
    console.log(
      `${String(row.method).padEnd(11)} ${String(row.module).padEnd(22)} ${row.nodes} node(s) x ${row.tasks_per_node}: mean import ${Number(row.mean_import).toFixed(3)} s, max ${Number(row.max_import).toFixed(3)} s, ` +
        `makespan ${Number(row.makespan).toFixed(2)} s, setup ${row.setup === null ? '-' : Number(row.setup).toFixed(2)} s`,
    )

  if (benchmark === 'scaling' || benchmark === 'simulated') {
    for (let r = 0; r < repeat; r++) {
      for (const { pkg, files } of packages) {
        for (const n of nodes) {
          for (const t of perNode) {
            await eachMethod(env, methods, { pkg, nodes: n, tasksPerNode: t, sleep, barrierTimeoutMs }, async (config, state, keep) => {
              const ran = await runImports(env, config, state)
              if (!keep) return
              const size = sizeOf.get(pkg)!
              const row = importRow(benchmark, config, ran, { file_system: fsLabel, repetition: r, ...(files !== undefined ? { package_size: files } : {}), package_files: size.files, package_bytes: size.bytes })
              record(row)
              show(row)
            })
          }
        }
      }
    }
  } else if (benchmark === 'inference') {
    // Inference's own defaults: 2 nodes x 2 workers, unless the flags say otherwise.
    const given = (flag: string) => rest.some((arg) => arg === flag || arg.startsWith(`${flag}=`))
    await runInference(env, methods, given('--nodes') ? nodes[0]! : 2, given('--tasks-per-node') ? perNode[0]! : 2, flags, repeat, record)
  } else {
    burst = burstHostUp()
    onCleanup(() => burst!.down())
    const empty = join(scratch, 'empty')
    mkdirSync(empty)
    env.address = burst.bridgeAddress
    const wrap = onBurstHost(burst, join(install, 'node_modules'), empty)
    env.wrapCommand = (command) => wrap(command)
    console.log(`host ${burst.name} (${burst.address}): its view of ${join(install, 'node_modules')} is an empty directory`)
    // --methods file-system alone: only the check that the host cannot import the package.
    const lazyMethods = methods.filter((m) => m === 'lazy' || m === 'lazy-warm')
    if (methods.includes('file-system')) {
      // Once, to show the premise: from its own directory the host cannot import the package.
      const pkg = packages[0]!.pkg
      try {
        await runImports(env, { method: 'file-system', pkg, nodes: 1, tasksPerNode: 1, sleep: 0, barrierTimeoutMs }, undefined)
        console.log(`file-system ${pkg}: imported on ${burst.name}, which should not have it: the package was not hidden`)
        record({ benchmark, method: 'file-system', module: pkg, ok: true })
      } catch (error) {
        const message = (error as Error).message.split('\n')[0]!
        console.log(`file-system ${pkg} on ${burst.name}: fails as expected (${message.slice(0, 160)})`)
        record({ benchmark, method: 'file-system', module: pkg, ok: false, error: message })
      }
    }
    for (let r = 0; r < (lazyMethods.length > 0 ? repeat : 0); r++) {
      for (const { pkg, files } of packages) {
        const probe = join(install, 'node_modules', pkg, 'package.json')
        await eachMethod(env, lazyMethods, { pkg, nodes: 1, tasksPerNode: perNode[0]!, sleep: 0, barrierTimeoutMs }, async (config, state, keep) => {
          const ran = await runImports(env, config, state, probe)
          if (!keep) return
          const size = sizeOf.get(pkg)!
          const hidden = ran.results.every((x) => x.probe_exists === false)
          if (!hidden) throw new Error(`cloud-burst: ${probe} was visible on ${burst!.name}: the package was not hidden`)
          const row = importRow(benchmark, config, ran, {
            repetition: r,
            ok: true,
            host: ran.results[0]!.host,
            installed_on_worker: false,
            ...(files !== undefined ? { package_size: files } : {}),
            package_files: size.files,
            package_bytes: size.bytes,
            round_trip: Math.max(...ran.results.map((x) => x.ended)) / 1000 - ran.launch_time,
          })
          record(row)
          show(row)
        })
      }
    }
  }

  const svg = join(runDir, `${benchmark}.svg`)
  await report(benchmark, rows, svg)
  writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify({ machine: machine(), benchmark, flags, methods, install, nodeRoot, rows: rows.length }, null, 2)}\n`)
  console.log(`results ${resultsFile}\nplot ${svg}`)
  if (flags.history === 'true') {
    let file = ''
    for (const row of rows) file = appendResult(`proxy-imports-${benchmark}`, row)
    if (file) console.log(`lines appended to ${file}`)
  }
  return 0
}

/**
 * --network-fs: serves the directory holding the install from a fake host and mounts it here
 * (bench/lib/network-fs.ts, loaded only then).
 */
async function mountInstall(install: string, kind: string, rttMs: number): Promise<{ path: string; label: string }> {
  const lib = await import('./lib/network-fs.js')
  const why = lib.networkFsUnavailable()
  if (why && kind !== 'nfs') throw new BenchUsage(`--network-fs ${kind}: ${why}`)
  const exportDir = dirname(install)
  const mount = await lib.mountNetworkFs({ exportDir, kind: kind as 'auto' | 'nfs' | 'sshfs', rttMs })
  onCleanup(() => mount.unmount())
  for (const note of mount.notes) console.log(`network fs note: ${note}`)
  return { path: join(mount.mountPoint, basename(install)), label: `${mount.kind} mount ${mount.mountPoint}, rtt +${mount.rttMs} ms${mount.latencyBy ? ` (${mount.latencyBy})` : ''}` }
}

/**
 * `plot FILE... [--out DIR]`: redraws the tables and plots from results.jsonl files (several runs,
 * e.g. one over a network file system and one on local disk, in one figure per benchmark).
 */
async function replot(args: string[]): Promise<number> {
  const outAt = args.indexOf('--out')
  const out = outAt >= 0 ? args[outAt + 1] : undefined
  const files = args.filter((_, i) => outAt < 0 || (i !== outAt && i !== outAt + 1))
  if (files.length === 0 || (outAt >= 0 && !out)) throw new BenchUsage('plot needs results.jsonl files (and --out DIR, default the first file\'s directory)')
  const rows = files.flatMap((file) => {
    if (!existsSync(file)) throw new BenchUsage(`plot: no such file ${file}`)
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
  })
  const dir = resolve(out ?? dirname(files[0]!))
  mkdirSync(dir, { recursive: true })
  for (const benchmark of BENCHMARKS) {
    const mine = rows.filter((row) => row.benchmark === benchmark)
    if (mine.length === 0) continue
    const svg = join(dir, `${benchmark}.svg`)
    console.log(`${benchmark}: ${mine.length} lines`)
    await report(benchmark, mine, svg)
    console.log(`plot ${svg}`)
  }
  return 0
}

async function runInference(env: BenchEnv, methods: readonly Method[], nodes: number, perNode: number, flags: { samples: string; hidden: string; sleep: string; 'barrier-timeout': string }, repeat: number, record: (row: Record<string, unknown>) => void): Promise<void> {
  const samples = parseNumber(flags.samples, '--samples', { min: 1, integer: true })
  const hidden = parseNumber(flags.hidden, '--hidden', { min: 1, integer: true })
  const modelObject = makeModel(64, hidden, 10)
  const modelBytes = Buffer.byteLength(JSON.stringify(modelObject))
  const workers = nodes * perNode
  const { FileConnector, Store } = await import('tsflow/proxy')
  const modelDir = join(env.scratch, 'model-store')
  const modelStore = new Store(`proxy-imports-model-${process.pid}`, new FileConnector({ directory: modelDir }), { cacheSize: 0 })
  onCleanup(() => modelStore.close())
  console.log(`model: a 64-${hidden}-10 perceptron, ${formatBytes(modelBytes)} as JSON, passed by proxy; ${samples} rows over ${workers} workers`)
  for (let r = 0; r < repeat; r++) {
    await eachMethod(env, methods, { pkg: 'mathjs', nodes, tasksPerNode: perNode, sleep: 0, barrierTimeoutMs: 0 }, async (config, state, keep) => {
      const model = await modelStore.proxy(modelObject)
      const ran = await runConfiguration<InferenceResult>(env, config, state, (apps, kernel) =>
        Promise.all(
          Array.from({ length: workers }, (_, index) => {
            const rows = Math.floor(samples / workers) + (index < samples % workers ? 1 : 0)
            return apps.inferenceApp.with({ dfk: kernel })({ index, rows, seed: 1000 + index, ...(config.method === 'pack' ? { packDir: join(env.nodeRoot, `${env.nodePrefix}-pack-{block}`) } : {}) }, model)
          }),
        ),
      )
      await modelStore.evict((await import('tsflow/proxy')).factoryOf(model).key)
      if (!keep) return
      const classified = ran.results.reduce((a, x) => a + x.rows, 0)
      if (classified !== samples) throw new Error(`inference: ${classified} rows classified of ${samples}`)
      const mean = (f: (x: InferenceResult) => number) => ran.results.reduce((a, x) => a + f(x), 0) / ran.results.length
      const row = {
        benchmark: 'inference',
        ntasks: ran.results.length,
        cumulative_time: ran.results.reduce((a, x) => a + x.import_s + x.infer_s, 0),
        times: ran.results.map((x) => x.import_s),
        launch_time: ran.launch_time,
        end_time: ran.end_time,
        method: config.method,
        module: 'mathjs',
        nodes,
        tasks_per_node: perNode,
        sleep: 0,
        setup: ran.setup,
        repetition: r,
        samples,
        model_json_bytes: modelBytes,
        mean_import: mean((x) => x.import_s),
        mean_infer: mean((x) => x.infer_s),
        makespan: ran.end_time - ran.launch_time,
        setup_detail: ran.setup_detail,
      }
      record(row)
      console.log(`${config.method.padEnd(11)} makespan ${row.makespan.toFixed(2)} s, mean import ${row.mean_import.toFixed(3)} s, mean inference ${row.mean_infer.toFixed(3)} s, setup ${row.setup === null ? '-' : row.setup.toFixed(2)} s`)
    })
  }
}

await runBench('proxy-imports', bench, BenchUsage)
