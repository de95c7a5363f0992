import type { Logger } from '../util/logger.js'
import { monotonicClock, type Clock } from '../transport/heartbeat.js'

/**
 * Warnings about bad input, limited per category: a peer spraying garbage must not fill the disk
 * or cost more than the garbage itself. Each category logs at most `burst` lines per window;
 * the next line after a window closes says how many were left out.
 */
export class LogLimiter {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>()
  private readonly burst: number
  private readonly windowMs: number
  private readonly clock: Clock

  constructor(
    private readonly logger: Logger,
    options: { burst?: number; windowMs?: number; clock?: Clock } = {},
  ) {
    this.burst = options.burst ?? 10
    this.windowMs = options.windowMs ?? 60_000
    this.clock = options.clock ?? monotonicClock
  }

  warn(category: string, message: string): void {
    const now = this.clock()
    let window = this.windows.get(category)
    if (!window || now - window.start >= this.windowMs) {
      if (window && window.suppressed > 0) this.reportSuppressed(category, window.suppressed)
      window = { start: now, count: 0, suppressed: 0 }
      this.windows.set(category, window)
    }
    if (window.count < this.burst) {
      window.count++
      this.logger.warn(message)
    } else {
      window.suppressed++
    }
  }

  /** Logs what is still suppressed (call on shutdown so the count is not lost). */
  flush(): void {
    for (const [category, window] of this.windows) {
      if (window.suppressed > 0) this.reportSuppressed(category, window.suppressed)
      window.suppressed = 0
    }
  }

  private reportSuppressed(category: string, count: number): void {
    this.logger.warn(`${count} more '${category}' warnings were suppressed (limit ${this.burst} per ${this.windowMs / 1000} s)`)
  }
}
