/**
 * The dashboard server of `tsflow monitor` (docs/monitoring.md "Dashboard"): node:http serving
 * protocol/dashboard.ts's API from the monitoring database (read-only, db.ts; SQL in queries.ts),
 * the page (web/page.ts), vega and vega-lite from
 * node_modules, server-sent events and `/metrics`.
 *
 * Answers are cached until the database changes (SQLite's data_version), so any number of open
 * pages refreshing on the same event cost one query each. The event stream polls the database
 * only while someone listens.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import {
  DASHBOARD_KEEPALIVE_MS,
  DASHBOARD_POLL_MS,
  GANTT_DEFAULT,
  GANTT_MAX,
  RESOURCE_TASKS_DEFAULT,
  RESOURCE_TASKS_MAX,
  STATE_BUCKETS_DEFAULT,
  STATE_BUCKETS_MAX,
  TASK_PAGE_DEFAULT,
  TASK_PAGE_MAX,
  TASK_SORT_KEYS,
  type TaskSortKey,
  type WorkflowList,
} from '../../protocol/dashboard.js'
import { STATE_CODES } from '../../protocol/monitoring.js'
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from '../../util/prometheus.js'
import { DashboardDb } from './db.js'
import { PAGE_HTML, WEB_ASSETS } from './web/page.js'
import { taskDetail, taskPage, workflowDetail, workflowSummaries } from './queries.js'
import { appSummaries, gantt, infrastructure, resources, statesOverTime } from './views.js'

export interface DashboardOptions {
  /** the monitoring database file */
  readonly db: string
  /** default 0: a free port */
  readonly port?: number
  /** default 127.0.0.1 */
  readonly host?: string
  /** how often the event stream looks for changes (ms, default DASHBOARD_POLL_MS) */
  readonly pollMs?: number
  /** keep-alive comment interval (ms, default DASHBOARD_KEEPALIVE_MS) */
  readonly keepAliveMs?: number
}

export interface Dashboard {
  /** `http://host:port/` */
  readonly url: string
  readonly port: number
  /** event stream clients connected now */
  listeners(): number
  close(): Promise<void>
}

const require = createRequire(import.meta.url)
/** The browser builds of the chart libraries, by their /static/ name. */
const VENDOR: Record<string, () => string> = {
  'vega.min.js': () => join(dirname(require.resolve('vega/package.json')), 'build', 'vega.min.js'),
  'vega-lite.min.js': () => join(dirname(require.resolve('vega-lite/package.json')), 'build', 'vega-lite.min.js'),
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** Query parameters, checked: unknown names, repeats and bad values are 400s naming the parameter. */
class Params {
  private readonly values = new Map<string, string>()
  constructor(search: URLSearchParams, known: readonly string[]) {
    for (const [name, value] of search) {
      if (!known.includes(name)) throw new HttpError(400, `unknown parameter '${name}'${known.length ? `; this route takes ${known.join(', ')}` : '; this route takes none'}`)
      if (this.values.has(name)) throw new HttpError(400, `parameter '${name}' is given twice`)
      if (value !== '') this.values.set(name, value)
    }
  }
  text(name: string): string | undefined {
    return this.values.get(name)
  }
  int(name: string, fallback: number, min: number, max: number): number {
    const text = this.values.get(name)
    if (text === undefined) return fallback
    const value = Number(text)
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new HttpError(400, `parameter '${name}' must be a whole number from ${min} to ${max} (got '${text}')`)
    }
    return value
  }
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const text = this.values.get(name)
    if (text === undefined) return fallback
    if (!(choices as readonly string[]).includes(text)) throw new HttpError(400, `parameter '${name}' must be one of ${choices.join(', ')} (got '${text}')`)
    return text as T
  }
}

