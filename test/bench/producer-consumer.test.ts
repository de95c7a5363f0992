// Smoke test of bench/producer-consumer (the compiled bench in out/): the three programs at a tiny
// size (2 simulations on a 64 x 64 grid: seconds), the file-system one twice (local disk, and a
// network file system the bench mounts: root, FUSE, sshfs and sshd; else skipped with the reason),
// the CSV, the seed-shaped table, the plot, the figure rules; 2 nodes on fake hosts when this
// machine can make them. No mount, fake host or process is left after a run.
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { isMountPoint } from '../../bench/lib/network-fs.js'
import { redisMissing } from '../helpers/redis.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BENCH = join(root, 'out/bench/producer-consumer.js')
// The programs of this build (TSFLOW_PC_PROGRAMS: another build's, e.g. while they are written).
const PROGRAMS = process.env.TSFLOW_PC_PROGRAMS ?? join(root, 'out/examples/producer-consumer')
const COLUMNS = 'variant,nodes,data_gb,num_sims,grid_size,repetition,workers,sim_s,sim_io_s,train_s,train_io_s'
const HEADER = '| Implementation | Number of Nodes | Training Data Size (GB) | Simulation Run / IO Time (sec) | Training Run / IO Time (sec) |'
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-pc-test-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const notBuilt = ['futures', 'filesystem', 'ddict'].filter((v) => !existsSync(join(PROGRAMS, `${v}.js`)))
const programsMissing = notBuilt.length ? `the producer-consumer programs ${notBuilt.join(', ')} are not in this build (${PROGRAMS}; examples/producer-consumer/*.ts)` : undefined
const skip = programsMissing ?? redisMissing()

async function bench(args: string[]): Promise<{ stdout: string; out: string }> {
  const out = join(scratch, `run-${Math.random().toString(36).slice(2)}`)
  const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--history', 'false', '--out', out, '--table', join(out, 'copy.md'), '--programs', PROGRAMS, '--num-sims', '2', '--grid-size', '64', '--timeout', '50', ...args], { timeout: 120_000 })
  return { stdout, out }
}

/**
 * The network file system's variant: mounted (its line names the kind and the mount point, and the
 * mount is gone after the bench) or skipped with the reason. Returns the kind, or undefined.
 */
function checkNetworkFs(t: Test, stdout: string): string | undefined {
  const skipped = /^filesystem-netfs: skipped: no network file system can be mounted here: (.+)$/m.exec(stdout)
  if (skipped) {
    t.comment(`filesystem-netfs skipped: ${skipped[1]}`)
    t.ok(skipped[1]!.length > 10, 'the reason is printed')
    return undefined
  }
  const mounted = /^filesystem-netfs: (sshfs|nfs) served by fake host (\S+) \([\d.]+\) from \S+, mounted read-write at (\S+) \((.*?)\)/m.exec(stdout)
  t.ok(mounted, 'the network file system is mounted once, read-write, and described')
  if (!mounted) return undefined
  const [, kind, host, mountPoint, options] = mounted
  if (kind === 'sshfs') t.match(options, /(^|,)rw,direct_io(,|$)/, 'no client page cache: reads cross the link')
  t.notOk(isMountPoint(mountPoint!), 'unmounted after the bench')
  t.notOk(existsSync(mountPoint!), 'its mount point removed')
  t.notMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`^${host}\\b`, 'm'), 'the file server host is gone')
  t.notOk(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(mountPoint!), 'no sshfs or sshd left')
  return kind
}

