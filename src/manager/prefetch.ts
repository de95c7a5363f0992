/**
 * How many tasks a manager holds beyond one per worker.
 *
 * A fixed prefetch is a trade-off: large, and short tasks flow at full speed but long tasks pile
 * up on one manager while others idle; small, and every task waits a round trip to the
 * interchange. `auto` measures how long tasks take here and holds about TARGET_MS of work per
 * worker: thousands of microsecond tasks, a handful of millisecond tasks, at most one extra
 * one-second task (so long tasks stay in the interchange, free to go to whichever manager frees up).
 */
export const AUTO_PREFETCH_MAX = 1024
const TARGET_MS = 10
// Weight of the newest batch in the running average: adapts within a few batches.
const WEIGHT = 0.3

export class PrefetchPolicy {
  private perTaskMs: number | undefined

  constructor(
    private readonly workers: number,
    private readonly setting: number | 'auto',
  ) {}

  /** The ceiling announced at registration (what the interchange may ever send beyond workers). */
  get ceiling(): number {
    return this.setting === 'auto' ? AUTO_PREFETCH_MAX : this.setting
  }

  /** Tasks to hold beyond one per worker, now. */
  get value(): number {
    if (this.setting !== 'auto') return this.setting
    // Before anything was measured: one extra task per worker, a cautious start.
    if (this.perTaskMs === undefined) return this.workers
    const wanted = Math.ceil((this.workers * TARGET_MS) / Math.max(this.perTaskMs, 0.001))
    return Math.min(AUTO_PREFETCH_MAX, wanted)
  }

  /** A batch of `tasks` took `elapsedMs` on one worker (queueing on the worker included). */
  observe(tasks: number, elapsedMs: number): void {
    if (this.setting !== 'auto' || tasks <= 0 || !(elapsedMs >= 0)) return
    const sample = elapsedMs / tasks
    this.perTaskMs = this.perTaskMs === undefined ? sample : this.perTaskMs * (1 - WEIGHT) + sample * WEIGHT
  }

  describe(): string {
    return this.setting === 'auto' ? `auto (now ${this.value}, at most ${AUTO_PREFETCH_MAX})` : String(this.setting)
  }
}
