/**
 * The measurement loop: for each planned batch, submit that many no-op tasks to the loaded
 * kernel, time the submission and the completion, and let the planner pick the next batch.
 * Submission yields to the event loop between chunks, so results flow back, progress can be
 * shown and Ctrl-C is noticed while a large batch is being submitted.
 */
import { performance } from 'node:perf_hooks'
import type { Executor } from '../executors/base.js'
import type { ResourceSpec } from '../protocol/resources.js'
import type { AppFuture } from '../dataflow/future.js'
import { EMPTY_OPTIONS, type DataFlowKernel } from '../dataflow/kernel.js'
import type { CallOptions } from '../dataflow/app-definition.js'
import type { IterateMode } from './args.js'
import { noopApp, NOOP_RESULT } from './apps.js'
import { connectedWorkers } from './config-file.js'
import { planNext, type Measurement } from './plan.js'
import type { IterationResult } from './results.js'

/** Tasks submitted per turn of the event loop. */
export const SUBMIT_CHUNK = 2048

export interface ProgressState {
  iteration: number
  tasks: number
  submitted: number
  completed: number
  elapsedSeconds: number
}

export interface RunHooks {
  iterationStart?(iteration: number, tasks: number): void
  progress?(state: ProgressState): void
  iterationEnd?(result: IterationResult): void
}

export interface RunOptions {
  /** the started kernel the tasks go to */
  kernel: DataFlowKernel
  iterate: IterateMode
  timeSeconds: number
  argsize: number
  resources: ResourceSpec | undefined
  /** Aborting stops submitting, stops waiting and ends the run with a partial iteration. */
  signal: AbortSignal
  hooks?: RunHooks
  /** How often hooks.progress is called during an iteration; 0 never. Default 100 ms. */
  progressIntervalMs?: number
  /** The kernel's executors, asked after each iteration how many workers were connected. */
  executors?: readonly Executor[]
}

export interface RunOutcome {
  iterations: IterationResult[]
  stopReason: string
  /** set when tasks failed: the run stops at the first iteration with failures */
  error?: Error
}

/** Runs iterations on the loaded kernel until the planner stops or the signal aborts. */
export async function runIterations(options: RunOptions): Promise<RunOutcome> {
  const payload = new Uint8Array(options.argsize)
  const { kernel } = options
  // Exactly what calling an app does: shared empty options skip per-call validation.
  const callOptions: CallOptions = options.resources ? { resources: options.resources } : EMPTY_OPTIONS
  const call = (payload: Uint8Array): AppFuture<number> => kernel.submit<number>(noopApp, [payload], callOptions)
  const iterations: IterationResult[] = []
  const measured: Measurement[] = []
  for (;;) {
    if (options.signal.aborted) return { iterations, stopReason: 'interrupted' }
    const plan = planNext(options.iterate, options.timeSeconds, measured)
    if (plan.next === undefined) return { iterations, stopReason: plan.stop ?? 'done' }
    const number = iterations.length + 1
    options.hooks?.iterationStart?.(number, plan.next)
    const batch = await runBatch(number, plan.next, call, payload, options)
    const workers = options.executors ? connectedWorkers(options.executors) : undefined
    const result: IterationResult = workers ? { ...batch.result, ...workers } : batch.result
    iterations.push(result)
    options.hooks?.iterationEnd?.(result)
    if (result.partial) return { iterations, stopReason: 'interrupted' }
    if (result.failed > 0) {
      const error = new Error(
        `${result.failed} of ${result.tasks} tasks failed in iteration ${number}; the first: ${describeError(batch.firstError)}`,
        { cause: batch.firstError },
      )
      return { iterations, stopReason: 'failed', error }
    }
    measured.push({ tasks: result.tasks, completeSeconds: result.completeSeconds })
  }
}

async function runBatch(
  iteration: number,
  tasks: number,
  call: (payload: Uint8Array) => AppFuture<number>,
  payload: Uint8Array,
  options: RunOptions,
): Promise<{ result: IterationResult; firstError: unknown }> {
  const { signal } = options
  let submitted = 0
  let completed = 0
  let failed = 0
  let firstError: unknown
  let submitting = true
  let lastResultAt = 0
  let wake!: () => void
  const finished = new Promise<void>((resolve) => (wake = resolve))
  const onAbort = () => wake()
  signal.addEventListener('abort', onAbort, { once: true })

  const started = performance.now()
  const elapsed = () => (performance.now() - started) / 1000
  const ticker =
    options.hooks?.progress && (options.progressIntervalMs ?? 100) > 0
      ? setInterval(() => options.hooks!.progress!({ iteration, tasks, submitted, completed, elapsedSeconds: elapsed() }), options.progressIntervalMs ?? 100)
      : undefined

  const settledOne = (future: AppFuture<number>) => {
    completed++
    if (!future.succeeded) {
      failed++
      firstError ??= future.exception()
    } else if (future.settledResult() !== NOOP_RESULT) {
      failed++
      firstError ??= new Error(`the no-op task returned ${JSON.stringify(future.settledResult())} instead of ${NOOP_RESULT}`)
    }
    if (!submitting && completed === submitted) {
      lastResultAt = performance.now()
      wake()
    }
  }

  let submitEnd = started
  try {
    while (submitted < tasks && !signal.aborted) {
      const chunkEnd = Math.min(tasks, submitted + SUBMIT_CHUNK)
      while (submitted < chunkEnd) {
        const future = call(payload)
        submitted++
        future.onSettled(() => settledOne(future))
      }
      // Let the executor send this chunk and results come back before the next one.
      if (submitted < tasks) await new Promise<void>((resolve) => setImmediate(resolve))
    }
    submitEnd = performance.now()
    submitting = false
    if (completed === submitted) lastResultAt = performance.now()
    else await finished
  } finally {
    submitting = false
    if (ticker) clearInterval(ticker)
    signal.removeEventListener('abort', onAbort)
  }

  const partial = completed < tasks
  const submitSeconds = (submitEnd - started) / 1000
  const completeSeconds = ((partial ? performance.now() : lastResultAt) - started) / 1000
  const result: IterationResult = {
    iteration,
    tasks: submitted,
    completed,
    failed,
    submitSeconds,
    completeSeconds,
    submittedPerSec: rate(submitted, submitSeconds),
    completedPerSec: rate(completed, completeSeconds),
  }
  if (partial) result.partial = true
  options.hooks?.progress?.({ iteration, tasks, submitted, completed, elapsedSeconds: completeSeconds })
  return { result, firstError }
}

/** Tasks per second; a duration below the clock's resolution counts as 1 µs. */
export function rate(tasks: number, seconds: number): number {
  return tasks === 0 ? 0 : tasks / Math.max(seconds, 1e-6)
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return `${typeof code === 'string' ? `${code} ` : ''}${error.name}: ${error.message}`
  }
  return String(error)
}
