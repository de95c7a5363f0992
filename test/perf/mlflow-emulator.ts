// An in-test MLflow tracking server: the REST 2.0 endpoints tsflow-perf uses, with MLflow's
// request checks, response shapes and error answers ({ error_code, message } with the HTTP
// status MLflow uses), so the sink is tested against the protocol rather than a mock.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Experiment {
  experiment_id: string
  name: string
  artifact_location: string
  lifecycle_stage: 'active' | 'deleted'
  creation_time: number
  last_update_time: number
}
export interface RunInfo {
  run_id: string
  run_uuid: string
  run_name: string
  experiment_id: string
  user_id: string
  status: string
  start_time: number
  end_time?: number
  artifact_uri: string
  lifecycle_stage: 'active'
}
export interface StoredRun {
  info: RunInfo
  params: Map<string, string>
  metrics: { key: string; value: number; timestamp: number; step: number }[]
  tags: Map<string, string>
}
export interface Call {
  method: string
  endpoint: string
  body: any
  status: number
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

const KEY = /^[/\w.\- ]*$/
const MAX_PARAM_VALUE = 6000
const RUN_STATUSES = new Set(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'])

export class MlflowEmulator {
  readonly experiments = new Map<string, Experiment>()
  readonly runs = new Map<string, StoredRun>()
  readonly calls: Call[] = []
  /** endpoints that answer 500 INTERNAL_ERROR, to test the sink's failure path */
  readonly failing = new Set<string>()
  private server: Server | undefined
  private nextExperiment = 1
  private nextRun = 1

  constructor() {
    // Like a fresh MLflow server: the Default experiment exists with id "0".
    this.experiments.set('0', this.experiment('0', 'Default'))
  }

  async start(): Promise<string> {
    this.server = createServer((request, response) => void this.handle(request, response))
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  async stop(): Promise<void> {
    if (!this.server) return
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server!.close(() => resolve()))
  }

  callsTo(endpoint: string): Call[] {
    return this.calls.filter((call) => call.endpoint === endpoint)
  }

  private experiment(id: string, name: string): Experiment {
    const now = Date.now()
    return { experiment_id: id, name, artifact_location: `mlflow-artifacts:/${id}`, lifecycle_stage: 'active', creation_time: now, last_update_time: now }
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost')
    const endpoint = url.pathname.replace(/^\/api\/2\.0\/mlflow\//, '')
    let body: any
    let status = 200
    let answer: unknown
    try {
      const text = await readBody(request)
      if (request.method === 'POST') {
        if (!String(request.headers['content-type']).includes('application/json')) throw new ApiError(400, 'BAD_REQUEST', 'Content-Type must be application/json')
        try {
          body = JSON.parse(text || '{}')
        } catch {
          throw new ApiError(400, 'MALFORMED_REQUEST', 'the request body is not valid JSON')
        }
      }
      if (this.failing.has(endpoint)) throw new ApiError(500, 'INTERNAL_ERROR', `${endpoint} is failing on purpose`)
      answer = this.route(request.method ?? 'GET', endpoint, url.searchParams, body)
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      status = error.status
      answer = { error_code: error.code, message: error.message }
    }
    this.calls.push({ method: request.method ?? 'GET', endpoint, body: body ?? Object.fromEntries(url.searchParams), status })
    response.writeHead(status, { 'content-type': 'application/json' })
    response.end(JSON.stringify(answer))
  }

  private route(method: string, endpoint: string, query: URLSearchParams, body: any): unknown {
    const route = `${method} ${endpoint}`
    switch (route) {
      case 'GET experiments/get-by-name': {
        const name = query.get('experiment_name')
        if (!name) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Missing value for required parameter 'experiment_name'.")
        const found = [...this.experiments.values()].find((e) => e.name === name)
        if (!found) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Could not find experiment with name '${name}'`)
        return { experiment: found }
      }
      case 'POST experiments/create': {
        const name = body.name
        if (typeof name !== 'string' || name === '') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Missing value for required parameter 'name'.")
        if ([...this.experiments.values()].some((e) => e.name === name)) throw new ApiError(400, 'RESOURCE_ALREADY_EXISTS', `Experiment '${name}' already exists.`)
        const id = String(this.nextExperiment++)
        this.experiments.set(id, this.experiment(id, name))
        return { experiment_id: id }
      }
      case 'POST runs/create': {
        const experimentId = body.experiment_id
        if (typeof experimentId !== 'string') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Invalid value for parameter 'experiment_id': must be a string")
        if (!this.experiments.has(experimentId)) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `No Experiment with id=${experimentId} exists`)
        const runId = `${(this.nextRun++).toString(16).padStart(32, '0')}`
        const tags = new Map<string, string>()
        for (const tag of body.tags ?? []) tags.set(checkKey(tag.key, 'tag'), String(tag.value))
        const info: RunInfo = {
          run_id: runId,
          run_uuid: runId,
          run_name: body.run_name ?? tags.get('mlflow.runName') ?? 'unnamed',
          experiment_id: experimentId,
          user_id: tags.get('mlflow.user') ?? '',
          status: 'RUNNING',
          start_time: integer(body.start_time, 'start_time'),
          artifact_uri: `mlflow-artifacts:/${experimentId}/${runId}/artifacts`,
          lifecycle_stage: 'active',
        }
        this.runs.set(runId, { info, params: new Map(), metrics: [], tags })
        return { run: { info, data: { tags: [...tags].map(([key, value]) => ({ key, value })) }, inputs: {} } }
      }
      case 'POST runs/log-batch': {
        const run = this.run(body.run_id)
        const params: any[] = body.params ?? []
        const metrics: any[] = body.metrics ?? []
        const tags: any[] = body.tags ?? []
        if (params.length > 100) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `A batch logging request can contain at most 100 params. Got ${params.length} params.`)
        if (metrics.length > 1000) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `A batch logging request can contain at most 1000 metrics. Got ${metrics.length} metrics.`)
        if (params.length + metrics.length + tags.length > 1000) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', 'A batch logging request can contain at most 1000 entities.')
        for (const param of params) {
          const key = checkKey(param.key, 'param')
          const value = String(param.value)
          if (value.length > MAX_PARAM_VALUE) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Param value '${value.slice(0, 20)}...' had length ${value.length}, which exceeded length limit of ${MAX_PARAM_VALUE}`)
          const old = run.params.get(key)
          if (old !== undefined && old !== value) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Changing param values is not allowed. Param with key='${key}' was already logged with value='${old}'`)
          run.params.set(key, value)
        }
        for (const metric of metrics) {
          const key = checkKey(metric.key, 'metric')
          if (typeof metric.value !== 'number') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Got invalid value ${metric.value} for metric '${key}'`)
          run.metrics.push({ key, value: metric.value, timestamp: integer(metric.timestamp, 'timestamp'), step: integer(metric.step ?? 0, 'step') })
        }
        for (const tag of tags) run.tags.set(checkKey(tag.key, 'tag'), String(tag.value))
        return {}
      }
      case 'POST runs/update': {
        const run = this.run(body.run_id)
        if (body.status !== undefined) {
          if (!RUN_STATUSES.has(body.status)) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid value ${body.status} for parameter 'status'`)
          run.info.status = body.status
        }
        if (body.end_time !== undefined) run.info.end_time = integer(body.end_time, 'end_time')
        return { run_info: run.info }
      }
      default:
        throw new ApiError(404, 'ENDPOINT_NOT_FOUND', `No endpoint ${route}`)
    }
  }

  private run(runId: unknown): StoredRun {
    if (typeof runId !== 'string' || runId === '') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', "Missing value for required parameter 'run_id'.")
    const run = this.runs.get(runId)
    if (!run) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Run '${runId}' not found`)
    return run
  }
}

function checkKey(key: unknown, what: string): string {
  if (typeof key !== 'string' || key === '') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Missing value for required parameter '${what} key'.`)
  if (key.length > 250) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `${what} key '${key.slice(0, 20)}...' had length ${key.length}, which exceeded length limit of 250`)
  if (!KEY.test(key) || key.startsWith('/') || key.includes('..')) {
    throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid ${what} name: '${key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), and slashes (/).`)
  }
  return key
}

function integer(value: unknown, name: string): number {
  const n = typeof value === 'string' ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid value ${JSON.stringify(value)} for parameter '${name}': must be an integer`)
  return n
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => (text += chunk))
    request.on('end', () => resolve(text))
    request.on('error', reject)
  })
}
