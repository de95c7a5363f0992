/**
 * bench/task-rtt: the round trip of one task whose argument and result are 1 KB .. 100 MB, passed
 * directly (through the executor) versus through each connector (the argument as a proxy, the
 * result as a proxy of a new object in the same store), with two baselines:
 *  - memcpy: a raw in-memory copy of the same size (Buffer.copy) into new memory, the floor for
 *    shm (memcpy-warm: into memory touched before, the copy alone);
 *  - redis-raw: one SET and one GET of the same bytes with the same redis client, as
 *    redis-benchmark measures (only with redis among the transports).
 * `local` is measured in this process without a task (proxy, resolve, proxy, resolve): the
 * store's own cost; tasks on workers cannot reach a local connector.
 *
 *   node out/bench/task-rtt.js                                  # threads executor, every connector in this build
 *   node out/bench/task-rtt.js --executor htex --transports direct shm redis --sizes 1KB 1MB 100MB
 *
 * Writes <run-dir>/task-rtt-<date>/results.csv (every round trip), summary.csv (median per
 * transport and size), task-rtt.svg (log-log), prints the medians, and appends a JSON line per
 * transport and size to bench/results/task-rtt.jsonl unless --history false.
 */
import { spawnSync } from 'node:child_process'
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import { DataFlowKernel } from 'tsflow'
import { connectors, extract, factoryOf, resolve, Store, type ConnectorConfig, type ObjectKey } from 'tsflow/proxy'
import { BenchUsage, formatBytes, parseArgs, parseBytes, parseNumber, usage, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { buildConnector, CONNECTOR_OPTION_FLAGS, connectorConfig, EXECUTOR_FLAGS, executorChoice, executorLabel, makeExecutor, zmqUnfit } from './lib/data-flags.js'
import { appendResult, percentile } from './lib/results.js'
import { checkStoreEmpty, storeCheckText, type StoreCheck } from './lib/store-check.js'
import { writeVegaLiteSvg } from './lib/vega.js'
import { redisRaw, type RedisRaw } from './task-rtt/redis-raw.js'
import { echo, echoProxy } from './task-rtt/tasks.js'
import { makeData } from './workflow-memory/tasks.js'

const CONNECTOR_TRANSPORTS = ['file', 'shm', 'redis', 'zmq', 'multi', 'local'] as const
const TRANSPORTS = ['direct', ...CONNECTOR_TRANSPORTS] as const
const BASELINES = ['memcpy', 'memcpy-warm', 'redis-raw']

const FLAGS = {
  sizes: { default: ['1KB', '10KB', '100KB', '1MB', '10MB', '100MB'], list: true, commas: true, help: 'argument (and result) sizes' },
  transports: { default: [], list: true, commas: true, choices: TRANSPORTS, help: 'direct and connectors to measure (default: direct and every connector this tsflow has)' },
  baselines: { default: 'true', choices: ['true', 'false'], help: 'also measure memcpy, memcpy-warm and (with redis) redis-raw' },
  repeat: { default: '5', help: 'measured round trips per transport and size' },
  warmup: { default: '2', help: 'unmeasured round trips first' },
  'run-dir': { default: 'runs/', help: 'results go to <run-dir>/task-rtt-<date>/' },
  ...EXECUTOR_FLAGS,
  workers: { default: '1', help: 'threads (threads) or workers per node (htex); one task runs at a time' },
  ...CONNECTOR_OPTION_FLAGS,
  'connector-config': { default: [], list: true, help: 'a connector config as JSON ({"type": ..., ...}), one per connector type, replacing the one built from the flags' },
  history: { default: 'true', choices: ['true', 'false'], help: 'append the medians to bench/results/task-rtt.jsonl' },
} satisfies Record<string, FlagSpec>

const SUMMARY = `Round trip of one task whose argument and result are the given size: passed directly
through the executor, or as proxies through each connector; baselines: memcpy (a raw copy of the
same size) and redis-raw (SET + GET of the same bytes with the same client).`

interface Row {
  executor: string
  transport: string
  size_bytes: number
  repetition: number
  round_trip_s: number
}

const ROW_COLUMNS = ['executor', 'transport', 'size_bytes', 'repetition', 'round_trip_s'] as const
const SUMMARY_COLUMNS = ['executor', 'transport', 'size_bytes', 'repetitions', 'median_s', 'min_s', 'max_s', 'mb_per_s'] as const

function stamp(date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}-${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`
}

function line(values: readonly unknown[]): string {
  return `${values.map((v) => (typeof v === 'number' && !Number.isInteger(v) ? v.toPrecision(6) : String(v))).join(',')}\n`
}

async function bench(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, FLAGS)
  if (flags === 'help') {
    console.log(usage('node out/bench/task-rtt.js', SUMMARY, FLAGS))
    return 0
  }
  const sizes = flags.sizes.map((s) => parseBytes(s, '--sizes'))
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const warmup = parseNumber(flags.warmup, '--warmup', { min: 0, integer: true })
  const choice = executorChoice(flags)
  const registered = new Set(connectors.names())
  const configs = new Map<string, ConnectorConfig>()
  for (const json of flags['connector-config']) {
    let config: unknown
    try {
      config = JSON.parse(json)
    } catch {
      config = undefined
    }
    if (typeof config !== 'object' || config === null || typeof (config as ConnectorConfig).type !== 'string') throw new BenchUsage(`--connector-config ${json}: not a JSON object with a "type"`)
    configs.set((config as ConnectorConfig).type, config as ConnectorConfig)
  }
  let transports: string[]
  if (flags.transports.length > 0) {
    transports = [...new Set(flags.transports)]
    const missing = transports.filter((t) => t !== 'direct' && !registered.has(t))
    if (missing.length) throw new BenchUsage(`--transports: connector${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not in this tsflow build (registered: ${[...registered].join(', ')})`)
    const unfit = zmqUnfit(transports.includes('zmq') ? 'zmq' : '', choice)
    if (unfit) throw new BenchUsage(unfit)
  } else {
    // Without a server given, redis is measured only where a private redis-server can be started.
    const redisReachable = flags['redis-host'] !== '' || flags['redis-port'] !== '' || configs.has('redis') || spawnSync('redis-server', ['--version']).status === 0
    if (registered.has('redis') && !redisReachable) console.log('note: redis not measured: no redis-server on PATH and no --redis-host/--redis-port')
    transports = TRANSPORTS.filter((t) => t === 'direct' || (registered.has(t) && !zmqUnfit(t, choice) && (t !== 'redis' || redisReachable)))
    if (registered.has('zmq') && zmqUnfit('zmq', choice)) console.log('note: zmq not measured: it needs --executor htex (worker processes own the results they store)')
    const skipped = CONNECTOR_TRANSPORTS.filter((t) => !registered.has(t))
    if (skipped.length) console.log(`note: not measured (not in this tsflow build): ${skipped.join(', ')}`)
  }

  const runDir = resolvePath(flags['run-dir'], `task-rtt-${stamp()}`)
  mkdirSync(runDir, { recursive: true })
  const stores = new Map<string, { store: Store; config: ConnectorConfig; keys: Map<string, ObjectKey> }>()
  for (const type of transports) {
    if (type === 'direct') continue
    const config = configs.get(type) ?? (await connectorConfig(type, { ...flags, 'connector-config': '' }, join(runDir, type)))
    const store = new Store(`task-rtt-${type}-${process.pid}`, buildConnector(config), { cacheSize: 0, serializer: 'bytes' })
    const keys = new Map<string, ObjectKey>()
    onCleanup(() => store.close())
    // After an interrupt, what was stored is evicted once the kernel stopped (newest first), or for
    // zmq before, while the worker processes that own objects still answer.
    if (type !== 'zmq') onCleanup(() => Promise.all([...keys.values()].map((key) => store.evict(key))))
    stores.set(type, { store, config, keys })
  }
  let raw: RedisRaw | undefined
  const redis = stores.get('redis')
  if (flags.baselines === 'true' && redis) {
    raw = await redisRaw(String(redis.config.host ?? '127.0.0.1'), Number(redis.config.port ?? 6379))
    onCleanup(() => raw!.close())
  }
  const needsKernel = transports.some((t) => t !== 'local')
  const kernel = needsKernel ? await new DataFlowKernel({ runDir: join(runDir, 'runinfo'), executors: [makeExecutor(choice)] }).start() : undefined
  if (kernel) onCleanup(() => kernel.cleanup({ deadlineMs: 10_000 }))
  const zmq = stores.get('zmq')
  if (zmq) onCleanup(() => Promise.all([...zmq.keys.values()].map((key) => zmq.store.evict(key))))
  const label = executorLabel(choice)
  const measured = [...transports, ...(flags.baselines === 'true' ? ['memcpy', 'memcpy-warm', ...(raw ? ['redis-raw'] : [])] : [])]
  console.log(`run directory ${runDir}\nexecutor ${label}; transports ${measured.join(', ')}; sizes ${sizes.map(formatBytes).join(', ')}; ${warmup} warm-up + ${repeat} measured round trips each`)

  const resultsFile = join(runDir, 'results.csv')
  writeFileSync(resultsFile, line(ROW_COLUMNS))
  const rows: Row[] = []

  const roundTrip = async (transport: string, data: Uint8Array, copy: Uint8Array): Promise<number> => {
    if (transport === 'memcpy' || transport === 'memcpy-warm') {
      const source = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      const started = performance.now()
      // memcpy: into new memory (its pages are touched for the first time, as in any transfer);
      // memcpy-warm: into a buffer allocated and touched before, the copy alone.
      source.copy(transport === 'memcpy' ? Buffer.allocUnsafeSlow(data.byteLength) : copy)
      return (performance.now() - started) / 1000
    }
    if (transport === 'redis-raw') return raw!.roundTrip(data)
    if (transport === 'direct') {
      const started = performance.now()
      const back = (await echo.with({ dfk: kernel! })(data)) as Uint8Array
      const seconds = (performance.now() - started) / 1000
      if (back.byteLength !== data.byteLength) throw new Error(`direct: got ${back.byteLength} bytes back for ${data.byteLength}`)
      return seconds
    }
    const { store, keys } = stores.get(transport)!
    // Keys are recorded as soon as they exist, so an interrupted run still evicts them.
    const remember = <T>(proxy: T): T => {
      const key = factoryOf(proxy).key
      keys.set(JSON.stringify(key), key)
      return proxy
    }
    const started = performance.now()
    const argument = remember(await store.proxy(data))
    let result: Uint8Array
    if (transport === 'local') {
      // In this process: the store's own cost (a worker could not reach a local connector).
      await resolve(argument)
      result = remember(await store.proxy(await extract(argument)))
    } else result = remember((await echoProxy.with({ dfk: kernel! })(argument)) as Uint8Array)
    const bytes = await extract(result)
    const seconds = (performance.now() - started) / 1000
    if (bytes.byteLength !== data.byteLength) throw new Error(`${transport}: got ${bytes.byteLength} bytes back for ${data.byteLength}`)
    for (const proxy of [argument, result]) await store.evict(factoryOf(proxy).key)
    return seconds
  }

  for (const size of sizes) {
    const data = makeData(size, 'random')
    const copy = new Uint8Array(size).fill(1)
    for (const transport of measured) {
      for (let i = 0; i < warmup; i++) await roundTrip(transport, data, copy)
      const times: number[] = []
      for (let repetition = 0; repetition < repeat; repetition++) {
        const row = { executor: label, transport, size_bytes: size, repetition, round_trip_s: await roundTrip(transport, data, copy) }
        rows.push(row)
        times.push(row.round_trip_s)
        appendFileSync(resultsFile, line(ROW_COLUMNS.map((c) => row[c])))
      }
      times.sort((a, b) => a - b)
      console.log(`${formatBytes(size).padStart(8)}  ${transport.padEnd(10)} median ${(percentile(times, 50) * 1000).toFixed(3).padStart(10)} ms`)
    }
  }

  const checks: StoreCheck[] = []
  for (const { store, config, keys } of stores.values()) {
    const check = await checkStoreEmpty(store, config, keys)
    checks.push(check)
    console.log(storeCheckText(check))
  }
  writeFileSync(join(runDir, 'store-check.json'), checks.map((c) => JSON.stringify(c)).join('\n') + (checks.length ? '\n' : ''))

  const summaries = measured.flatMap((transport) =>
    sizes.map((size) => {
      const times = rows.filter((r) => r.transport === transport && r.size_bytes === size).map((r) => r.round_trip_s).sort((a, b) => a - b)
      const median = percentile(times, 50)
      // mb_per_s: the size over the median round trip (not the bytes moved, which differ by transport).
      return { executor: label, transport, size_bytes: size, repetitions: times.length, median_s: median, min_s: times[0]!, max_s: times.at(-1)!, mb_per_s: size / 1e6 / median }
    }),
  )
  writeFileSync(join(runDir, 'summary.csv'), line(SUMMARY_COLUMNS) + summaries.map((s) => line(SUMMARY_COLUMNS.map((c) => s[c]))).join(''))
  console.log(`\n${table(summaries, measured, sizes)}`)
  const largest = sizes.at(-1)!
  const ratio = (a: string, b: string) => {
    const x = summaries.find((s) => s.transport === a && s.size_bytes === largest)
    const y = summaries.find((s) => s.transport === b && s.size_bytes === largest)
    if (x && y) console.log(`${a} / ${b} at ${formatBytes(largest)}: ${(x.median_s / y.median_s).toFixed(2)}x`)
  }
  ratio('shm', 'memcpy')
  ratio('shm', 'memcpy-warm')
  ratio('redis', 'redis-raw')
  ratio('direct', 'memcpy')

  const svg = join(runDir, 'task-rtt.svg')
  await writeVegaLiteSvg(svg, {
    title: { text: `task-rtt: one task, argument and result of each size (${label})`, subtitle: 'median round trip; dashed: baselines (memcpy: one copy into new memory, memcpy-warm: into touched memory; redis-raw: SET + GET)' },
    width: 620,
    height: 380,
    data: { values: summaries.map((s) => ({ ...s, baseline: BASELINES.includes(s.transport) ? 'baseline' : 'task' })) },
    encoding: {
      x: { field: 'size_bytes', type: 'quantitative', scale: { type: 'log' }, title: 'argument and result size (bytes)' },
      y: { field: 'median_s', type: 'quantitative', scale: { type: 'log' }, title: 'round trip (s)' },
      color: { field: 'transport', type: 'nominal', title: 'transport' },
      strokeDash: { field: 'baseline', type: 'nominal', legend: null, scale: { domain: ['task', 'baseline'], range: [[1, 0], [5, 3]] } },
    },
    layer: [{ mark: { type: 'line', point: true } }],
  })
  console.log(`results ${resultsFile}\nsummary ${join(runDir, 'summary.csv')}\nplot ${svg}`)
  if (flags.history === 'true') {
    let file = ''
    for (const s of summaries) file = appendResult('task-rtt', s)
    console.log(`medians appended to ${file}`)
  }
  return checks.every((c) => c.empty) ? 0 : 1
}

function table(summaries: readonly { transport: string; size_bytes: number; median_s: number }[], transports: readonly string[], sizes: readonly number[]): string {
  const header = ['size', ...transports.map((t) => `${t} (ms)`)]
  const rows = sizes.map((size) => [formatBytes(size), ...transports.map((t) => (summaries.find((s) => s.transport === t && s.size_bytes === size)!.median_s * 1000).toFixed(3))])
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
  const render = (row: string[]) => row.map((cell, c) => cell.padStart(widths[c]!)).join('  ')
  return [render(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(render)].join('\n')
}

await runBench('task-rtt', bench, BenchUsage)
