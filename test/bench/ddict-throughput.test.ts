// Smoke test of bench/ddict-throughput (the compiled bench in out/): tiny sizes and counts, real
// redis-servers (the DDict's), real redis-benchmark against them; the servers are gone afterwards.
import { execFile } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { redisMissing } from '../helpers/redis.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BENCH = join(root, 'out/bench/ddict-throughput.js')
const REDIS_BENCHMARK = '/usr/bin/redis-benchmark'
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-ddict-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const benchmarkMissing = (() => {
  try {
    accessSync(REDIS_BENCHMARK, constants.X_OK)
    return undefined
  } catch {
    return `${REDIS_BENCHMARK} is missing (Debian: apt-get install redis-tools)`
  }
})()

const refused = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host, port }, () => (socket.destroy(), resolve(false)))
    socket.once('error', () => resolve(true))
  })

interface Line {
  client: string
  op: string
  sizeBytes: number
  opsPerSec: number
  mbPerSec: number
  machine: { cores: number; commit: string }
  tsflow: string
  loadavg: number
}

t.test('set/get in flight and batched, redis-benchmark on the same servers: JSONL, SVG, the ratio table; servers stopped', { skip: redisMissing() ?? false }, async (t) => {
  const out = join(scratch, 'a')
  const reference = benchmarkMissing ? ['--redis-benchmark', 'none'] : []
  const { stdout } = await promisify(execFile)(process.execPath, [BENCH, '--history', 'false', '--out', out, '--sizes', '4KiB', '64KiB', '--ops', '2000', '200', '--clients', '4', '--batch', '4', '--shards', '2', '--via', 'ddict', 'node-redis', ...reference], { timeout: 60_000 })
  const servers = [.../servers ((?:\S+:\d+ ?)+)/.exec(stdout)![1]!.trim().split(' ')].map((a) => a.split(':'))
  t.equal(servers.length, 2, 'two shards')
  const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line)
  const expected = ['ddict', 'ddict batched', 'node-redis', 'node-redis batched', ...(benchmarkMissing ? [] : ['redis-benchmark'])]
  for (const size of [4096, 65536]) {
    for (const op of ['set', 'get']) {
      t.same(lines.filter((l) => l.sizeBytes === size && l.op === op).map((l) => l.client).sort(), [...expected].sort(), `${size} B ${op}: one row per client`)
    }
  }
  t.ok(lines.every((l) => l.opsPerSec > 0 && l.mbPerSec > 0 && l.machine.cores > 0 && l.tsflow && typeof l.loadavg === 'number'), 'figures with machine, tsflow version and load average')
  t.match(readFileSync(join(out, 'ddict-throughput.svg'), 'utf8'), /^<svg/)
  t.match(stdout, /servers \S+ \S+ \(DDict\.create\(\{ managersPerNode: 2 \}\)\)/, 'the servers are the DDict\'s own')
  t.match(stdout, /size\s+op\s+client\s+ops\/s\s+MB\/s\s+redis-benchmark ops\/s\s+ratio\s+within 2x/)
  if (!benchmarkMissing) t.match(stdout, new RegExp(`64 KiB\\s+get\\s+ddict\\s+\\d+\\s+[\\d.]+\\s+\\d+\\s+[\\d.]+\\s+(met|NOT MET)`))
  for (const [host, port] of servers) t.ok(await refused(host!, Number(port)), `${host}:${port} stopped`)
})

t.test('usage errors before anything starts', async (t) => {
  const failed = await promisify(execFile)(process.execPath, [BENCH, '--history', 'false', '--out', join(scratch, 'b'), '--sizes', '4KiB', '4MiB', '--ops', '1', '2', '3']).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  )
  t.equal(failed?.code, 2)
  t.match(failed?.stderr, /--ops: give one count for all sizes or one per size \(2\), got 3/)
})

t.test('the CSV of redis-benchmark is parsed defensively', async (t) => {
  const { parseBenchmarkCsv } = (await import(join(root, 'out/bench/ddict-throughput/redis-benchmark.js'))) as typeof import('../../bench/ddict-throughput/redis-benchmark.js')
  const rows = parseBenchmarkCsv('Warning: Using a password with \'-a\'\n"test","rps","avg_latency_ms","p50_latency_ms"\r\n"SET","74074.07","0.089","0.087"\n"GET","90909.09","0.064","0.063"\n')
  t.same(rows, [
    { test: 'SET', rps: '74074.07', avg_latency_ms: '0.089', p50_latency_ms: '0.087' },
    { test: 'GET', rps: '90909.09', avg_latency_ms: '0.064', p50_latency_ms: '0.063' },
  ])
  t.throws(() => parseBenchmarkCsv('NOAUTH Authentication required.'), /printed no CSV header \("test","rps",\.\.\.\): NOAUTH/)
})
