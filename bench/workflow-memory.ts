/**
 * bench/workflow-memory: the seed's workflow memory benchmark (ProxyStore psbench
 * workflow_memory; ../shared/docs/BENCHMARKS.md section 3). A simulated workflow of stages of
 * sleeping tasks passes data of set sizes from stage to stage in each data-management mode, while
 * a separate process samples the system's memory.
 *
 *   node out/bench/workflow-memory.js                      # embedded local default: threads, file connector
 *   node out/bench/workflow-memory.js --executor htex --workers 8 --connector redis \
 *     --data-management none default-proxy manual-proxy owned-proxy \
 *     --stage-task-counts 8 1 --stage-bytes-sizes 10MB 1MB 1MB --task-sleep 1.0 --repeat 5
 *
 * Writes to <run-dir>/workflow-memory-<date>/: results.csv (one line per run), results-memory.csv
 * (the sampler's lines), results-process-memory.csv (resident memory of the bench's own process
 * tree, which other tenants do not disturb), memory.svg, summary.json; prints a table per mode (makespan, peak memory
 * above each run's baseline) and whether the store was left empty (exit status 1 if not). Appends
 * the summary to bench/results/workflow-memory.jsonl unless --history false.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DataFlowKernel } from 'tsflow'
import { Store, type ConnectorConfig, type ObjectKey } from 'tsflow/proxy'
import { BenchUsage, formatBytes, parseArgs, parseBytes, parseNumber, usage, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { buildConnector, CONNECTOR_OPTION_FLAGS, CONNECTOR_TYPES, connectorConfig, EXECUTOR_FLAGS, executorChoice, executorLabel, makeExecutor, refuseLocalWithWorkers, zmqUnfit } from './lib/data-flags.js'
import { startMemorySampler } from './lib/memory-sampler.js'
import { appendResult, machine } from './lib/results.js'
import { checkStoreEmpty, storeCheckText, storedPlaces, type StoreCheck } from './lib/store-check.js'
import { csvLine, plotMemory, readMemoryCsv, readNumbersCsv, resultLine, runMemory, summarize, summaryTable, type TreeSample } from './workflow-memory/report.js'
import { warmUp } from './workflow-memory/tasks.js'
import { ALL_MODES, MODES, RESULT_COLUMNS, runWorkflow, validateShape, type Mode, type RunResult, type WorkflowContext } from './workflow-memory/workflow.js'

const FLAGS = {
  'data-management': { default: [...MODES], list: true, commas: true, choices: ALL_MODES, help: 'modes to run, each --repeat times (executor-proxy, not in the seed: mode none on an executor with the proxy option)' },
  'executor-proxy-threshold': { default: '1MB', help: 'executor-proxy: the executor option\'s threshold' },
  'stage-task-counts': { default: ['1', '3', '1', '1'], list: true, commas: true, help: 'tasks in each stage' },
  'stage-bytes-sizes': { default: ['1000', '10000', '10000', '10000', '1000'], list: true, commas: true, help: 'initial data size, then each stage\'s output size (one more than stages; 100MB, 10KiB accepted)' },
  'stage-repeat': { default: '1', help: 'times the stages are repeated within one run' },
  'task-sleep': { default: '1.0', help: 'seconds each task sleeps' },
  repeat: { default: '5', help: 'runs per mode' },
  'memory-profile-interval': { default: '0.1', help: 'seconds between memory samples' },
  'run-dir': { default: 'runs/', help: 'results go to <run-dir>/workflow-memory-<date>/' },
  fill: { default: 'random', choices: ['random', 'zeros'], help: 'data contents' },
  ...EXECUTOR_FLAGS,
  connector: { default: 'file', choices: CONNECTOR_TYPES, help: 'where the proxy modes store their data' },
  ...CONNECTOR_OPTION_FLAGS,
  history: { default: 'true', choices: ['true', 'false'], help: 'append the summary to bench/results/workflow-memory.jsonl' },
} satisfies Record<string, FlagSpec>

const SUMMARY = `The seed's workflow memory benchmark: stages of sleeping tasks pass data between them, in each
data-management mode (none, default-proxy, manual-proxy, owned-proxy), while a separate process
samples system memory. Stage rules: a stage of several tasks follows a stage of one (fan-out) or of
the same number (1:1); a stage of one task after several fans in.`

function stamp(date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}-${p(date.getHours())}-${p(date.getMinutes())}-${p(date.getSeconds())}`
}

async function bench(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, FLAGS)
  if (flags === 'help') {
    console.log(usage('node out/bench/workflow-memory.js', SUMMARY, FLAGS))
    return 0
  }
  const counts = flags['stage-task-counts'].map((c) => parseNumber(c, '--stage-task-counts', { min: 1, integer: true }))
  const sizes = flags['stage-bytes-sizes'].map((s) => parseBytes(s, '--stage-bytes-sizes'))
  validateShape(counts, sizes)
  const shape = {
    stageTaskCounts: counts,
    stageBytesSizes: sizes,
    stageRepeat: parseNumber(flags['stage-repeat'], '--stage-repeat', { min: 1, integer: true }),
    taskSleep: parseNumber(flags['task-sleep'], '--task-sleep'),
    fill: flags.fill as 'random' | 'zeros',
  }
  const repeat = parseNumber(flags.repeat, '--repeat', { min: 1, integer: true })
  const interval = parseNumber(flags['memory-profile-interval'], '--memory-profile-interval')
  if (interval <= 0) throw new BenchUsage('--memory-profile-interval must be > 0')
  const choice = executorChoice(flags)
  const modes = [...new Set(flags['data-management'])] as Mode[]

  const runDir = resolve(flags['run-dir'], `workflow-memory-${stamp()}`)
  mkdirSync(runDir, { recursive: true })
  const usesStore = modes.some((mode) => mode !== 'none')
  let store: Store | undefined
  // every key the runs stored: checked at the end, evicted on an interrupted run
  const madeKeys = new Map<string, ObjectKey>()
  const evictMade = () => Promise.all([...madeKeys.values()].map((key) => store!.evict(key)))
  let config: ConnectorConfig | undefined
  if (usesStore) {
    config = await connectorConfig(flags.connector, flags, runDir)
    refuseLocalWithWorkers(config.type, 'the tasks')
    const unfit = zmqUnfit(config.type, choice)
    if (unfit) throw new BenchUsage(unfit)
    // Cache size 0 (as the seed): a cache would keep objects alive from run to run.
    store = new Store(`workflow-memory-${process.pid}`, buildConnector(config), { cacheSize: 0, serializer: 'bytes' })
    onCleanup(() => store!.close())
    // An interrupted run's objects are evicted after the kernel stopped (clean-up runs newest
    // first), so no task still running stores one more; with zmq, before (below), while the worker
    // processes that own objects still answer (what a killed worker owned goes with it).
    if (config.type !== 'zmq') onCleanup(evictMade)
  }
  const connectorLabel = config?.type ?? 'none'

  // executor-proxy needs a second executor, the same but with the proxy option on our store.
  const twoExecutors = modes.includes('executor-proxy') ? { plain: 'plain', proxied: 'proxied' } : undefined
  const threshold = parseBytes(flags['executor-proxy-threshold'], '--executor-proxy-threshold')
  const executors = twoExecutors ? [makeExecutor(choice, { label: twoExecutors.plain }), makeExecutor(choice, { label: twoExecutors.proxied, proxy: { store: store!, threshold } })] : [makeExecutor(choice)]
  const kernel = await new DataFlowKernel({ runDir: join(runDir, 'runinfo'), executors }).start()
  const context: WorkflowContext = { kernel, store, executorLabel: executorLabel(choice), connectorLabel, madeKeys, ...(twoExecutors ? { executors: twoExecutors } : {}) }
  onCleanup(() => kernel.cleanup({ deadlineMs: 10_000 }))
  if (config?.type === 'zmq') onCleanup(evictMade)
  // Workers start (and import the task module) before the first measured run.
  for (const executor of executors) await Promise.all(Array.from({ length: choice.workers * 2 }, (_, i) => warmUp.with({ dfk: kernel, executors: [executor.label] })(i)))

  const resultsFile = join(runDir, 'results.csv')
  const memoryFile = join(runDir, 'results-memory.csv')
  const treeFile = join(runDir, 'results-process-memory.csv')
  writeFileSync(resultsFile, csvLine(RESULT_COLUMNS))
  const sampler = await startMemorySampler(interval, memoryFile, treeFile, storedPlaces(config))
  console.log(`run directory ${runDir}`)
  console.log(`memory sampler pid ${sampler.pid}, every ${interval} s`)
  console.log(
    `executor ${executorLabel(choice)}, connector ${connectorLabel}, stages ${counts.join(' ')}, sizes ${sizes.map(formatBytes).join(' / ')}, ` +
      `task sleep ${shape.taskSleep} s, stage repeat ${shape.stageRepeat}, ${repeat} runs per mode`,
  )
  // A baseline before the first run.
  await new Promise((r) => setTimeout(r, Math.max(200, interval * 2000)))

  const results: RunResult[] = []
  for (const mode of modes) {
    for (let run = 0; run < repeat; run++) {
      const result = await runWorkflow(context, mode, shape)
      results.push(result)
      appendFileSync(resultsFile, resultLine(result))
      console.log(`${mode.padEnd(14)} run ${run + 1}/${repeat}: makespan ${result.workflow_makespan_s.toFixed(3)} s`)
      // Lets memory settle (and the sampler see it) between runs.
      await new Promise((r) => setTimeout(r, Math.max(100, interval * 2000)))
    }
  }
  await sampler.stop()

  let check: StoreCheck | undefined
  if (store && config) {
    check = await checkStoreEmpty(store, config, context.madeKeys)
    console.log(storeCheckText(check))
    writeFileSync(join(runDir, 'store-check.json'), `${JSON.stringify(check)}\n`)
  } else console.log('store empty: yes (no store used: mode none only)')

  const samples = readMemoryCsv(memoryFile)
  const tree = readNumbersCsv<TreeSample>(treeFile)
  const memory = runMemory(results, samples, tree)
  const summaries = summarize(memory)
  console.log(`\n${summaryTable(summaries)}\n`)
  const svg = join(runDir, 'memory.svg')
  await plotMemory(svg, `workflow-memory: stages ${counts.join(' ')}, sizes ${sizes.map(formatBytes).join(' / ')}, ${executorLabel(choice)}, ${connectorLabel}`, memory, samples, tree)
  const summary = {
    flags,
    executor: executorLabel(choice),
    connector: config ?? null,
    modes: summaries,
    storeCheck: check ?? { check: 'store-empty', connector: 'none', empty: true, objectsMade: 0, objectsLeft: 0 },
    runDir,
  }
  writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify({ machine: machine(), ...summary }, null, 2)}\n`)
  console.log(`results ${resultsFile}\nmemory ${memoryFile} (system), ${treeFile} (the bench's processes)\nplot ${svg}`)
  if (flags.history === 'true') console.log(`summary appended to ${appendResult('workflow-memory', summary)}`)
  return check && !check.empty ? 1 : 0
}

await runBench('workflow-memory', bench, BenchUsage)