function checkOutputs(t: Test, out: string, nodes: number, networkFs: string | undefined): void {
  const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n')
  t.equal(csv[0], COLUMNS)
  const rows = csv.slice(1).map((line) => line.split(','))
  const variants = networkFs ? ['futures', 'filesystem', 'filesystem-netfs', 'ddict'] : ['futures', 'filesystem', 'ddict']
  t.same(rows.map((r) => r[0]), variants, 'one run per variant')
  for (const r of rows) {
    t.same([r[1], r[3], r[4], r[5]], [String(nodes), '2', '64', '1'], `${r[0]}: nodes, simulations, grid, repetition`)
    t.ok(Number(r[2]) > 0 && Number(r[7]) > 0 && Number(r[9]) > 0, `${r[0]}: data size and phase times`)
    t.equal(r[8] === '' && r[10] === '', r[0] === 'futures', `${r[0]}: IO times ${r[0] === 'futures' ? 'NA' : 'measured'}`)
  }
  const table = readFileSync(join(out, 'table.md'), 'utf8')
  t.equal(readFileSync(join(out, 'copy.md'), 'utf8'), table, '--table gets the same')
  const lines = table.split('\n')
  const at = lines.indexOf(HEADER)
  t.ok(at >= 0, "the seed's header")
  t.match(lines[at + 2], new RegExp(`^\\| tsflow \\+ futures \\| ${nodes} \\| 0\\.00061 \\| [\\d.]+ / NA \\| [\\d.]+ / NA \\|$`))
  const measured = '[\\d.]+ / [\\d.]+ \\| [\\d.]+ / [\\d.]+'
  t.match(lines[at + 3], new RegExp(`^\\| tsflow \\+ file system \\(local disk\\) \\| ${nodes} \\| 0\\.00061 \\| ${measured} \\|$`))
  let next = at + 4
  if (networkFs) t.match(lines[next++], new RegExp(`^\\| tsflow \\+ file system \\(network: ${networkFs}\\) \\| ${nodes} \\| 0\\.00061 \\| ${measured} \\|$`))
  t.match(lines[next++], new RegExp(`^\\| tsflow \\+ DDict \\| ${nodes} \\| 0\\.00061 \\| ${measured} \\|$`))
  t.equal(lines[next], '', `${variants.length} rows`)
  if (networkFs) {
    t.match(table, /- not measured: 1 node, 0\.62 GB: futures training <= 1\.5x file-system training \(network fs\)/, 'the rules against the network file system too')
    const netRuns = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { variant: string; networkFs?: { kind: string }; result: { dataDir?: string } })
    const net = netRuns.find((r) => r.variant === 'filesystem-netfs')
    t.equal(net?.networkFs?.kind, networkFs, 'the run records its file system')
    const local = netRuns.find((r) => r.variant === 'filesystem')
    if (net?.result.dataDir !== undefined) t.not(dirname(net.result.dataDir), dirname(local?.result.dataDir ?? ''), 'the two file-system runs wrote to different directories')
  }
  t.match(table, /- not measured: 1 node, 0\.62 GB: futures training <= 1\.5x file-system training/)
  t.match(table, /- not measured: 2 GB: DDict training faster than both other variants/)
  t.match(readFileSync(join(out, 'producer-consumer.svg'), 'utf8'), /^<svg/)
  const jsonl = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(jsonl.every((l) => l.parsedFrom === 'RESULT' && typeof l.loadavg === 'number' && (l.machine as { cores: number }).cores > 0), 'every run from its RESULT line, with the machine')
}

t.test('1 node: the three programs, CSV, table, plot, rules', { skip: skip ?? false }, async (t) => {
  const { stdout, out } = await bench(['--nodes', '1'])
  checkOutputs(t, out, 1, checkNetworkFs(t, stdout))
  t.match(stdout, /Issue 11 figures:/)
})

t.test('2 nodes: HTEX (and the DDict shards) on two fake hosts', { skip: skip ?? false }, async (t) => {
  const { stdout, out } = await bench(['--nodes', '2'])
  if (/2 nodes: skipped: /.test(stdout)) {
    t.match(stdout, /the two fake hosts \(network namespaces\) cannot be made here: it /, 'the reason is printed')
    return
  }
  t.match(stdout, /2 nodes: fake hosts pc\d+1 \([\d.]+\), pc\d+2/)
  checkOutputs(t, out, 2, checkNetworkFs(t, stdout))
  const runs = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { variant: string; result: { nodes?: number; ddict?: { nodes?: number } } })
  t.ok(runs.every((r) => r.result.nodes === 2), 'every program ran its workers on both hosts')
  const shards = runs.find((r) => r.variant === 'ddict')?.result.ddict
  if (shards?.nodes !== undefined) t.equal(shards.nodes, 2, "the DDict's shards on both hosts")
})

