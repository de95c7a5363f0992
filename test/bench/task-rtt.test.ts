// Smoke test of bench/task-rtt (the compiled bench in out/): two small sizes, few round trips.
import { execFile } from 'node:child_process'
import { createConnection } from 'node:net'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { connectors, RedisConnector, Store } from 'tsflow/proxy'
import { redisMissing, startRedis } from '../helpers/redis.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-rtt-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('direct and every connector of this build, with the memcpy baseline, as CSV and SVG; stores left empty', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--sizes', '1KB', '64KiB', '--repeat', '2', '--warmup', '1', '--transports', 'direct', 'file', 'local', 'shm', 'multi'], { timeout: 60_000 })
  const dir = /run directory (\S+)/.exec(stdout)![1]!
  const rows = readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n')
  t.equal(rows[0], 'executor,transport,size_bytes,repetition,round_trip_s')
  t.equal(rows.length, 1 + 7 * 2 * 2, 'direct, file, local, shm, multi, memcpy and memcpy-warm: 2 sizes x 2 round trips')
  const summary = readFileSync(join(dir, 'summary.csv'), 'utf8').trim().split('\n')
  t.equal(summary[0], 'executor,transport,size_bytes,repetitions,median_s,min_s,max_s,mb_per_s')
  t.same(new Set(summary.slice(1).map((line) => line.split(',')[1])), new Set(['direct', 'file', 'local', 'shm', 'multi', 'memcpy', 'memcpy-warm']))
  t.same(new Set(summary.slice(1).map((line) => line.split(',')[2])), new Set(['1000', '65536']))
  t.ok(summary.slice(1).every((line) => Number(line.split(',')[4]) > 0), 'positive medians')
  t.equal(stdout.match(/store empty: yes/g)?.length, 4, 'file, local, shm and multi all left empty')
  t.same(readdirSync('/dev/shm').filter((name) => name.startsWith(`tsflow-bench_${/shm\(bench_(\d+)\)/.exec(stdout)?.[1]}`)), [], 'no shm segment left')
  t.match(readFileSync(join(dir, 'task-rtt.svg'), 'utf8'), /^<svg/)
})

t.test('HTEX with the zmq peer connector (workers own the results they store); zmq refused on threads', async (t) => {
  t.ok(connectors.names().includes('zmq'))
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--executor', 'htex', '--sizes', '1KB', '--repeat', '1', '--warmup', '0', '--baselines', 'false', '--transports', 'zmq'], { timeout: 60_000 })
  t.match(stdout, /executor htex\(1 worker process\)/)
  t.match(stdout, /store empty: yes \(zmq\(tcp:\/\/127\.0\.0\.1:\d+\): 2 objects stored during the runs, 0 left\)/)
  const failed = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--transports', 'zmq']).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  )
  t.equal(failed?.code, 2)
  t.match(failed?.stderr, /the zmq connector cannot own objects in worker threads/)
})

t.test('redis: the bench starts and stops its own redis-server, measures redis-raw, and the check lists keys left behind', { skip: redisMissing() ?? false }, async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'out/bench/task-rtt.js'), '--history', 'false', '--run-dir', scratch, '--sizes', '1KB', '--repeat', '1', '--warmup', '0', '--transports', 'redis'], { timeout: 60_000 })
  const port = Number(/private redis-server on 127\.0\.0\.1:(\d+)/.exec(stdout)?.[1])
  t.ok(port > 0)
  t.match(stdout, /store empty: yes \(redis\(127\.0\.0\.1:\d+\): 2 objects stored during the runs, 0 left\)/)
  const dir = /run directory (\S+)/.exec(stdout)![1]!
  t.same(new Set(readFileSync(join(dir, 'summary.csv'), 'utf8').trim().split('\n').slice(1).map((line) => line.split(',')[1])), new Set(['redis', 'memcpy', 'memcpy-warm', 'redis-raw']))
  const refused = await new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => (socket.destroy(), resolve(false)))
    socket.once('error', () => resolve(true))
  })
  t.ok(refused, 'the private redis-server is gone')

  const redis = await startRedis(t)
  const { checkStoreEmpty } = (await import(join(root, 'out/bench/lib/store-check.js'))) as typeof import('../../bench/lib/store-check.js')
  const store = new Store(`rtt-check-${process.pid}`, new RedisConnector({ host: redis.host, port: redis.port, keyPrefix: 'bench-check:' }))
  t.teardown(() => store.close())
  await store.put(new Uint8Array(4))
  const check = await checkStoreEmpty(store, store.connector.toConfig(), new Map())
  t.match(check, { empty: false, objectsMade: 0 })
  t.equal(check.entriesLeft?.length, 1, 'a key the bench did not know of is listed by its prefix')
})
