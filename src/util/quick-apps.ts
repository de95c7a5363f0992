/**
 * Which apps are known to be quick, from how long their tasks took where they ran.
 *
 * Several tasks in one message to one worker is what makes no-op tasks cheap, but a task in a
 * batch cannot start before the tasks ahead of it end, nor move to another worker that is idle.
 * So only tasks of apps seen to take under QUICK_MS are batched (or queued behind a busy
 * worker); a task of an app not seen yet, or seen to be slower, is handed to a worker alone and
 * only when that worker can start it at once. An app's first task thus always runs alone, and
 * the longest task of each batch is what classifies its apps, so one long call makes its app
 * "not quick" until a later task of it is seen to be quick again.
 */
export const QUICK_MS = 1

/** Apps remembered at most; beyond that the oldest are forgotten (and run alone once more). */
const MAX_APPS = 10_000

export class QuickApps {
  private readonly slowestMs = new Map<string, number>()

  isQuick(app: string): boolean {
    const ms = this.slowestMs.get(app)
    return ms !== undefined && ms < QUICK_MS
  }

  /** The longest task of a batch of `tasks` took `ms`. */
  observe(tasks: readonly { appName: string }[], ms: number): void {
    if (!(ms >= 0)) return
    let previous: string | undefined
    for (const { appName } of tasks) {
      // Batches usually hold one app: set it once, not once per task.
      if (appName === previous) continue
      previous = appName
      if (this.slowestMs.size >= MAX_APPS && !this.slowestMs.has(appName)) {
        this.slowestMs.delete(this.slowestMs.keys().next().value!)
      }
      this.slowestMs.set(appName, ms)
    }
  }
}
