/**
 * A tiny Prometheus registry and `/metrics` server (text exposition format 0.0.4), written here
 * because the interchange (a remote process) and the dashboard both serve metrics and neither
 * should pull a client library for four metric kinds. Layer 0: node:http only.
 *
 * Hot paths keep a reference to a series (`counter.labels('ok')` once, then `.inc()` per task):
 * an increment is one addition, with no allocation and no label lookup.
 */
import { createServer, type Server } from 'node:http'

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** The exposition format's content type (what Prometheus asks for as text). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Task durations, seconds: 1 ms .. 1 h, roughly 1-2.5-5 per decade. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
]

/** A label value as the format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** HELP text escapes only backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** A sample value: Go's float spelling for the special values, JS's shortest form otherwise. */
export function formatValue(value: number): string {
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  if (Number.isNaN(value)) return 'NaN'
  return String(value)
}

type MetricType = 'counter' | 'gauge' | 'histogram'

interface Metric {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  /** appends the sample lines (without HELP/TYPE) */
  write(lines: string[]): void
}

/** `{a="x",b="y"}` for these names and values, '' for none. Built once per series. */
function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((name, i) => `${name}="${escapeLabelValue(values[i]!)}"`)
  if (extra) parts.push(extra)
  return parts.length > 0 ? `{${parts.join(',')}}` : ''
}

/** The series of one metric by label values; a series is made on first use and kept. */
abstract class Family<S> implements Metric {
  abstract readonly type: MetricType
  private readonly series = new Map<string, { labels: string; values: string[]; s: S }>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`)
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(label)} of ${name}`)
    }
  }

  protected abstract make(): S
  protected abstract writeSeries(lines: string[], labelNames: readonly string[], values: readonly string[], s: S): void

  /** The series with these label values (in labelNames' order). Keep it for hot paths. */
  labels(...values: string[]): S {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`)
    }
    const key = values.join('\u0000')
    let entry = this.series.get(key)
    if (!entry) this.series.set(key, (entry = { labels: labelText(this.labelNames, values), values, s: this.make() }))
    return entry.s
  }

  /** Forgets every series (a gauge family refilled at each scrape). */
  reset(): void {
    this.series.clear()
  }

  write(lines: string[]): void {
    for (const { values, s } of this.series.values()) this.writeSeries(lines, this.labelNames, values, s)
  }

  protected labelsOf(values: readonly string[]): string {
    return this.series.get(values.join('\u0000'))?.labels ?? labelText(this.labelNames, values)
  }
}

export class CounterSeries {
  value = 0
  inc(by = 1): void {
    if (!(by >= 0)) throw new Error(`a counter only goes up (got ${by})`)
    this.value += by
  }
}

export class Counter extends Family<CounterSeries> {
  readonly type = 'counter'
  protected make(): CounterSeries {
    return new CounterSeries()
  }
  protected writeSeries(lines: string[], _names: readonly string[], values: readonly string[], s: CounterSeries): void {
    lines.push(`${this.name}${this.labelsOf(values)} ${formatValue(s.value)}`)
  }
  /** The series of a counter without labels. */
  inc(by = 1): void {
    this.labels().inc(by)
  }
}

export class GaugeSeries {
  value = 0
  set(value: number): void {
    this.value = value
  }
  inc(by = 1): void {
    this.value += by
  }
  dec(by = 1): void {
    this.value -= by
  }
}

export class Gauge extends Family<GaugeSeries> {
  readonly type = 'gauge'
  protected make(): GaugeSeries {
    return new GaugeSeries()
  }
  protected writeSeries(lines: string[], _names: readonly string[], values: readonly string[], s: GaugeSeries): void {
    lines.push(`${this.name}${this.labelsOf(values)} ${formatValue(s.value)}`)
  }
  set(value: number): void {
    this.labels().set(value)
  }
}

export class HistogramSeries {
  /** per bucket, NOT cumulative (observe touches one slot); the last slot is +Inf */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }
  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

export class Histogram extends Family<HistogramSeries> {
  readonly type = 'histogram'
  readonly buckets: readonly number[]
  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []) {
    super(name, help, labelNames)
    if (labelNames.includes('le')) throw new Error(`${name}: 'le' is the bucket label of a histogram`)
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: bucket bounds must increase`)
    }
    this.buckets = buckets.filter((b) => b !== Infinity)
  }
  protected make(): HistogramSeries {
    return new HistogramSeries(this.buckets)
  }
  protected writeSeries(lines: string[], names: readonly string[], values: readonly string[], s: HistogramSeries): void {
    let cumulative = 0
    for (let i = 0; i <= s.bounds.length; i++) {
      cumulative += s.counts[i]!
      const le = i < s.bounds.length ? formatValue(s.bounds[i]!) : '+Inf'
      lines.push(`${this.name}_bucket${labelText(names, values, `le="${le}"`)} ${formatValue(cumulative)}`)
    }
    const labels = this.labelsOf(values)
    lines.push(`${this.name}_sum${labels} ${formatValue(s.sum)}`, `${this.name}_count${labels} ${formatValue(s.count)}`)
  }
  observe(value: number): void {
    this.labels().observe(value)
  }
}

/** Metrics by name, rendered in registration order. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>()
  private readonly collectors: (() => void)[] = []

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    if (!name.endsWith('_total')) throw new Error(`counter ${name}: counter names end in _total`)
    return this.add(new Counter(name, help, labelNames))
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames))
  }

  histogram(name: string, help: string, buckets: readonly number[] = DURATION_BUCKETS, labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames))
  }

  /**
   * Runs before every render: gauges computed from live state are set here, so keeping them
   * current costs nothing between scrapes.
   */
  collect(fn: () => void): void {
    this.collectors.push(fn)
  }

  render(): string {
    for (const fn of this.collectors) fn()
    const lines: string[] = []
    for (const metric of this.metrics.values()) {
      // A counter family is named without _total in HELP/TYPE by OpenMetrics, with it by 0.0.4.
      lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`, `# TYPE ${metric.name} ${metric.type}`)
      metric.write(lines)
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : ''
  }

  private add<M extends Metric>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`)
    this.metrics.set(metric.name, metric)
    return metric
  }
}

export interface MetricsServerOptions {
  /** default 127.0.0.1 */
  host?: string
  /** 0 (default): a free port */
  port?: number
  /** default '/metrics' */
  path?: string
}

export interface MetricsServer {
  url: string
  port: number
  close(): Promise<void>
}

/**
 * Serves `render()` at `path` (GET and HEAD; 404 elsewhere, 405 for other methods). The server is
 * unref'd: scrapes never keep a finished process alive.
 */
export function serveMetrics(source: MetricsRegistry | (() => string), options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const render = typeof source === 'function' ? source : () => source.render()
  const path = options.path ?? '/metrics'
  const host = options.host ?? '127.0.0.1'
  const server: Server = createServer((request, response) => {
    const url = (request.url ?? '/').split('?')[0]
    if (url !== path) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found; metrics are at ${path}\n`)
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('only GET and HEAD\n')
      return
    }
    let body: string
    try {
      body = render()
    } catch (error) {
      response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`could not render metrics: ${(error as Error).message}\n`)
      return
    }
    response.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) })
    response.end(request.method === 'HEAD' ? undefined : body)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      server.unref()
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      const shown = host.includes(':') ? `[${host}]` : host
      resolve({
        url: `http://${shown}:${port}${path}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}
