// Per-key operation metrics of a store (`new Store(name, connector, { metrics: true })`), after
// ProxyStore's StoreMetrics: how long each step of put/get/evict/... took, cache hits and misses,
// object sizes. Off by default: it keeps an entry per key for the life of the store.
import type { ObjectKey } from './connector.js'
import { stateOf } from './proxy.js'

/** Durations of one operation on one key (or batch), in milliseconds. */
export interface TimeStats {
  count: number
  totalMs: number
  avgMs: number
  minMs: number
  maxMs: number
  lastMs: number
}

/** What was recorded for one key (or one batch of keys). */
export interface Metrics {
  /** e.g. `store.put.objectSize`: the last value recorded */
  attributes: Record<string, number | string>
  /** e.g. `store.get.cacheHits`: summed */
  counters: Record<string, number>
  /** e.g. `store.get`, `store.get.connector`, `proxy.resolve` */
  times: Record<string, TimeStats>
}

/**
 * A key, a proxy (its key), or an array of either (a batch: the keys in order). Typed loosely
 * since a proxy is typed as its target.
 */
export type MetricsKey = ObjectKey | readonly unknown[] | unknown

function idOf(key: MetricsKey): string {
  if (Array.isArray(key)) return key.map(idOf).join('\u0000')
  const state = stateOf(key)
  if (state) return state.factory.key.id
  return String((key as ObjectKey | undefined)?.id)
}

export class StoreMetrics {
  private readonly byKey = new Map<string, Metrics>()

  private entry(key: MetricsKey): Metrics {
    const id = idOf(key)
    let metrics = this.byKey.get(id)
    if (!metrics) this.byKey.set(id, (metrics = { attributes: {}, counters: {}, times: {} }))
    return metrics
  }

  addAttribute(name: string, key: MetricsKey, value: number | string): void {
    this.entry(key).attributes[name] = value
  }

  addCounter(name: string, key: MetricsKey, value = 1): void {
    const counters = this.entry(key).counters
    counters[name] = (counters[name] ?? 0) + value
  }

  addTime(name: string, key: MetricsKey, ms: number): void {
    const times = this.entry(key).times
    const stats = (times[name] ??= { count: 0, totalMs: 0, avgMs: 0, minMs: Infinity, maxMs: 0, lastMs: 0 })
    stats.count++
    stats.totalMs += ms
    stats.avgMs = stats.totalMs / stats.count
    stats.minMs = Math.min(stats.minMs, ms)
    stats.maxMs = Math.max(stats.maxMs, ms)
    stats.lastMs = ms
  }

  /** What was recorded for a key, a proxy, or a batch of either; undefined when nothing was. */
  getMetrics(key: MetricsKey): Metrics | undefined {
    return this.byKey.get(idOf(key))
  }

  /** Every operation's durations over all keys. */
  aggregateTimes(): Record<string, TimeStats> {
    const all: Record<string, TimeStats> = {}
    for (const { times } of this.byKey.values()) {
      for (const [name, stats] of Object.entries(times)) {
        const sum = all[name]
        if (!sum) {
          all[name] = { ...stats }
          continue
        }
        sum.count += stats.count
        sum.totalMs += stats.totalMs
        sum.avgMs = sum.totalMs / sum.count
        sum.minMs = Math.min(sum.minMs, stats.minMs)
        sum.maxMs = Math.max(sum.maxMs, stats.maxMs)
        sum.lastMs = stats.lastMs
      }
    }
    return all
  }

  /** Forgets everything recorded. */
  clear(): void {
    this.byKey.clear()
  }
}
