/**
 * bench/producer-consumer: the three producer-consumer programs of issue 11
 * (examples/producer-consumer/{futures,filesystem,ddict}.ts; seed 004, ../shared/docs/BENCHMARKS.md
 * section 4) over data sizes and node counts, as the seed's homework table asks.
 *
 *   npm run bench:producer-consumer                          # 0.16 0.62 2 GB, 1 and 2 nodes
 *   node out/bench/producer-consumer.js --sizes 0.62 --nodes 1 --repeat 3
 *   node out/bench/producer-consumer.js --num-sims 2 --grid-size 64 --nodes 1   # seconds
 *
 * A size in GB (2^30 bytes, as the seed prints it) becomes --num-sims = round(GB x 2^30 /
 * (grid^2 x 10 x 8)) at --grid-size (0.62 -> 32 at 512). 1 node is each program's embedded local
 * default; 2 nodes is an HTEX whose two blocks run in two fake hosts (network namespaces on a
 * bridge, root only; bench/producer-consumer/netns-config.ts), with the DDict's shards on the same
 * hosts. The file-system program runs twice: `filesystem` with its data on the local disk, and
 * `filesystem-netfs` with `--dir` on a network file system (bench/lib/network-fs.ts: NFS or sshfs
 * served by a fake host, mounted read-write once per bench run; root only, else skipped with the
 * reason), as the seed's ran on a cluster's shared Lustre. How to run, every flag and output:
 * bench/producer-consumer/README.md.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TSFLOW_VERSION } from 'tsflow'
import { BenchUsage, parseArgs, parseNumber, usage, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { appendResult, machine, RESULTS_DIR } from './lib/results.js'
import { mountNetworkFs, NetworkFsUnavailable, networkFsUnavailable, type NetworkFs } from './lib/network-fs.js'
import { hostsUnavailable, hostsUp } from './producer-consumer/hosts.js'
import { checkRules, CSV_COLUMNS, csvLine, gbText, groups, implementationLabels, markdownTable, plot, type RunRow } from './producer-consumer/report.js'
import { parseProgramOutput, programOf, runProgram, VARIANTS } from './producer-consumer/run.js'

const here = dirname(fileURLToPath(import.meta.url))
/** out/ of the project (this file is out/bench/producer-consumer.js once built) */
const OUT_ROOT = join(here, '..')
const STEPS = 10

