/**
 * Optional sink: logs a tsflow-perf run to an MLflow tracking server through its REST API (2.0),
 * as the parsl-perf-runs project does with the Python client. One MLflow run per tsflow-perf run:
 * params are the config and command line, metrics the per-iteration rates (step = iteration)
 * and the final rate. Uses global fetch; every request has a timeout.
 */
import { userInfo } from 'node:os'
import type { PerfRecord } from './results.js'

/** MLflow's documented per-request limits of runs/log-batch. */
const MAX_PARAMS_PER_BATCH = 100
const MAX_METRICS_PER_BATCH = 1000
/** Key limit of every MLflow version; values kept to 500, the smallest limit servers have had. */
export const MAX_KEY_LENGTH = 250
export const MAX_PARAM_VALUE_LENGTH = 500
const MAX_TAG_VALUE_LENGTH = 5000
const DEFAULT_TIMEOUT_MS = 10_000

export interface MlflowTarget {
  /** tracking server base URL, e.g. http://127.0.0.1:5000 */
  uri: string
  experiment: string
  timeoutMs?: number
  /** MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_USERNAME + _PASSWORD are honoured, as by MLflow's client */
  env?: NodeJS.ProcessEnv
  fetch?: typeof fetch
}

export interface MlflowLogged {
  experimentId: string
  runId: string
  /** where the run is seen in the MLflow UI */
  runUrl: string
}

/** An error answer of the MLflow API (or a transport failure, with status 0). */
export class MlflowError extends Error {
  override readonly name = 'MlflowError'
  constructor(
    readonly endpoint: string,
    readonly status: number,
    readonly errorCode: string | undefined,
    message: string,
  ) {
    super(message)
  }
}

type Param = { key: string; value: string }
type Metric = { key: string; value: number; timestamp: number; step: number }

export async function logToMlflow(target: MlflowTarget, record: PerfRecord): Promise<MlflowLogged> {
  const api = new MlflowApi(target)
  const experimentId = await api.experimentId(target.experiment)
  const startTime = Date.parse(record.timestamp)
  const runName = truncate(`tsflow-perf ${record.config.summary}`, MAX_PARAM_VALUE_LENGTH)
  const created = await api.post<{ run?: { info?: { run_id?: string; run_uuid?: string } } }>('runs/create', {
    experiment_id: experimentId,
    start_time: startTime,
    run_name: runName,
    tags: runTags(record, runName),
  })
  const runId = created.run?.info?.run_id ?? created.run?.info?.run_uuid
  if (typeof runId !== 'string' || runId === '') throw new MlflowError('runs/create', 200, undefined, 'the answer has no run.info.run_id')
  try {
    const params = mlflowParams(record)
    const metrics = mlflowMetrics(record)
    for (let i = 0; i < params.length; i += MAX_PARAMS_PER_BATCH) {
      await api.post('runs/log-batch', { run_id: runId, params: params.slice(i, i + MAX_PARAMS_PER_BATCH), metrics: [], tags: [] })
    }
    for (let i = 0; i < metrics.length; i += MAX_METRICS_PER_BATCH) {
      await api.post('runs/log-batch', { run_id: runId, params: [], metrics: metrics.slice(i, i + MAX_METRICS_PER_BATCH), tags: [] })
    }
    const status = record.status === 'finished' ? 'FINISHED' : record.status === 'interrupted' ? 'KILLED' : 'FAILED'
    await api.post('runs/update', { run_id: runId, status, end_time: Date.parse(record.endTimestamp) })
  } catch (error) {
    // Leave no run RUNNING forever; the original error is what gets reported.
    await api.post('runs/update', { run_id: runId, status: 'FAILED', end_time: Date.now() }).catch(() => undefined)
    throw error
  }
  return { experimentId, runId, runUrl: `${target.uri.replace(/\/+$/, '')}/#/experiments/${experimentId}/runs/${runId}` }
}

class MlflowApi {
  private readonly base: string
  private readonly headers: Record<string, string>
  private readonly fetch: typeof fetch

