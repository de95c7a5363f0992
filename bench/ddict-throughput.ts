/**
 * bench/ddict-throughput: DDict set/get throughput (ops/s, MB/s) for 4 KB and 4 MB values, next
 * to redis-benchmark against THE SAME servers (issue 11: within 2x of it).
 *
 *   npm run bench:ddict                                   # 4 KiB and 4 MiB, 16 in flight, 2 shards
 *   node out/bench/ddict-throughput.js --sizes 4KiB 4MiB --ops 20000 200 --clients 16 --shards 2
 *
 * For each size: the DDict's `set` then `get` with --clients calls in flight (each a loop of
 * await; one value in flight per loop, like a redis-benchmark client with -P 1), then the same
 * numbers of values through `setMany`/`getMany` in batches of --batch (a second row: one round
 * trip per shard per batch; the same number of values in flight), then redis-benchmark
 * (`-t set|get -d <size> -c <clients> -n <ops> -r <keys> -P 1 -a <password> --csv`) against the
 * shards the DDict started (bench/ddict-throughput/redis-benchmark.ts: one process per shard).
 * Keys cycle over a bounded key space (--keys), so memory stays far below the shards' limit.
 *
 * Writes <out>/results.jsonl (one line per measurement, with the machine, tsflow version and
 * load average), <out>/ddict-throughput.svg (bars, vega-lite), prints the table with the ratio
 * DDict / redis-benchmark, and appends a summary line to bench/results/ddict-throughput.jsonl.
 */
