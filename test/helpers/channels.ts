// Collecting what a diagnostics channel publishes during a test.
import type { Test } from 'tap'

/** Collects what `channel` publishes until the end of `t`. */
export function listen<M>(t: Test, channel: { subscribe(fn: (m: M) => void): void; unsubscribe(fn: (m: M) => void): boolean }): M[] {
  const seen: M[] = []
  const listener = (message: M) => seen.push(message)
  t.teardown(() => void channel.unsubscribe(listener))
  channel.subscribe(listener)
  return seen
}
