import type { ResultEnvelope, TaskEnvelope } from '../protocol/messages.js'
import { DURATION_BUCKETS, MetricsRegistry, type CounterSeries, type Gauge, type HistogramSeries } from '../util/prometheus.js'
import type { InterchangeCore } from './core.js'

/**
 * The interchange's Prometheus metrics (docs/monitoring.md "Prometheus"). Gauges are read from
 * the core's state when scraped; per task the core only bumps counters, and (for the duration
 * histogram) writes its dispatch time into a typed-array slot: no allocation per task.
 */
export class InterchangeMetrics {
  readonly registry = new MetricsRegistry()
  private readonly submitted: CounterSeries
  private readonly ok: CounterSeries
  private readonly failed: CounterSeries
  private readonly durations: HistogramSeries
  /** task id -> ms since `origin` at dispatch */
  private readonly dispatchedAt = new DispatchTimes()
  private readonly origin: number
  private readonly up: Gauge

  constructor(
    private readonly core: InterchangeCore,
    private readonly now: () => number = () => performance.now(),
  ) {
    const r = this.registry
    this.origin = now()
    this.up = r.gauge('tsflow_interchange_up', 'Whether the interchange is serving (1) or stopping (0).')
    this.up.set(1)
    const tasks = r.gauge('tsflow_tasks', 'Tasks in the interchange by state: queued (waiting for a manager) or running (sent to a manager, no result yet).', ['state'])
    const queued = tasks.labels('queued')
    const running = tasks.labels('running')
    const depth = r.gauge('tsflow_queue_depth', 'Tasks queued in the interchange waiting for a manager with capacity.')
    this.submitted = r.counter('tsflow_tasks_submitted_total', 'Tasks the client submitted to the interchange (each try counts).').labels()
    const completed = r.counter('tsflow_tasks_completed_total', 'Tasks the interchange reported back: ok (the app returned) or failed (the app threw, or the task was lost or cancelled).', ['outcome'])
    this.ok = completed.labels('ok')
    this.failed = completed.labels('failed')
    const lost = r.counter('tsflow_managers_lost_total', 'Managers declared lost (silent past the heartbeat threshold, or their block ended).').labels()
    const managers = r.gauge('tsflow_managers', 'Managers registered now.')
    const workers = r.gauge('tsflow_workers', 'Workers of the registered managers.')
    const blockWorkers = r.gauge('tsflow_block_workers', 'Workers of the registered managers, by block.', ['block'])
    this.durations = r
      .histogram('tsflow_task_duration_seconds', 'Time from dispatch to a manager until its result reached the interchange, seconds.', DURATION_BUCKETS)
      .labels()
    r.collect(() => {
      queued.set(core.queue.size)
      running.set(core.managers.placed)
      depth.set(core.queue.size)
      lost.value = core.stats.managersLost
      let total = 0
      blockWorkers.reset()
      for (const record of core.managers.all()) {
        total += record.info.workers
        blockWorkers.labels(record.info.blockId).inc(record.info.workers)
      }
      managers.set(core.managers.size)
      workers.set(total)
    })
  }

  /** The client submitted these tasks. */
  submittedTasks(count: number): void {
    this.submitted.inc(count)
  }

  /** These tasks went to a manager, now. */
  dispatched(tasks: readonly TaskEnvelope[]): void {
    // Whole ms since the origin: a small integer (unboxed) for the first 12 days of a run.
    const tick = this.now() - this.origin
    for (let i = 0; i < tasks.length; i++) this.dispatchedAt.set(tasks[i]!.id, tick)
  }

  /** A manager answered this task. */
  result(result: ResultEnvelope): void {
    if (resultOk(result.payload)) this.ok.inc()
    else this.failed.inc()
    const at = this.dispatchedAt.take(result.id)
    if (at < 0) return
    this.durations.observe(Math.max(0, this.now() - this.origin - at) / 1000)
  }

  /** Tasks the interchange itself failed (lost with a manager, cancelled while queued, unknown function). */
  failedTasks(failures: readonly { id: number }[]): void {
    this.failed.inc(failures.length)
    for (let i = 0; i < failures.length; i++) this.dispatchedAt.take(failures[i]!.id)
  }

  stopping(): void {
    this.up.set(0)
  }
}

/**
 * Whether a result payload (msgpack [id, try, ok, value], protocol/task.ts) says ok, read from
 * its first bytes without decoding it: a fixarray header, two integers, then the 0/1 flag.
 */
export function resultOk(payload: Uint8Array): boolean {
  if (payload[0] !== 0x94) return false
  let at = 1
  for (let n = 0; n < 2; n++) {
    const b = payload[at]
    if (b === undefined) return false
    const width = b <= 0x7f || b >= 0xe0 ? 0 : INT_WIDTH[b]
    if (width === undefined) return false
    at += 1 + width
  }
  return payload[at] === 1
}

/** Bytes after the type byte of msgpack integers and floats. */
const INT_WIDTH: Record<number, number> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xca: 4, 0xcb: 8 }

/**
 * Dispatch times by task id without a Map entry per task: slot `id % size` of two typed arrays.
 * Task ids are the client's sequence numbers, so the tasks out on managers at one time occupy
 * distinct slots as long as the table spans them; when a slot is taken by another task still
 * out, the table doubles (up to MAX_SLOTS). Beyond that the older task's time is dropped and it
 * is counted in `dropped` (its duration is not observed; the completed counter still counts it).
 */
export class DispatchTimes {
  /** id + 1 per slot; 0: empty */
  private ids: Float64Array
  private ticks: Float64Array
  dropped = 0

  constructor(slots = 4096) {
    this.ids = new Float64Array(slots)
    this.ticks = new Float64Array(slots)
  }

  get size(): number {
    return this.ids.length
  }

  set(id: number, tick: number): void {
    const slot = id % this.ids.length
    const held = this.ids[slot]!
    if (held !== 0 && held !== id + 1) {
      if (this.ids.length < MAX_SLOTS) {
        this.grow()
        return this.set(id, tick)
      }
      this.dropped++
    }
    this.ids[slot] = id + 1
    this.ticks[slot] = tick
  }

  /** The time stored for `id`, and forgets it; -1 when there is none. */
  take(id: number): number {
    const slot = id % this.ids.length
    if (this.ids[slot] !== id + 1) return -1
    this.ids[slot] = 0
    return this.ticks[slot]!
  }

  private grow(): void {
    const ids = this.ids
    const ticks = this.ticks
    this.ids = new Float64Array(ids.length * 2)
    this.ticks = new Float64Array(ids.length * 2)
    // Doubling keeps distinct slots distinct: id % 2n differs wherever id % n did.
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === 0) continue
      const slot = (ids[i]! - 1) % this.ids.length
      this.ids[slot] = ids[i]!
      this.ticks[slot] = ticks[i]!
    }
  }
}

/** 2^20 slots, 16 MiB: a million tasks out on managers at once, from a run's same stretch of ids. */
const MAX_SLOTS = 2 ** 20