import { randomBytes } from 'node:crypto'
import { appendFileSync, mkdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { TSFLOW_VERSION } from 'tsflow'
import { BenchUsage, formatBytes, parseArgs, parseBytes, parseNumber, usage, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { appendResult, machine, RESULTS_DIR } from './lib/results.js'
import { writeVegaLiteSvg } from './lib/vega.js'
import { redisBenchmark, redisBenchmarkMissing } from './ddict-throughput/redis-benchmark.js'
import { deploy, type KV } from './ddict-throughput/targets.js'

const FLAGS = {
  sizes: { default: ['4KiB', '4MiB'], list: true, commas: true, help: 'value sizes (KB/MB decimal, KiB/MiB binary)' },
  ops: { default: ['20000', '200'], list: true, commas: true, help: 'operations per size and op (one per size, or one for all): set and get each do this many' },
  clients: { default: '16', help: 'calls in flight (redis-benchmark -c)' },
  batch: { default: '16', help: 'values per setMany/getMany call in the batched row' },
  shards: { default: '2', help: 'Redis servers (DDict managersPerNode)' },
  keys: { default: 'auto', help: "distinct keys per size (auto: min(1000, 64 MiB / size), and at most ops / 8)" },
  via: { default: ['ddict'], list: true, commas: true, choices: ['ddict', 'node-redis'], help: 'clients measured: the DDict, and/or the raw node-redis client on the same servers (what the DDict adds)' },
  'redis-benchmark': { default: '/usr/bin/redis-benchmark', help: "redis-benchmark binary ('none': skip the reference)" },
  'total-mem': { default: '1GiB', help: 'DDict totalMem (split over the shards; each refuses puts at 90% of its share)' },
  repeat: { default: '1', help: 'repetitions of everything (the table shows the median)' },
  out: { default: '', help: 'output directory (default bench/results/ddict-throughput/<UTC stamp>/)' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the summary line to bench/results/ddict-throughput.jsonl' },
} satisfies Record<string, FlagSpec>

const SUMMARY = `DDict set/get throughput (ops/s and MB/s) per value size, with --clients calls in flight and in
batches (setMany/getMany), next to redis-benchmark against the same Redis servers; the target
(issue 11) is the DDict within 2x of redis-benchmark.`

const TARGET_RATIO = 0.5

interface Measurement {
  client: string
  op: 'set' | 'get'
  sizeBytes: number
  repetition: number
  ops: number
  seconds: number
  opsPerSec: number
  mbPerSec: number
  clients: number
  batch: number
  keys: number
  p50Ms?: number
}

/** 4096 -> "4 KiB", 4000 -> "4.0 KB": sizes as people name them (binary when they are). */
function sizeLabel(bytes: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`
  return formatBytes(bytes)
}

const stampNow = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
const round = (value: number, digits = 3) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : value)
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
}

/** `count` operations with `inFlight` loops each awaiting one at a time; seconds. */
async function concurrently(count: number, inFlight: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: Math.min(inFlight, count) }, async () => {
      while (next < count) await op(next++)
    }),
  )
  return (performance.now() - started) / 1000
}

function checkLength(got: number | undefined, size: number, key: string): void {
  if (got !== size) throw new Error(`get ${key}: ${got === undefined ? 'missing' : `${got} bytes`}, expected ${size} (the set phase wrote it)`)
}

/** set, get, setMany, getMany for one client and size. */
async function measureClient(kv: KV, label: string, size: number, count: number, keys: number, clients: number, batch: number): Promise<Omit<Measurement, 'repetition'>[]> {
  const value = randomBytes(size)
  const key = (i: number) => `${label}-${size}-${i % keys}`
  const row = (client: string, op: 'set' | 'get', seconds: number, b: number) => ({ client, op, sizeBytes: size, ops: count, seconds, opsPerSec: count / seconds, mbPerSec: (count * size) / seconds / 1e6, clients, batch: b, keys })
  // Unmeasured: one round per loop, so connections are made and warm before the clock starts.
  await concurrently(Math.min(count, clients), clients, (i) => kv.set(key(i), value))
  const out = [row(kv.name, 'set', await concurrently(count, clients, (i) => kv.set(key(i), value)), 1)]
  out.push(row(kv.name, 'get', await concurrently(count, clients, async (i) => checkLength(await kv.get(key(i)), size, key(i))), 1))
  // Batched: the same values in flight (clients), grouped in calls of `batch`.
  const calls = Math.ceil(count / batch)
  const inFlight = Math.max(1, Math.floor(clients / batch))
  const batchKeys = (c: number) => Array.from({ length: Math.min(batch, count - c * batch) }, (_, j) => key(c * batch + j))
  out.push(row(`${kv.name} batched`, 'set', await concurrently(calls, inFlight, (c) => kv.setMany(batchKeys(c).map((k) => [k, value]))), batch))
  out.push(
    row(`${kv.name} batched`, 'get', await concurrently(calls, inFlight, async (c) => {
      const names = batchKeys(c)
      const got = await kv.getMany(names)
      names.forEach((name, j) => checkLength(got[j], size, name))
    }), batch),
  )
  return out
}

async function bench(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, FLAGS)
  if (flags === 'help') {
    console.log(usage('node out/bench/ddict-throughput.js', SUMMARY, FLAGS))
    return 0
  }
  const sizes = flags.sizes.map((s) => parseBytes(s, '--sizes'))
  if (sizes.some((s) => s < 1)) throw new BenchUsage('--sizes must be at least 1 byte each')
  const opsList = flags.ops.map((o) => parseNumber(o, '--ops', { min: 1, integer: true }))
  if (opsList.length !== 1 && opsList.length !== sizes.length) throw new BenchUsage(`--ops: give one count for all sizes or one per size (${sizes.length}), got ${opsList.length}`)
  const clients = parseNumber(flags.clients, '--clients', { min: 1, integer: true })
  const batch = parseNumber(flags.batch, '--batch', { min: 1, integer: true })
  const shards = parseNumber(flags.shards, '--shards', { min: 1, integer: true })
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const totalMem = parseBytes(flags['total-mem'], '--total-mem')
  const binary = flags['redis-benchmark']
  const skipReference = binary === 'none'
  const missing = skipReference ? undefined : redisBenchmarkMissing(binary)
  if (missing) throw new BenchUsage(missing)
  const keysFor = (size: number, count: number) => {
    const wanted = flags.keys === 'auto' ? Math.min(1000, Math.floor((64 * 2 ** 20) / size)) : parseNumber(flags.keys, '--keys', { min: 1, integer: true })
    return Math.max(1, Math.min(wanted, Math.floor(count / 8)))
  }
  // Memory: every client's keys of the biggest size at once, plus redis-benchmark's.
  const peak = Math.max(...sizes.map((size, i) => size * keysFor(size, opsList[opsList.length === 1 ? 0 : i]!) * (flags.via.length + 2)))
  if (peak > totalMem * 0.8) throw new BenchUsage(`--total-mem ${flags['total-mem']} is too small for these sizes and keys (about ${formatBytes(peak)} at once); give more, or fewer --keys`)

  const out = resolve(flags.out || join(RESULTS_DIR, 'ddict-throughput', stampNow()))
  mkdirSync(out, { recursive: true })
  const file = join(out, 'results.jsonl')
  const host = machine()
  const log = (line: string) => console.log(line)
  const deployment = await deploy({ shards, totalMem })
  onCleanup(() => deployment.stop())
  const where = deployment.shards.map((s) => `${s.host}:${s.port}`).join(' ')
  log(`ddict-throughput: servers ${where} (${deployment.how}); ${host.cores} cores (load average ${loadavg()[0]!.toFixed(2)}), node ${host.node}, tsflow ${TSFLOW_VERSION}; output ${out}`)
  const kvs = await Promise.all(flags.via.map((name) => deployment.client(name as 'ddict' | 'node-redis')))
  const rows: Measurement[] = []
  const record = (m: Measurement) => {
    rows.push(m)
    const line = { bench: 'ddict-throughput', at: new Date().toISOString(), machine: host, loadavg: round(loadavg()[0]!, 2), tsflow: TSFLOW_VERSION, shards, servers: deployment.how, ...m, seconds: round(m.seconds, 4), opsPerSec: round(m.opsPerSec, 1), mbPerSec: round(m.mbPerSec, 1) }
    appendFileSync(file, `${JSON.stringify(line)}\n`)
  }
  for (let repetition = 1; repetition <= repeat; repetition++) {
    for (const [i, size] of sizes.entries()) {
      const count = opsList[opsList.length === 1 ? 0 : i]!
      const keys = keysFor(size, count)
      for (const kv of kvs) {
        for (const m of await measureClient(kv, `tp${repetition}`, size, count, keys, clients, batch)) {
          record({ ...m, repetition })
          log(`  ${sizeLabel(size).padStart(8)} ${m.op} ${m.client.padEnd(18)} ${m.opsPerSec.toFixed(0).padStart(9)} ops/s ${m.mbPerSec.toFixed(1).padStart(8)} MB/s`)
        }
      }
      await deployment.flush()
      if (!skipReference) {
        for (const op of ['set', 'get'] as const) {
          const figure = await redisBenchmark(binary, deployment.shards, deployment.password, op, { sizeBytes: size, clients, requests: count, keys })
          record({ client: 'redis-benchmark', op, sizeBytes: size, repetition, ops: figure.requests, seconds: figure.seconds, opsPerSec: figure.opsPerSec, mbPerSec: (figure.opsPerSec * size) / 1e6, clients, batch: 1, keys, p50Ms: figure.p50Ms })
          log(`  ${sizeLabel(size).padStart(8)} ${op} ${'redis-benchmark'.padEnd(18)} ${figure.opsPerSec.toFixed(0).padStart(9)} ops/s ${((figure.opsPerSec * size) / 1e6).toFixed(1).padStart(8)} MB/s${figure.coarse ? ' (coarse: under 50 ms, raise --ops)' : ''}`)
        }
        await deployment.flush()
      }
    }
  }

  const { lines, figures } = summarize(rows)
  for (const line of lines) log(line)
  const svg = join(out, 'ddict-throughput.svg')
  await plot(rows, svg)
  log(`results ${file}\nplot ${svg}`)
  if (flags.history !== 'false') {
    const history = appendResult('ddict-throughput', { tsflow: TSFLOW_VERSION, loadavg: round(loadavg()[0]!, 2), out, shards, clients, batch, servers: deployment.how, figures })
    log(`summary appended to ${history}`)
  }
  return 0
}

/** The table: median per client, op and size, with the ratio to redis-benchmark. */
function summarize(rows: Measurement[]): { lines: string[]; figures: Record<string, unknown>[] } {
  const med = (client: string, op: string, size: number) => median(rows.filter((r) => r.client === client && r.op === op && r.sizeBytes === size).map((r) => r.opsPerSec))
  const clientsSeen = [...new Set(rows.map((r) => r.client))].filter((c) => c !== 'redis-benchmark')
  const sizes = [...new Set(rows.map((r) => r.sizeBytes))]
  const figures: Record<string, unknown>[] = []
  const header = ['size', 'op', 'client', 'ops/s', 'MB/s', 'redis-benchmark ops/s', 'ratio', 'within 2x']
  const table: string[][] = []
  for (const size of sizes) {
    for (const op of ['set', 'get'] as const) {
      const reference = med('redis-benchmark', op, size)
      for (const client of clientsSeen) {
        const ops = med(client, op, size)
        if (!Number.isFinite(ops)) continue
        const ratio = ops / reference
        // The target is judged on the row comparable to redis-benchmark -P 1 (calls in flight); batched rows are shown for what batching buys.
        const judged = !client.endsWith('batched') && Number.isFinite(ratio)
        const verdict = !judged ? '' : ratio >= TARGET_RATIO ? 'met' : 'NOT MET'
        table.push([sizeLabel(size), op, client, ops.toFixed(0), ((ops * size) / 1e6).toFixed(1), Number.isFinite(reference) ? reference.toFixed(0) : '-', Number.isFinite(ratio) ? ratio.toFixed(2) : '-', verdict])
        figures.push({ sizeBytes: size, op, client, opsPerSec: round(ops, 1), mbPerSec: round((ops * size) / 1e6, 1), redisBenchmarkOpsPerSec: Number.isFinite(reference) ? round(reference, 1) : null, ratio: Number.isFinite(ratio) ? round(ratio, 3) : null, ...(judged ? { withinTarget: ratio >= TARGET_RATIO } : {}) })
      }
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)))
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  const lines = ['', `DDict / redis-benchmark (medians; target: ratio >= ${TARGET_RATIO}, i.e. within 2x)`, fmt(header), ...table.map(fmt)]
  return { lines, figures }
}

async function plot(rows: Measurement[], svg: string): Promise<void> {
  const values = rows.map((r) => ({ panel: `${sizeLabel(r.sizeBytes)} ${r.op}`, client: r.client, opsPerSec: r.opsPerSec, mbPerSec: round(r.mbPerSec, 1) }))
  await writeVegaLiteSvg(svg, {
    title: 'DDict vs redis-benchmark on the same servers (median ops/s)',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: values.map((v) => v.panel) } },
    spec: {
      width: 160,
      height: 220,
      mark: { type: 'bar', tooltip: true },
      encoding: {
        x: { field: 'client', type: 'nominal', title: null, axis: { labelAngle: -40 } },
        y: { field: 'opsPerSec', type: 'quantitative', aggregate: 'median', title: 'operations/s' },
        color: { field: 'client', type: 'nominal', legend: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
  })
}

await runBench('ddict-throughput', bench, BenchUsage)