t.test('parsing a program: RESULT first, the seed lines as fallback, clear errors', async (t) => {
  const { parseProgramOutput } = (await import(join(root, 'out/bench/producer-consumer/run.js'))) as typeof import('../../bench/producer-consumer/run.js')
  const result = parseProgramOutput('Done in 1.00 s\nRESULT {"variant":"ddict","dataGB":0.62,"numSims":32,"gridSize":512,"simSeconds":7,"simIOSeconds":0.2,"trainSeconds":17.9,"trainIOSeconds":1.19,"workers":2,"nodes":1}\n', 'ddict')
  t.match(result, { parsedFrom: 'RESULT', dataGB: 0.62, numSims: 32, simSeconds: 7, simIOSeconds: 0.2, trainSeconds: 17.9, trainIOSeconds: 1.19, nodes: 1 })
  const lines = parseProgramOutput('Training data size: 0.62 GB\nSimulation phase\nDone in 14.38 s\nIO time: NA\nTraining phase\nDone in 26.59 s\nIO time: NA\n', 'futures')
  t.match(lines, { parsedFrom: 'lines', dataGB: 0.62, simSeconds: 14.38, simIOSeconds: null, trainSeconds: 26.59, trainIOSeconds: null })
  t.throws(() => parseProgramOutput('RESULT {"variant":"x"', 'x'), /its RESULT line is not JSON/)
  t.throws(() => parseProgramOutput('RESULT {"dataGB":1}', 'x'), /no number simSeconds/)
  t.throws(() => parseProgramOutput('Error: boom\n', 'x'), /no RESULT line, and not the seed's lines either .* ends with:\nError: boom/s)
})

t.test('the figure rules', async (t) => {
  const { checkRules } = (await import(join(root, 'out/bench/producer-consumer/report.js'))) as typeof import('../../bench/producer-consumer/report.js')
  const g = (variant: string, dataGB: number, train: number, simIO: number | null, trainIO: number | null, nodes = 1) => ({ variant, nodes, dataGB, numSims: 0, runs: 1, simSeconds: 1, simIOSeconds: simIO, trainSeconds: train, trainIOSeconds: trainIO })
  // the seed's own figures: futures 1.8x (not met), DDict IO 2.5x / 2.8x (not met); 5 GB-like at 2 GB: met
  const seed = checkRules([g('futures', 0.625, 26.59, null, null), g('filesystem', 0.625, 14.9, 0.094, 0.422), g('ddict', 0.625, 17.92, 0.233, 1.194), g('futures', 1.99, 171, null, null), g('filesystem', 1.99, 104, 1, 1), g('ddict', 1.99, 47, 1, 1)])
  t.same(seed.map((r) => r.status), ['NOT MET', 'NOT MET', 'met'])
  t.match(seed[0]!.detail, /= 1\.78x/)
  // both file systems: each rule once per file system, the network one named as the seed's setup
  const both = checkRules([g('futures', 0.625, 15, null, null), g('filesystem', 0.625, 14.9, 0.1, 0.03), g('filesystem-netfs', 0.625, 16, 0.2, 0.9), g('ddict', 0.625, 10, 0.15, 0.7)])
  t.same(both.map((r) => [r.rule.replace(/:.*\(/, ' ('), r.status]), [
    ['1 node, 0.62 GB (local disk)', 'met'],
    ['1 node, 0.62 GB (local disk; each phase)', 'NOT MET'],
    ['1 node, 0.62 GB (network fs)', 'met'],
    ['1 node, 0.62 GB (network fs; each phase)', 'met'],
    ['2 GB: DDict training faster than both other variants', 'not measured'],
  ])
  t.match(both[3]!.detail, /training 0\.700 \/ 0\.900 s = 0\.78x .*the seed's setup: its data went to Polaris' shared Lustre/)
  const at2 = checkRules([g('futures', 2, 30, null, null), g('filesystem', 2, 10, 1, 1), g('filesystem-netfs', 2, 40, 1, 1), g('ddict', 2, 20, 1, 1)])
  t.same(at2.at(-1), { rule: '2 GB: DDict training faster than both other variants (1 node)', status: 'NOT MET', detail: 'DDict 20.00 s, file system (local disk) 10.00 s, file system (network fs) 40.00 s, futures 30.00 s (seed at 5 GB: 47 / 104 / 171 s)' })
  const good = checkRules([g('futures', 0.625, 15, null, null), g('filesystem', 0.625, 14.9, 0.1, 0.4), g('ddict', 0.625, 10, 0.15, 0.7)])
  t.same(good.map((r) => r.status), ['met', 'met', 'not measured'])
})
