/**
 * The one polling helper of the test suite: tests wait for conditions, never for fixed times.
 * Polls `predicate` until it holds; fails with `what` after `timeoutMs` (generous by default:
 * the machine running the suite may be busy).
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
