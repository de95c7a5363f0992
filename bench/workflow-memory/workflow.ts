/**
 * One workflow run of the seed's memory benchmark (ProxyStore psbench workflow_memory), in one of
 * four data-management modes:
 *  - none: inputs and outputs travel through the executor as bytes;
 *  - default-proxy: as proxies, all evicted only after the whole run;
 *  - manual-proxy: as proxies, each stage's inputs evicted once the stage is done;
 *  - owned-proxy: owned proxies, borrowed into the tasks (borrows released when each task's future
 *    settles), results taken into ownership, each stage's inputs dropped (evicted) after the stage;
 *  - executor-proxy (an addition): the bytes of mode none, on an executor with the `proxy` option.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { submitScoped, type AppFuture, type DataFlowKernel } from 'tsflow'
import { borrow, dispose, factoryOf, intoOwned, isProxy, ownedProxy, type ObjectKey, type OwnedProxy, type Store } from 'tsflow/proxy'
import { BenchUsage } from '../lib/args.js'
import { makeData, taskNoProxy, taskProxy } from './tasks.js'

/** The seed's modes, run by default. */
export const MODES = ['none', 'default-proxy', 'manual-proxy', 'owned-proxy'] as const
/**
 * Also accepted (not run by default, not in the seed): `executor-proxy`, the tasks of mode none on
 * an executor with tsflow's `proxy: { store, threshold }` option, which proxies large arguments
 * and results itself.
 */
export const ALL_MODES = [...MODES, 'executor-proxy'] as const
export type Mode = (typeof ALL_MODES)[number]

export const RESULT_COLUMNS = [
  'executor',
  'connector',
  'data_management',
  'stage_task_counts',
  'stage_bytes_sizes',
  'stage_repeat',
  'task_sleep',
  'workflow_start_timestamp',
  'workflow_end_timestamp',
  'workflow_makespan_s',
] as const

export interface RunResult {
  executor: string
  connector: string
  data_management: Mode
  stage_task_counts: string
  stage_bytes_sizes: string
  stage_repeat: number
  task_sleep: number
  workflow_start_timestamp: number
  workflow_end_timestamp: number
  workflow_makespan_s: number
}

export interface WorkflowShape {
  stageTaskCounts: number[]
  stageBytesSizes: number[]
  stageRepeat: number
  taskSleep: number
  fill: 'random' | 'zeros'
}

export interface WorkflowContext {
  kernel: DataFlowKernel
  /** the store of the proxy modes (cache size 0, so no process keeps objects alive by caching) */
  store: Store | undefined
  executorLabel: string
  connectorLabel: string
  /** every key a run stored: the end-of-bench check looks each one up */
  madeKeys: Map<string, ObjectKey>
  /** executor labels when executor-proxy runs too: the plain executor and the one with the proxy option */
  executors?: { plain: string; proxied: string }
}

/**
 * The stage rules: a stage of several tasks follows a stage of one task (fan-out) or of the same
 * number of tasks (1:1); a stage of one task after several fans in. The first stage gets one
 * initial object per task. Anything else is refused here, before a run starts.
 */
export function validateShape(counts: readonly number[], sizes: readonly number[]): void {
  if (counts.length === 0) throw new BenchUsage('--stage-task-counts needs at least one stage')
  counts.forEach((count, stage) => {
    if (!Number.isInteger(count) || count <= 0) throw new BenchUsage(`--stage-task-counts: stage ${stage} has ${count} tasks; every stage needs a whole number of tasks >= 1`)
    const before = counts[stage - 1]
    if (stage > 0 && count > 1 && before !== 1 && before !== count) {
      throw new BenchUsage(
        `--stage-task-counts ${counts.join(' ')}: stage ${stage} has ${count} tasks but follows a stage of ${before}; ` +
          `a stage of several tasks must follow a stage of one task (fan-out) or of the same number (1:1); a stage of one task may follow any (fan-in)`,
      )
    }
  })
  if (sizes.length !== counts.length + 1) {
    throw new BenchUsage(`--stage-bytes-sizes needs ${counts.length + 1} values (the initial data, then each of the ${counts.length} stages' output), got ${sizes.length}`)
  }
}

/** Which inputs each task of a stage gets: 1:1, fan-out of a single input, or fan-in of all. */
export function stageInputs<T>(inputs: readonly T[], tasks: number): T[][] {
  if (inputs.length === tasks) return inputs.map((input) => [input])
  if (inputs.length === 1) return Array.from({ length: tasks }, () => [inputs[0]!])
  if (tasks === 1) return [[...inputs]]
  throw new BenchUsage(`a stage of ${tasks} tasks cannot take ${inputs.length} inputs (the stage rules were not checked?)`)
}

const collect = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  try {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  } catch {
    return () => {}
  }
})()

