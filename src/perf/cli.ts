/**
 * `tsflow-perf` from arguments to exit status: parse, load the config, start the kernel, run
 * the iterations, clean up (always, with a deadline), append the result line, log to MLflow.
 * Ctrl-C (or SIGTERM) stops submitting and waiting, cleans up and reports what was measured;
 * a second one exits at once.
 */
import { resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { load, type DataFlowKernel } from '../dataflow/kernel.js'
import type { Config } from '../config/config.js'
import { TSFLOW_VERSION } from '../protocol/version.js'
import { settledWithin } from '../util/deferred.js'
import { parsePerfArgs, UsageError, USAGE, type PerfOptions } from './args.js'
import { defaultConfig, describeExecutors, loadConfigFile, summarizeExecutors } from './config-file.js'
import { runCompare } from './compare.js'
import { logToMlflow } from './mlflow.js'
import { formatCount, formatRate, Reporter, type Output } from './report.js'
import { appendRecord, finalRate, hostInfo, parametersOf, prepareResultsDir, setupOf, type PerfRecord, type RunStatus } from './results.js'
import { runIterations, type RunOutcome } from './run.js'

export const ExitCode = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const

/** How long outstanding tasks get at cleanup: after a normal run there are none. */
const CLEANUP_DEADLINE_MS = { finished: 10_000, stopped: 2_000 }
/** Extra time the executors' own bounded shutdown steps may take before we stop waiting. */
const CLEANUP_SLACK_MS = 20_000

export interface CliIo {
  stdout: Output
  stderr: Output
  /** live progress line (stdout is a terminal) */
  tty: boolean
  env: NodeJS.ProcessEnv
  /** installs signal handlers; default: process signals */
  onSignal?: (signal: NodeJS.Signals, handler: () => void) => () => void
}

export async function runPerf(argv: readonly string[], io: CliIo): Promise<number> {
  // The one subcommand: compare reads histories and starts nothing.
  if (argv[0] === 'compare') return runCompare(argv.slice(1), io)
  const report = new Reporter(io.stdout, io.stderr, io.tty)
  let options: PerfOptions
  let config: Config
  try {
    const parsed = parsePerfArgs(argv, io.env)
    if (parsed === 'help') {
      io.stdout.write(USAGE)
      return ExitCode.ok
    }
    if (parsed === 'version') {
      io.stdout.write(`tsflow-perf ${TSFLOW_VERSION}\n`)
      return ExitCode.ok
    }
    options = parsed
    config = options.configFile ? await loadConfigFile(options.configFile) : defaultConfig()
    if (options.monitoring) {
      const monitoring = { enabled: true, resourceIntervalMs: options.resourceIntervalMs, db: options.monitoringDb }
      config = { ...config, monitoring: Object.fromEntries(Object.entries(monitoring).filter(([, value]) => value !== undefined)) }
    }
    try {
      prepareResultsDir(options.resultsDir)
    } catch (error) {
      throw new UsageError(`--results-dir ${options.resultsDir}: cannot create it: ${(error as Error).message}`)
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    report.error(`${error.message}\nRun tsflow-perf --help for usage.`)
    return ExitCode.usage
  }
  for (const warning of options.warnings) report.warn(warning)

  const controller = new AbortController()
  let signals = 0
  const stop = (signal: NodeJS.Signals) => () => {
    if (++signals > 1) {
      report.error(`${signal} again: exiting without waiting for cleanup`)
      process.exit(ExitCode.interrupted)
    }
    report.warn(`${signal}: stopping; cleaning up (press Ctrl-C again to exit at once)`)
    controller.abort()
  }
  const install = io.onSignal ?? processSignal
  const uninstall = [install('SIGINT', stop('SIGINT')), install('SIGTERM', stop('SIGTERM'))]

  try {
    return await measure(options, config, report, controller.signal, io)
  } finally {
    for (const remove of uninstall) remove()
  }
}

async function measure(options: PerfOptions, config: Config, report: Reporter, signal: AbortSignal, io: CliIo): Promise<number> {
  const startedAt = new Date()
  const configFile = options.configFile ? resolve(options.configFile) : null
  let kernel: DataFlowKernel
  try {
    kernel = await load(config)
  } catch (error) {
    const message = (error as Error)?.message ?? String(error)
    if (error instanceof ConfigError) {
      report.error(`${configFile ? `--config ${options.configFile}` : 'the default config'}: invalid config: ${message}`)
      return ExitCode.usage
    }
    report.error(`the executors failed to start: ${message}`)
    return ExitCode.failed
  }

  const executors = kernel.config.executors
  const summary = summarizeExecutors(executors)
  const host = hostInfo()
  report.line(
    `tsflow-perf ${TSFLOW_VERSION} on ${host.hostname} (${host.cores} CPUs, node ${host.node}): ${summary}; ` +
      `${describeIterate(options)}, argsize ${options.argsize}${options.resources ? `, resources ${JSON.stringify(options.resources)}` : ''}`,
  )

  let outcome: RunOutcome
  try {
    outcome = await runIterations({ ...options, kernel, signal, hooks: report, executors, progressIntervalMs: io.tty ? 100 : 0 })
  } catch (error) {
    outcome = { iterations: [], stopReason: 'failed', error: error instanceof Error ? error : new Error(String(error)) }
  }
  const status: RunStatus = signal.aborted ? 'interrupted' : outcome.error ? 'failed' : 'finished'
  const rate = finalRate(outcome.iterations)
  report.line(finalLine(status, rate, outcome, summary, options.argsize))
  if (outcome.error) report.error(`failed: ${outcome.error.message}`)

  const executorDescriptions = describeExecutors(executors)
  const deadline = status === 'finished' ? CLEANUP_DEADLINE_MS.finished : CLEANUP_DEADLINE_MS.stopped
  const cleaned = await settledWithin(kernel.cleanup({ deadlineMs: deadline }), deadline + CLEANUP_SLACK_MS)
  if (!cleaned) report.warn(`cleanup did not finish within ${Math.round((deadline + CLEANUP_SLACK_MS) / 1000)} s; exiting anyway`)
  const recorded = kernel.recorderStats
  if (recorded) {
    report.line(`monitoring: ${formatCount(recorded.written)} of ${formatCount(recorded.sent)} records written in ${formatCount(recorded.batches)} batches; writer lag ${recorded.lagMs} ms at the end, ${recorded.maxLagMs} ms at most`)
    for (const error of recorded.errors) report.warn(`monitoring: ${error}`)
  }

  const record: PerfRecord = {
    record: 'tsflow-perf',
    recordVersion: 1,
    timestamp: startedAt.toISOString(),
    endTimestamp: new Date().toISOString(),
    status,
    ...(outcome.error ? { error: outcome.error.message } : {}),
    tsflowVersion: TSFLOW_VERSION,
    host,
    setup: setupOf(executorDescriptions, outcome.iterations),
    config: { file: configFile, summary, executors: executorDescriptions, retries: kernel.config.retries, runDir: kernel.runDir },
    parameters: parametersOf(options),
    iterations: outcome.iterations,
    tasksPerSecond: rate,
    ...(recorded ? { monitoring: { sent: recorded.sent, written: recorded.written, batches: recorded.batches, lagMs: recorded.lagMs, maxLagMs: recorded.maxLagMs, errors: [...recorded.errors] } } : {}),
    stopReason: status === 'interrupted' ? 'interrupted' : outcome.stopReason,
  }
  let exit: number = status === 'finished' ? ExitCode.ok : status === 'interrupted' ? ExitCode.interrupted : ExitCode.failed
  try {
    report.line(`results appended to ${appendRecord(options.resultsDir, record)}`)
  } catch (error) {
    report.error(`could not write the result to ${options.resultsDir}: ${(error as Error).message}`)
    report.line(`result: ${JSON.stringify(record)}`)
    if (exit === ExitCode.ok) exit = ExitCode.failed
  }
  if (options.mlflowUri) {
    try {
      const logged = await logToMlflow({ uri: options.mlflowUri, experiment: options.mlflowExperiment, env: io.env }, record)
      report.line(`mlflow: logged run ${logged.runId} in experiment '${options.mlflowExperiment}' (${logged.runUrl})`)
    } catch (error) {
      report.warn(`could not log to MLflow at ${options.mlflowUri}: ${(error as Error).message}; the result is in ${options.resultsDir}`)
    }
  }
  return exit
}

function describeIterate(options: PerfOptions): string {
  const { iterate } = options
  if (iterate.mode === 'list') return `batches of ${iterate.sizes.map(formatCount).join(', ')} tasks`
  return `${iterate.mode === 'estimate' ? 'estimating batches' : 'doubling batches'} to last ${options.timeSeconds} s`
}

/** "tsflow-perf: 21,345 tasks/s (HighThroughputExecutor htex, 1 block x 2 workers, argsize 0, 640,350 tasks in 30.0 s)" */
export function finalLine(status: RunStatus, rate: number | null, outcome: RunOutcome, summary: string, argsize: number): string {
  const last = [...outcome.iterations].reverse().find((it) => !it.partial && it.failed === 0)
  const detail = last ? `${summary}, argsize ${argsize}, ${formatCount(last.tasks)} tasks in ${Number(last.completeSeconds.toPrecision(3)).toLocaleString('en-US')} s` : ''
  if (status === 'finished' && rate !== null) return `tsflow-perf: ${formatRate(rate)} tasks/s (${detail})`
  const what = status === 'interrupted' ? 'interrupted' : 'failed'
  if (rate === null) return `tsflow-perf: ${what} before any iteration completed (${summary}, argsize ${argsize})`
  return `tsflow-perf: ${what}; last complete iteration: ${formatRate(rate)} tasks/s (${detail})`
}

function processSignal(signal: NodeJS.Signals, handler: () => void): () => void {
  process.on(signal, handler)
  return () => process.removeListener(signal, handler)
}
