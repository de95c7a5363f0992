// Smoke test of bench/task-rtt (the compiled bench in out/): two small sizes, few round trips.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { connectors } from 'tsflow/proxy'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-rtt-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('direct and every connector of this build, with the memcpy baseline, as CSV and SVG; stores left empty', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--sizes', '1KB', '64KiB', '--repeat', '2', '--warmup', '1', '--transports', 'direct', 'file', 'local'], { timeout: 60_000 })
  const dir = /run directory (\S+)/.exec(stdout)![1]!
  const rows = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n')
  t.equal(rows[0], 'executor,transport,size_bytes,repetition,round_trip_s')
  t.equal(rows.length, 1 + 4 * 2 * 2, 'direct, file, local and memcpy: 2 sizes x 2 round trips')
  const summary = readFileSync(join(dir, 'summary.csv'), 'utf8').trim().split('\n')
  t.equal(summary[0], 'executor,transport,size_bytes,repetitions,median_s,min_s,max_s,mb_per_s')
  t.same(new Set(summary.slice(1).map((line) => line.split(',')[1])), new Set(['direct', 'file', 'local', 'memcpy']))
  t.same(new Set(summary.slice(1).map((line) => line.split(',')[2])), new Set(['1000', '65536']))
  t.ok(summary.slice(1).every((line) => Number(line.split(',')[4]) > 0), 'positive medians')
  t.equal(stdout.match(/store empty: yes/g)?.length, 2, 'file and local both left empty')
  t.match(readFileSync(join(dir, 'task-rtt.svg'), 'utf8'), /^<svg/)
})

t.test('a connector this build lacks is refused by name', async (t) => {
  const missing = ['shm', 'redis', 'zmq'].find((type) => !connectors.names().includes(type))
  if (!missing) return t.pass('every connector is registered')
  const failed = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--transports', missing]).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  )
  t.equal(failed?.code, 2)
  t.match(failed?.stderr, new RegExp(`connector ${missing} not in this tsflow build`))
})