/** A full GC of this process, so a run starts (and ends) without the last run's garbage. */
export function gc(): void {
  collect()
  collect()
}

function keyOf(proxy: unknown): ObjectKey {
  return factoryOf(proxy).key
}

async function evictAll(store: Store, proxies: readonly unknown[]): Promise<void> {
  await Promise.all(proxies.map((proxy) => store.evict(keyOf(proxy))))
}

export async function runWorkflow(context: WorkflowContext, mode: Mode, shape: WorkflowShape): Promise<RunResult> {
  const { kernel, store } = context
  const { stageTaskCounts: counts, stageBytesSizes: sizes } = shape
  validateShape(counts, sizes)
  if (mode !== 'none' && !store) throw new Error(`mode ${mode} needs a store`)
  const owned = mode === 'owned-proxy'
  const drop = (proxies: readonly unknown[]) => Promise.all(proxies.map((proxy) => dispose(proxy as OwnedProxy<Uint8Array>)))
  const remember = (proxies: readonly unknown[]) => {
    for (const proxy of proxies) {
      try {
        if (!isProxy(proxy)) continue
        const key = keyOf(proxy)
        context.madeKeys.set(JSON.stringify(key), key)
      } catch {
        // not a proxy with a factory: nothing stored to look up
      }
    }
  }
  const on = context.executors ? { executors: [mode === 'executor-proxy' ? context.executors.proxied : context.executors.plain] } : {}
  const submitNoProxy = taskNoProxy.with({ dfk: kernel, ...on })
  const submitProxy = taskProxy.with({ dfk: kernel, ...on })
  const bytesOnly = mode === 'none' || mode === 'executor-proxy'

  gc()
  const start = Date.now() / 1000
  // default-proxy: everything is evicted only after the run
  const evictAtEnd: unknown[] = []
  let current: unknown[] = []
  for (let repeat = 0; repeat < shape.stageRepeat; repeat++) {
    const initial = Array.from({ length: counts[0]! }, () => makeData(sizes[0]!, shape.fill))
    if (bytesOnly) current = initial
    else if (owned) current = await Promise.all(initial.map((data) => ownedProxy(store!, data)))
    else current = await Promise.all(initial.map((data) => store!.proxy(data)))
    if (!bytesOnly) remember(current)

    for (let stage = 0; stage < counts.length; stage++) {
      const perTask = stageInputs(current, counts[stage]!)
      const outputBytes = sizes[stage + 1]!
      let futures: AppFuture<unknown>[]
      if (bytesOnly) {
        futures = perTask.map((inputs) => submitNoProxy(outputBytes, shape.taskSleep, shape.fill, ...(inputs as Uint8Array[])))
      } else if (owned) {
        // Each task gets borrows of its inputs, given back when its future settles (scoped submit).
        futures = perTask.map((inputs) => submitScoped(submitProxy, outputBytes, shape.taskSleep, shape.fill, ...inputs.map((input) => borrow(input as OwnedProxy<Uint8Array>))))
      } else {
        futures = perTask.map((inputs) => submitProxy(outputBytes, shape.taskSleep, shape.fill, ...(inputs as Uint8Array[])))
      }
      const outputs = await Promise.all(futures)
      if (bytesOnly) {
        for (const output of outputs) if (!(output instanceof Uint8Array) || output.byteLength !== outputBytes) throw new Error(`a task returned ${Object.prototype.toString.call(output)} instead of ${outputBytes} bytes`)
      } else remember(outputs)

      if (mode === 'default-proxy') evictAtEnd.push(...current)
      else if (mode === 'manual-proxy') await evictAll(store!, current)
      else if (owned) await drop(current)
      current = owned ? outputs.map((proxy) => intoOwned(proxy)) : outputs
    }
    // The last stage's outputs are the run's results: dropped at the end of the repeat.
    if (mode === 'manual-proxy') await evictAll(store!, current)
    else if (owned) await drop(current)
    else if (mode === 'default-proxy') evictAtEnd.push(...current)
    current = []
  }
  gc()
  const end = Date.now() / 1000
  // As in the seed, default-proxy's clean-up is outside the measured run (its memory stays
  // allocated until the end, which is what the mode shows). Unlike the seed, the last stage's
  // outputs are evicted too, so nothing is left in the store.
  if (mode === 'default-proxy') await evictAll(store!, evictAtEnd)

  return {
    executor: context.executorLabel,
    connector: mode === 'none' ? 'none' : context.connectorLabel,
    data_management: mode,
    stage_task_counts: counts.join('-'),
    stage_bytes_sizes: sizes.join('-'),
    stage_repeat: shape.stageRepeat,
    task_sleep: shape.taskSleep,
    workflow_start_timestamp: start,
    workflow_end_timestamp: end,
    workflow_makespan_s: end - start,
  }
}