const integerPath = (text: string, what: string): number => {
  if (!/^\d{1,15}$/.test(text)) throw new HttpError(404, `no ${what} '${decodeURIComponent(text)}' (expected a number)`)
  return Number(text)
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const db = new DashboardDb(options.db)
  // Fails now, not at the first request, for a database this tsflow cannot read.
  db.connection()
  const pollMs = options.pollMs ?? DASHBOARD_POLL_MS
  const keepAliveMs = options.keepAliveMs ?? DASHBOARD_KEEPALIVE_MS
  const vendorFiles = new Map<string, Buffer>()

  // Answers by route and parameters. An answer stands while the database is unchanged; an ended
  // workflow's answers stand for good (nothing is written to it any more); and while a workflow
  // runs, an answer that took long (a view over a million tasks) is reused until it is older than
  // REUSE_FACTOR times what it cost, so pages refreshing on every event cannot keep the server
  // busier than about 1/REUSE_FACTOR.
  const REUSE_FACTOR = 5
  const CACHE_ENTRIES = 500
  const cache = new Map<string, { value: unknown; version: number; ended: boolean; atMs: number; costMs: number }>()
  // Set when an answer older than the database was reused: the event stream then pushes again
  // on its next poll, so the last event a page gets is never a stale one.
  let servedStale = false
  function cached<T>(key: string, compute: () => T, ended = false): T {
    const version = db.version()
    const entry = cache.get(key)
    const now = performance.now()
    if (entry && (entry.version === version || entry.ended)) return entry.value as T
    if (entry && now - entry.atMs < REUSE_FACTOR * entry.costMs) {
      servedStale = true
      return entry.value as T
    }
    const value = compute()
    cache.delete(key)
    cache.set(key, { value, version, ended, atMs: now, costMs: performance.now() - now })
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!)
    return value
  }
  const list = (): WorkflowList => cached('workflows', () => ({ workflows: workflowSummaries(db), db: db.path }))
  const detail = (run: number) => cached(`workflow ${run}`, () => workflowDetail(db, run))
  const found = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new HttpError(404, `no ${what}`)
    return value
  }

  function api(parts: string[], search: URLSearchParams): unknown {
    if (parts.length === 1 && parts[0] === 'workflows') {
      new Params(search, [])
      return list()
    }
    if (parts[0] !== 'workflows' || parts.length < 2) throw new HttpError(404, `no route /api/${parts.join('/')}`)
    const run = integerPath(parts[1]!, 'workflow')
    const workflow = found(detail(run), `workflow ${run} in ${db.path}`)
    const ended = workflow.endMs !== undefined
    // with the runId: a key retention freed may be given to a new workflow
    const workflowKey = `${run} ${workflow.runId}`
    const [, , view, id, ...rest] = parts
    if (view === undefined) {
      new Params(search, [])
      return workflow
    }
    if (view === 'tasks' && id !== undefined && rest.length === 0) {
      new Params(search, [])
      const taskId = integerPath(id, 'task')
      return found(cached(`task ${workflowKey} ${taskId}`, () => taskDetail(db, run, taskId), ended), `task ${taskId} in workflow ${run}`)
    }
    if (id !== undefined) throw new HttpError(404, `no route /api/${parts.join('/')}`)
    switch (view) {
      case 'tasks': {
        const p = new Params(search, ['app', 'state', 'executor', 'sort', 'order', 'offset', 'limit'])
        const query = {
          app: p.text('app'),
          state: p.text('state') === undefined ? undefined : p.oneOf('state', STATE_CODES, 'pending'),
          executor: p.text('executor'),
          sort: p.oneOf<TaskSortKey>('sort', TASK_SORT_KEYS, 'task_id'),
          order: p.oneOf('order', ['asc', 'desc'] as const, 'asc'),
          offset: p.int('offset', 0, 0, Number.MAX_SAFE_INTEGER),
          limit: p.int('limit', TASK_PAGE_DEFAULT, 1, TASK_PAGE_MAX),
        }
        return cached(`tasks ${workflowKey} ${JSON.stringify(query)}`, () => taskPage(db, run, query), ended)
      }
      case 'gantt': {
        const limit = new Params(search, ['limit']).int('limit', GANTT_DEFAULT, 2, GANTT_MAX)
        return cached(`gantt ${workflowKey} ${limit}`, () => gantt(db, run, limit), ended)
      }
      case 'states': {
        const buckets = new Params(search, ['buckets']).int('buckets', STATE_BUCKETS_DEFAULT, 2, STATE_BUCKETS_MAX)
        return cached(`states ${workflowKey} ${buckets}`, () => statesOverTime(db, run, buckets), ended)
      }
      case 'apps':
        new Params(search, [])
        return cached(`apps ${workflowKey}`, () => appSummaries(db, run), ended)
      case 'infrastructure':
        new Params(search, [])
        return cached(`infrastructure ${workflowKey}`, () => infrastructure(db, run), ended)
      case 'resources': {
        const p = new Params(search, ['limit', 'buckets'])
        const limit = p.int('limit', RESOURCE_TASKS_DEFAULT, 1, RESOURCE_TASKS_MAX)
        const buckets = p.int('buckets', STATE_BUCKETS_DEFAULT, 2, STATE_BUCKETS_MAX)
        return cached(`resources ${workflowKey} ${limit} ${buckets}`, () => resources(db, run, limit, buckets), ended)
      }
      default:
        throw new HttpError(404, `no route /api/${parts.join('/')}`)
    }
  }

  function metrics(): string {
    const registry = new MetricsRegistry()
    const workflows = list().workflows
    const running = workflows.filter((w) => w.endMs === undefined)
    registry.gauge('tsflow_dashboard_workflows', 'Workflows in the monitoring database').set(workflows.length)
    registry.gauge('tsflow_dashboard_workflows_running', 'Workflows with no end record (running, or their process died)').set(running.length)
    // Tasks per state for every running workflow and the newest 20: bounded label sets however old the database.
    const shown = new Set([...running, ...workflows.slice(0, 20)])
    const tasks = registry.gauge('tsflow_dashboard_tasks', 'Tasks per workflow (run_id) and state', ['run_id', 'state'])
    for (const w of shown) for (const [state, n] of Object.entries(w.counts)) tasks.labels(w.runId, state).set(n)
    const age = registry.gauge('tsflow_dashboard_last_event_age_seconds', "Seconds since a running workflow's newest row: how fresh the writer is", ['run_id'])
    const now = Date.now()
    for (const w of running) age.labels(w.runId).set(Math.max(0, (now - w.lastEventMs) / 1000))
    let bytes = 0
    for (const file of [db.path, `${db.path}-wal`]) {
      try {
        bytes += statSync(file).size
      } catch {
        // no WAL file between checkpoints
      }
    }
    registry.gauge('tsflow_dashboard_db_bytes', 'Size of the database file and its WAL').set(bytes)
    return registry.render()
  }

  // ---- server-sent events ----
  const clients = new Set<{ response: ServerResponse; run: number | undefined }>()
  let pollTimer: NodeJS.Timeout | undefined
  let keepAliveTimer: NodeJS.Timeout | undefined
  let lastVersion = Number.NaN
  const send = (response: ServerResponse, event: string, data: unknown) => response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  function push(only?: { response: ServerResponse; run: number | undefined }): void {
    const targets = only ? [only] : [...clients]
    const workflows = list()
    const details = new Map<number, unknown>()
    for (const client of targets) {
      send(client.response, 'workflows', workflows)
      if (client.run !== undefined) {
        if (!details.has(client.run)) details.set(client.run, detail(client.run))
        const value = details.get(client.run)
        if (value !== undefined) send(client.response, 'workflow', value)
      }
    }
  }
  function poll(): void {
    try {
      const version = db.version()
      if (version === lastVersion) return
      servedStale = false
      push()
      // Answers reused from before this version: push again on the next poll.
      if (!servedStale) lastVersion = version
    } catch (error) {
      for (const client of clients) client.response.write(`: error ${(error as Error).message.replace(/\n/g, ' ')}\n\n`)
    }
  }
  function stopPolling(): void {
    clearInterval(pollTimer)
    clearInterval(keepAliveTimer)
    pollTimer = keepAliveTimer = undefined
  }
  function events(request: IncomingMessage, response: ServerResponse, search: URLSearchParams): void {
    const runText = new Params(search, ['run']).text('run')
    const run = runText === undefined ? undefined : integerPath(runText, 'workflow')
    if (run !== undefined) found(detail(run), `workflow ${run} in ${db.path}`)
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' })
    if (request.method === 'HEAD') return void response.end()
    response.flushHeaders()
    const client = { response, run }
    clients.add(client)
    // A page that connects late is current at once.
    push(client)
    if (pollTimer === undefined) {
      lastVersion = db.version()
      pollTimer = setInterval(poll, pollMs)
      keepAliveTimer = setInterval(() => {
        for (const c of clients) c.response.write(': keep-alive\n\n')
      }, keepAliveMs)
    }
    const drop = () => {
      clients.delete(client)
      if (clients.size === 0) stopPolling()
    }
    request.on('close', drop)
    response.on('error', drop)
  }

  function reply(request: IncomingMessage, response: ServerResponse, status: number, contentType: string, body: string | Buffer, cache = 'no-store'): void {
    response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': cache })
    response.end(request.method === 'HEAD' ? undefined : body)
  }
  const json = (request: IncomingMessage, response: ServerResponse, status: number, value: unknown) =>
    reply(request, response, status, 'application/json; charset=utf-8', JSON.stringify(value))

  function handle(request: IncomingMessage, response: ServerResponse): void {
    try {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.setHeader('allow', 'GET, HEAD')
        throw new HttpError(405, `${request.method} is not served; use GET or HEAD`)
      }
      const url = new URL(request.url ?? '/', 'http://dashboard')
      const parts = url.pathname.split('/').filter((p) => p !== '')
      if (parts[0] === 'api' && parts[1] === 'events' && parts.length === 2) return events(request, response, url.searchParams)
      if (parts[0] === 'api') return json(request, response, 200, api(parts.slice(1), url.searchParams))
      if (url.pathname === '/metrics') return reply(request, response, 200, PROMETHEUS_CONTENT_TYPE, metrics())
      if (parts[0] === 'static' && parts.length === 2) {
        const name = parts[1]!
        const asset = WEB_ASSETS[name]
        if (asset) return reply(request, response, 200, asset.contentType, asset.body)
        const vendor = VENDOR[name]
        if (vendor) {
          let body = vendorFiles.get(name)
          if (!body) vendorFiles.set(name, (body = readFileSync(vendor())))
          return reply(request, response, 200, 'text/javascript; charset=utf-8', body, 'public, max-age=86400')
        }
        throw new HttpError(404, `no file /static/${name}`)
      }
      // The page, at its own paths too, so history URLs survive a reload.
      if (parts.length === 0 || (parts[0] === 'workflows' && (parts.length === 2 || (parts.length === 4 && parts[2] === 'tasks')))) {
        return reply(request, response, 200, 'text/html; charset=utf-8', PAGE_HTML)
      }
      throw new HttpError(404, `no route ${url.pathname}`)
    } catch (error) {
      if (response.headersSent) return void response.destroy()
      const status = error instanceof HttpError ? error.status : 500
      json(request, response, status, { error: (error as Error).message })
    }
  }

  const server: Server = createServer(handle)
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => {
      db.close()
      reject(error)
    })
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.removeAllListeners('error')
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the dashboard server has no TCP address')
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | undefined
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    listeners: () => clients.size,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        stopPolling()
        for (const client of clients) client.response.end()
        clients.clear()
        server.close(() => {
          db.close()
          resolve()
        })
        server.closeAllConnections()
      })),
  }
}