  constructor(private readonly target: MlflowTarget) {
    this.base = `${target.uri.replace(/\/+$/, '')}/api/2.0/mlflow/`
    this.headers = { 'content-type': 'application/json', accept: 'application/json', ...authHeader(target.env ?? process.env) }
    this.fetch = target.fetch ?? globalThis.fetch
  }

  /** The id of the experiment named `name`, creating it if it does not exist. */
  async experimentId(name: string): Promise<string> {
    const found = await this.findExperiment(name)
    if (found !== undefined) return found
    try {
      const created = await this.post<{ experiment_id?: unknown }>('experiments/create', { name })
      if (created.experiment_id === undefined) throw new MlflowError('experiments/create', 200, undefined, 'the answer has no experiment_id')
      return String(created.experiment_id)
    } catch (error) {
      // Someone else created it between our look-up and create.
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_ALREADY_EXISTS') {
        const again = await this.findExperiment(name)
        if (again !== undefined) return again
      }
      throw error
    }
  }

  private async findExperiment(name: string): Promise<string | undefined> {
    try {
      const answer = await this.request<{ experiment?: { experiment_id?: unknown; lifecycle_stage?: string } }>(
        'GET',
        `experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`,
      )
      const experiment = answer.experiment
      if (!experiment || experiment.experiment_id === undefined) throw new MlflowError('experiments/get-by-name', 200, undefined, 'the answer has no experiment')
      if (experiment.lifecycle_stage === 'deleted') {
        throw new MlflowError('experiments/get-by-name', 200, undefined, `experiment '${name}' is deleted; restore it or choose another --mlflow-experiment`)
      }
      return String(experiment.experiment_id)
    } catch (error) {
      if (error instanceof MlflowError && error.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined
      throw error
    }
  }

  post<T = unknown>(endpoint: string, body: unknown): Promise<T> {
    return this.request<T>('POST', endpoint, body)
  }

  private async request<T>(method: 'GET' | 'POST', endpoint: string, body?: unknown): Promise<T> {
    const name = endpoint.split('?')[0]!
    let response: Response
    try {
      response = await this.fetch(this.base + endpoint, {
        method,
        headers: this.headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.target.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      })
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } })?.cause
      const why = cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error)
      const timedOut = (error as Error)?.name === 'TimeoutError'
      throw new MlflowError(name, 0, undefined, timedOut ? `${method} ${name} timed out` : `${method} ${name} failed: ${why}`)
    }
    const text = await response.text()
    let json: Record<string, unknown> | undefined
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {}
    } catch {
      json = undefined
    }
    if (!response.ok) {
      const code = typeof json?.error_code === 'string' ? json.error_code : undefined
      const message = typeof json?.message === 'string' ? json.message : text.slice(0, 200) || response.statusText
      throw new MlflowError(name, response.status, code, `${method} ${name}: HTTP ${response.status}${code ? ` ${code}` : ''}: ${message}`)
    }
    if (json === undefined) throw new MlflowError(name, response.status, undefined, `${method} ${name}: the answer is not JSON (is ${this.target.uri} an MLflow server?)`)
    return json as T
  }
}

function authHeader(env: NodeJS.ProcessEnv): Record<string, string> {
  if (env.MLFLOW_TRACKING_TOKEN) return { authorization: `Bearer ${env.MLFLOW_TRACKING_TOKEN}` }
  if (env.MLFLOW_TRACKING_USERNAME && env.MLFLOW_TRACKING_PASSWORD) {
    return { authorization: `Basic ${Buffer.from(`${env.MLFLOW_TRACKING_USERNAME}:${env.MLFLOW_TRACKING_PASSWORD}`).toString('base64')}` }
  }
  return {}
}