const FLAGS = {
  sizes: { default: ['0.16', '0.62', '2'], list: true, commas: true, help: 'training data sizes in GB (2^30 bytes), each mapped to --num-sims at --grid-size' },
  'num-sims': { default: [], list: true, commas: true, help: 'simulation counts to run instead of --sizes (e.g. tiny runs: --num-sims 2 --grid-size 64)' },
  'grid-size': { default: '512', help: 'grid points per side (the seed: 512)' },
  nodes: { default: ['1', '2'], list: true, commas: true, choices: ['1', '2'], help: '1: the local default; 2: HTEX on two fake hosts (network namespaces; root only, else skipped with the reason)' },
  variants: { default: [...VARIANTS], list: true, commas: true, choices: VARIANTS, help: 'programs to run (filesystem-netfs: filesystem.js with its data on a network file system; root only)' },
  repeat: { default: '1', help: 'runs of each variant, node count and size (the table shows the means)' },
  workers: { default: '', help: 'trainers per run (the programs\' --workers; default: one per worker)' },
  'workers-per-node': { default: '1', help: 'HTEX workers per fake host at --nodes 2' },
  'managers-per-node': { default: '1', help: 'DDict shards per fake host at --nodes 2' },
  'ddict-on': { default: 'hosts', choices: ['hosts', 'workflow'], help: "where the DDict's shards run at --nodes 2: on the fake hosts (through a provider), or on the workflow's side of the bridge" },
  timeout: { default: '1800', help: 'seconds one run may take before it is stopped (and counted as failed)' },
  programs: { default: '', help: 'directory of the built programs (default: out/examples/producer-consumer of this build)' },
  out: { default: '', help: 'output directory (default bench/results/producer-consumer/<UTC stamp>/)' },
  table: { default: '', help: 'where the markdown table goes too (default bench/results/producer-consumer-table.md; "none": only <out>/table.md)' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the summary line to bench/results/producer-consumer.jsonl' },
} satisfies Record<string, FlagSpec>

const SUMMARY = `Runs the producer-consumer programs (data through futures, the file system, a DDict) over
data sizes and node counts; writes results.csv, results.jsonl, producer-consumer.svg and the
seed's table (table.md), and checks issue 11's figures (met / not met / not measured).`

const stampNow = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')

interface Plan {
  numSims: number
  /** as asked (--sizes), or computed from --num-sims */
  gb: number
}

function plans(flags: { sizes: string[]; 'num-sims': string[] }, grid: number): Plan[] {
  const perSim = grid * grid * STEPS * 8
  if (flags['num-sims'].length > 0) return flags['num-sims'].map((n) => parseNumber(n, '--num-sims', { min: 1, integer: true })).map((numSims) => ({ numSims, gb: (numSims * perSim) / 2 ** 30 }))
  return flags.sizes.map((text) => {
    const gb = parseNumber(text, '--sizes', { min: 0 })
    const numSims = Math.round((gb * 2 ** 30) / perSim)
    if (numSims < 1) throw new BenchUsage(`--sizes ${text}: less than one simulation at --grid-size ${grid} (${gbText(perSim / 2 ** 30)} GB each); give a bigger size or --num-sims`)
    return { numSims, gb }
  })
}

async function bench(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, FLAGS)
  if (flags === 'help') {
    console.log(usage('node out/bench/producer-consumer.js', SUMMARY, FLAGS))
    return 0
  }
  const grid = parseNumber(flags['grid-size'], '--grid-size', { min: 3, integer: true })
  const sizes = plans(flags, grid)
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const timeoutMs = parseNumber(flags.timeout, '--timeout', { min: 1 }) * 1000
  const workersPerNode = parseNumber(flags['workers-per-node'], '--workers-per-node', { min: 1, integer: true })
  const managersPerNode = parseNumber(flags['managers-per-node'], '--managers-per-node', { min: 1, integer: true })
  if (flags.workers) parseNumber(flags.workers, '--workers', { min: 1, integer: true })
  const programs = resolve(flags.programs || join(OUT_ROOT, 'examples', 'producer-consumer'))
  const variants = flags.variants.filter((v, i, all) => all.indexOf(v) === i)
  const nodeCounts = [...new Set(flags.nodes.map(Number))].sort()

  const out = resolve(flags.out || join(RESULTS_DIR, 'producer-consumer', stampNow()))
  mkdirSync(join(out, 'logs'), { recursive: true })
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-pc-'))
  onCleanup(() => rmSync(scratch, { recursive: true, force: true }))
  const host = machine()
  const csv = join(out, 'results.csv')
  const jsonl = join(out, 'results.jsonl')
  writeFileSync(csv, `${CSV_COLUMNS.join(',')}\n`)
  console.log(`producer-consumer: output ${out}; programs ${programs}; ${host.cores} cores (load average ${loadavg()[0]!.toFixed(2)}), node ${host.node}, tsflow ${TSFLOW_VERSION}, commit ${host.commit}`)
  console.log(`sizes: ${sizes.map((s) => `${gbText(s.gb)} GB = ${s.numSims} simulations`).join(', ')} at grid ${grid}; nodes ${nodeCounts.join(', ')}; variants ${variants.join(', ')}; ${repeat} run(s) each`)

  const missing = variants.filter((v) => !existsSync(join(programs, `${programOf(v)}.js`)))
  for (const v of missing) console.log(`${v}: skipped, ${join(programs, `${programOf(v)}.js`)} is not built (examples/producer-consumer/${programOf(v)}.ts; npm run build:ts)`)
  let runnable = variants.filter((v) => !missing.includes(v))

  const rows: RunRow[] = []
  const failures: string[] = []
  const skipped: string[] = missing.map((v) => `${v}: not built`)

  // One network file system for the whole run, mounted read-write with no client page cache, so
  // each trainer's reads cross the link as between a cluster's nodes (bench/lib/network-fs.ts).
  // mountNetworkFs registers its unmount (exit, signals, bench end) before it mounts anything.
  let netfs: NetworkFs | undefined
  if (runnable.includes('filesystem-netfs')) {
    const cannot = (why: string) => {
      const line = `filesystem-netfs: skipped: no network file system can be mounted here: ${why}`
      console.log(line)
      skipped.push(line)
      runnable = runnable.filter((v) => v !== 'filesystem-netfs')
    }
    const why = networkFsUnavailable()
    if (why) cannot(`sshfs ${why} (root, FUSE, sshfs and openssh-server are needed; or the kernel's NFS)`)
    else {
      const exportDir = join(scratch, 'netfs-export')
      mkdirSync(exportDir)
      try {
        netfs = await mountNetworkFs({ exportDir, readWrite: true })
        console.log(`filesystem-netfs: ${netfs.kind} served by fake host ${netfs.server.name} (${netfs.server.address}) from ${exportDir}, mounted read-write at ${netfs.mountPoint} (${netfs.mountOptions})${netfs.notes.length ? `; ${netfs.notes.join('; ')}` : ''}`)
      } catch (error) {
        if (!(error instanceof NetworkFsUnavailable)) throw error
        cannot(error.message)
      }
    }
  }
  const labels = implementationLabels(netfs?.kind)
  for (const nodes of nodeCounts) {
    let config: { file: string; env: Record<string, string> } | undefined
    if (nodes === 2) {
      const why = hostsUnavailable()
      if (why) {
        const line = `2 nodes: skipped: the two fake hosts (network namespaces) cannot be made here: it ${why}; run as root on Linux with iproute2, or on a real cluster with --nodes 1 and a program's own --config`
        console.log(line)
        skipped.push(line)
        continue
      }
      const prefix = `pc${process.pid % 100000}`
      const subnet = `10.243.${process.pid % 250}`
      let down: (() => void) | undefined
      onCleanup(() => down?.())
      const hosts = hostsUp(prefix, 2, subnet)
      down = hosts.down
      config = {
        file: join(here, 'producer-consumer', 'netns-config.js'),
        env: { TSFLOW_PC_HOSTS: hosts.names.join(','), TSFLOW_PC_ADDRESS: hosts.rootAddress, TSFLOW_PC_WORKERS: String(workersPerNode), TSFLOW_PC_MANAGERS: String(managersPerNode), TSFLOW_PC_DDICT_ON: flags['ddict-on'] },
      }
      console.log(`2 nodes: fake hosts ${hosts.names.map((n, i) => `${n} (${hosts.addresses[i]})`).join(', ')}, interchange at ${hosts.rootAddress}; ${workersPerNode} worker(s) per host; DDict shards ${flags['ddict-on'] === 'hosts' ? `on the hosts (${managersPerNode} per host)` : 'on the workflow side'}`)
    }
    for (const size of sizes) {
      for (let repetition = 1; repetition <= repeat; repetition++) {
        for (const variant of runnable) {
          const name = `${variant}-n${nodes}-s${size.numSims}-g${grid}-r${repetition}`
          const dir = join(scratch, name)
          mkdirSync(dir, { recursive: true })
          const args = [
            '--num-sims', String(size.numSims), '--grid-size', String(grid), '--out', join(dir, 'out'),
            ...(variant === 'filesystem-netfs' ? ['--dir', join(netfs!.mountPoint, name)] : []),
            ...(flags.workers ? ['--workers', flags.workers] : []),
            ...(config ? ['--config', config.file] : []),
          ]
          const logFile = join(out, 'logs', `${name}.log`)
          try {
            const stdout = await runProgram({ program: join(programs, `${programOf(variant)}.js`), args, env: config?.env ?? {}, cwd: dir, timeoutMs, logFile })
            const result = parseProgramOutput(stdout, programOf(variant))
            const row: RunRow = {
              variant,
              nodes,
              dataGB: ((result.numSims ?? size.numSims) * (result.gridSize ?? grid) ** 2 * STEPS * 8) / 2 ** 30,
              numSims: result.numSims ?? size.numSims,
              gridSize: result.gridSize ?? grid,
              repetition,
              workers: result.workers,
              simSeconds: result.simSeconds,
              simIOSeconds: result.simIOSeconds,
              trainSeconds: result.trainSeconds,
              trainIOSeconds: result.trainIOSeconds,
            }
            if (result.nodes !== null && result.nodes !== nodes) console.log(`  note: ${name} reports ${result.nodes} node(s) (its managers' distinct hosts)`)
            rows.push(row)
            appendFileSync(csv, `${csvLine(row)}\n`)
            appendFileSync(jsonl, `${JSON.stringify({ bench: 'producer-consumer', at: new Date().toISOString(), machine: host, loadavg: Number(loadavg()[0]!.toFixed(2)), tsflow: TSFLOW_VERSION, ...row, ...(variant === 'filesystem-netfs' ? { networkFs: { kind: netfs!.kind, options: netfs!.mountOptions, rttMs: netfs!.rttMs } } : {}), parsedFrom: result.parsedFrom, result: result.record })}\n`)
            console.log(`  ${variant.padEnd(16)} nodes ${nodes}  ${gbText(row.dataGB).padStart(6)} GB  run ${repetition}: simulation ${row.simSeconds.toFixed(2)} s (IO ${row.simIOSeconds?.toFixed(3) ?? 'NA'}), training ${row.trainSeconds.toFixed(2)} s (IO ${row.trainIOSeconds?.toFixed(3) ?? 'NA'})`)
          } catch (error) {
            const message = `${name}: ${(error as Error).message}`
            failures.push(message)
            console.log(`  FAILED ${message}`)
          } finally {
            rmSync(dir, { recursive: true, force: true })
          }
        }
      }
    }
  }

  const all = groups(rows, variants)
  const table = markdownTable(all, labels)
  const rules = checkRules(all)
  const ruleLines = rules.map((r) => `- ${r.status === 'met' ? 'met' : r.status}: ${r.rule}: ${r.detail}`)
  const markdown = [
    `Producer-consumer (issue 11), ${new Date().toISOString().slice(0, 10)}: ${host.cores} cores (${host.cpuModel}), ${host.memoryGiB} GiB, node ${host.node}, tsflow ${TSFLOW_VERSION} (${host.commit}); grid ${grid}, mean of ${repeat} run(s); IO is the mean per task.`,
    ...(netfs ? ['', `${labels['filesystem-netfs']}: filesystem.js with --dir on ${netfs.kind} from a fake host (network namespace) on this machine, mounted read-write with \`${netfs.mountOptions}\`${netfs.kind === 'sshfs' ? ' (direct_io: no client page cache, every read crosses the link)' : ''}; the local-disk row reads from the page cache.`] : []),
    '',
    table,
    '',
    'Issue 11 figures:',
    '',
    ...ruleLines,
    ...(skipped.length || failures.length ? ['', ...skipped.map((s) => `- skipped: ${s}`), ...failures.map((f) => `- failed: ${f.split('\n')[0]}`)] : []),
    '',
  ].join('\n')
  writeFileSync(join(out, 'table.md'), markdown)
  const tableFile = flags.table === 'none' ? undefined : resolve(flags.table || join(RESULTS_DIR, 'producer-consumer-table.md'))
  if (tableFile) {
    mkdirSync(dirname(tableFile), { recursive: true })
    writeFileSync(tableFile, markdown)
  }
  const svg = join(out, 'producer-consumer.svg')
  if (all.length > 0) await plot(all, svg, labels)
  console.log(`\n${table}\n\nIssue 11 figures:\n${ruleLines.join('\n')}`)
  console.log(`\nresults ${csv}\nruns ${jsonl}\ntable ${join(out, 'table.md')}${tableFile ? ` and ${tableFile}` : ''}${all.length ? `\nplot ${svg}` : ''}\nlogs ${join(out, 'logs')}`)
  if (flags.history !== 'false' && rows.length > 0) {
    const history = appendResult('producer-consumer', { tsflow: TSFLOW_VERSION, loadavg: Number(loadavg()[0]!.toFixed(2)), out, grid, repeat, groups: all, rules, failures: failures.length })
    console.log(`summary appended to ${history}`)
  }
  if (failures.length) console.log(`${failures.length} run(s) failed (above; logs in ${join(out, 'logs')})`)
  return failures.length ? 1 : 0
}

await runBench('producer-consumer', bench, BenchUsage)
