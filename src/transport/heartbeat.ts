/**
 * Liveness bookkeeping for one side of a link: when each peer was last heard from, which peers
 * have been silent beyond the threshold, and when to send our own heartbeat.
 *
 * Checking is cheap however many peers there are: peers live in a Map kept in order of last
 * contact (a beat moves the peer to the end), so `expired()` reads only from the oldest end and
 * stops at the first peer still alive. One timer checking this every fraction of a period
 * replaces a timer per peer.
 */

export type Clock = () => number

/** Milliseconds since the epoch that never go backwards (wall-clock steps do not move it). */
export const monotonicClock: Clock = () => performance.timeOrigin + performance.now()

export interface HeartbeatOptions {
  /** how often each side sends a heartbeat, ms */
  periodMs: number
  /** silence after which a peer counts as gone, ms */
  thresholdMs: number
  clock?: Clock
}

export interface ExpiredPeer<K> {
  peer: K
  lastSeen: number
  silentMs: number
}

export class Heartbeat<K = string> {
  readonly periodMs: number
  readonly thresholdMs: number
  readonly clock: Clock
  private readonly lastSeenBy = new Map<K, number>()
  private lastSent = -Infinity

  constructor(options: HeartbeatOptions) {
    if (!(options.periodMs > 0) || !(options.thresholdMs > 0)) {
      throw new RangeError(`heartbeat period and threshold must be positive (got ${options.periodMs} / ${options.thresholdMs} ms)`)
    }
    this.periodMs = options.periodMs
    this.thresholdMs = options.thresholdMs
    this.clock = options.clock ?? monotonicClock
  }

  /** How often to call `expired()` so a loss is noticed within about a quarter period of the threshold. */
  get checkIntervalMs(): number {
    return Math.max(10, Math.min(this.periodMs, this.thresholdMs) / 4)
  }

  get size(): number {
    return this.lastSeenBy.size
  }

  /** Records that `peer` was heard from now (any message counts). */
  beat(peer: K, now = this.clock()): void {
    // Delete first so the peer moves to the end: the map stays ordered by last contact.
    this.lastSeenBy.delete(peer)
    this.lastSeenBy.set(peer, now)
  }

  lastSeen(peer: K): number | undefined {
    return this.lastSeenBy.get(peer)
  }

  has(peer: K): boolean {
    return this.lastSeenBy.has(peer)
  }

  forget(peer: K): void {
    this.lastSeenBy.delete(peer)
  }

  /** Peers silent for longer than the threshold, oldest first. They stay tracked until forgotten. */
  expired(now = this.clock()): ExpiredPeer<K>[] {
    const out: ExpiredPeer<K>[] = []
    for (const [peer, lastSeen] of this.lastSeenBy) {
      const silentMs = now - lastSeen
      if (silentMs <= this.thresholdMs) break
      out.push({ peer, lastSeen, silentMs })
    }
    return out
  }

  /** True (and remembered as sent) when a period has passed since our last heartbeat went out. */
  sendDue(now = this.clock()): boolean {
    if (now - this.lastSent < this.periodMs) return false
    this.lastSent = now
    return true
  }
}