function runTags(record: PerfRecord, runName: string): Param[] {
  let user = 'unknown'
  try {
    user = userInfo().username
  } catch {
    // no passwd entry (some containers)
  }
  const tags: Param[] = [
    { key: 'mlflow.runName', value: runName },
    { key: 'mlflow.source.name', value: 'tsflow-perf' },
    { key: 'mlflow.source.type', value: 'LOCAL' },
    { key: 'mlflow.user', value: user },
    { key: 'tsflow.version', value: record.tsflowVersion },
    { key: 'tsflow.status', value: record.status },
  ]
  if (record.error) tags.push({ key: 'tsflow.error', value: truncate(record.error, MAX_TAG_VALUE_LENGTH) })
  return tags
}

/** The record's config, host and parameters as MLflow params: unique, valid keys; short values. */
export function mlflowParams(record: PerfRecord): Param[] {
  const entries: [string, unknown][] = [
    ['tsflow_version', record.tsflowVersion],
    ['config.file', record.config.file ?? '(default local HTEX)'],
    ['config.summary', record.config.summary],
    ['time', record.parameters.timeSeconds],
    ['argsize', record.parameters.argsize],
    ['iterate', Array.isArray(record.parameters.iterate) ? record.parameters.iterate.join(',') : record.parameters.iterate],
    ['resources', record.parameters.resources ? JSON.stringify(record.parameters.resources) : 'none'],
  ]
  for (const [key, value] of Object.entries(record.host)) entries.push([`host.${key}`, value])
  // The fields tsflow-perf compare groups by, so MLflow can group runs the same way.
  for (const [key, value] of Object.entries(record.setup ?? {})) entries.push([`setup.${key}`, value ?? 'none'])
  record.config.executors.forEach((description, index) => {
    const label = typeof description.label === 'string' ? description.label : String(index)
    flatten(`executor.${label}`, description, entries)
  })
  const params: Param[] = []
  const seen = new Set<string>()
  for (const [rawKey, value] of entries) {
    if (value === undefined) continue
    let key = mlflowKey(rawKey)
    for (let n = 2; seen.has(key); n++) key = mlflowKey(`${rawKey.slice(0, MAX_KEY_LENGTH - 4)}_${n}`)
    seen.add(key)
    params.push({ key, value: truncate(typeof value === 'string' ? value : JSON.stringify(value) ?? String(value), MAX_PARAM_VALUE_LENGTH) })
  }
  return params
}

/** Per-iteration metrics with step = iteration number, and the final tasks_per_sec. */
export function mlflowMetrics(record: PerfRecord): Metric[] {
  const metrics: Metric[] = []
  const at = Date.parse(record.endTimestamp)
  const add = (key: string, value: number | undefined, step: number) => {
    if (value !== undefined && Number.isFinite(value)) metrics.push({ key, value, timestamp: at, step })
  }
  for (const it of record.iterations) {
    add('tasks', it.tasks, it.iteration)
    add('completed', it.completed, it.iteration)
    add('submit_seconds', it.submitSeconds, it.iteration)
    add('complete_seconds', it.completeSeconds, it.iteration)
    add('submitted_per_sec', it.submittedPerSec, it.iteration)
    add('completed_per_sec', it.completedPerSec, it.iteration)
    add('workers', it.workers, it.iteration)
  }
  if (record.tasksPerSecond !== null) add('tasks_per_sec', record.tasksPerSecond, record.iterations.at(-1)?.iteration ?? 0)
  return metrics
}

function flatten(prefix: string, value: unknown, into: [string, unknown][]): void {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(`${prefix}.${key}`, inner, into)
  } else {
    into.push([prefix, value])
  }
}

/**
 * MLflow accepts letters, digits, _ - . space and /, and refuses keys that are not already a
 * normalized path (no leading or double slash, no '.' or '..' segment); 250 characters at most.
 */
export function mlflowKey(raw: string): string {
  const cleaned = raw.replace(/[^A-Za-z0-9_\-. /]/g, '_').replace(/\.{2,}/g, '.')
  const key = cleaned
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.')
    .join('/')
  return (key || '_').slice(0, MAX_KEY_LENGTH).replace(/\/+$/, '')
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`
}
