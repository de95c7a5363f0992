/**
 * Debian's redis-benchmark against the DDict's own servers, as the reference of
 * bench/ddict-throughput: `-t set|get -d <size> -c <clients> -n <n> -r <keys> -P 1 -a <password>
 * --csv`. redis-benchmark talks to one server, so with several shards one process runs per shard
 * at the same time (clients, requests and keys split evenly), and the figure is all their requests
 * over the slowest one's time: what the shards served together, as the DDict's figure is.
 * SET runs before GET, so GET reads keys that exist (-r keys, n >= 8 x keys per size).
 * redis-benchmark takes a password only as `-a` (no environment variable, no file), so the
 * dictionary's password shows in its command line while it runs; the servers are the bench's own
 * and are destroyed at its end.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { promisify } from 'node:util'
import type { ShardAddress } from './targets.js'

export interface BenchmarkFigure {
  op: 'set' | 'get'
  requests: number
  seconds: number
  opsPerSec: number
  /** under ~50 ms: redis-benchmark's millisecond clock makes the figure coarse */
  coarse: boolean
  /** mean of the processes' own p50 latency (ms) */
  p50Ms: number
  /** each process's CSV row, as it printed it */
  raw: Record<string, string>[]
}

/** Why redis-benchmark cannot run (a sentence), or undefined. */
export function redisBenchmarkMissing(binary: string): string | undefined {
  try {
    accessSync(binary, constants.X_OK)
    return undefined
  } catch {
    return `${binary} is not there (Debian: apt-get install redis-tools; or --redis-benchmark PATH, or none to skip it)`
  }
}

/**
 * Parses `redis-benchmark --csv`: a header line ("test","rps",...) and one row per test. Lines
 * that are not CSV (warnings, progress) are skipped; a missing header or rps is an error naming
 * the output.
 */
export function parseBenchmarkCsv(text: string): Record<string, string>[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.startsWith('"'))
  const cells = (line: string) => [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"'))
  const headerAt = lines.findIndex((line) => cells(line)[0] === 'test')
  if (headerAt < 0) throw new Error(`redis-benchmark printed no CSV header ("test","rps",...): ${text.trim().slice(0, 300) || '(nothing)'}`)
  const header = cells(lines[headerAt]!)
  if (!header.includes('rps')) throw new Error(`redis-benchmark's CSV has no rps column: ${lines[headerAt]}`)
  return lines.slice(headerAt + 1).map((line) => Object.fromEntries(cells(line).map((cell, i) => [header[i] ?? `col${i}`, cell])))
}

const run = promisify(execFile)

/** One test (set or get) on every shard at once; the combined figure. */
export async function redisBenchmark(
  binary: string,
  shards: ShardAddress[],
  password: string,
  op: 'set' | 'get',
  options: { sizeBytes: number; clients: number; requests: number; keys: number },
): Promise<BenchmarkFigure> {
  const share = (total: number, i: number) => Math.floor(total / shards.length) + (i < total % shards.length ? 1 : 0)
  const results = await Promise.all(
    shards.map(async (shard, i) => {
      const requests = Math.max(1, share(options.requests, i))
      const args = [
        ...['-h', shard.host, '-p', String(shard.port)],
        ...(password ? ['-a', password] : []),
        ...['-t', op, '-d', String(options.sizeBytes), '-c', String(Math.max(1, share(options.clients, i)))],
        ...['-n', String(requests), '-r', String(Math.max(1, share(options.keys, i))), '-P', '1', '--csv'],
      ]
      const { stdout } = await run(binary, args, { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 }).catch((error: Error & { stdout?: string; stderr?: string }) => {
        throw new Error(`redis-benchmark ${op} against ${shard.host}:${shard.port} failed: ${(error.stderr || error.message).trim().slice(0, 500)}`)
      })
      const rows = parseBenchmarkCsv(stdout)
      const row = rows.find((r) => r.test?.toUpperCase() === op.toUpperCase())
      const rps = Number(row?.rps)
      // It times in whole milliseconds: a run under 1 ms prints rps "inf".
      if (row && (rps === Infinity || row.rps === 'inf')) throw new Error(`redis-benchmark ${op} against ${shard.host}:${shard.port}: ${requests} requests took under 1 ms, too few to time; raise --ops`)
      if (!row || !(rps > 0)) throw new Error(`redis-benchmark ${op} against ${shard.host}:${shard.port}: no ${op.toUpperCase()} row with an rps in ${JSON.stringify(stdout.trim().slice(0, 300))}`)
      return { requests, seconds: requests / rps, p50: Number(row.p50_latency_ms), row }
    }),
  )
  const requests = results.reduce((sum, r) => sum + r.requests, 0)
  const seconds = Math.max(...results.map((r) => r.seconds))
  // Its clock has 1 ms steps: below ~50 ms the figure is coarse (say so; the DDict's is timed finer).
  const coarse = seconds < 0.05
  return {
    coarse, op, requests, seconds, opsPerSec: requests / seconds, p50Ms: results.reduce((sum, r) => sum + r.p50, 0) / results.length, raw: results.map((r) => r.row) }
}
