/**
 * Scheduler jobs do not die with the workflow: a running block's managers exit when the
 * interchange goes, but a block still waiting in the queue would start later, find nobody and
 * hold a slot for nothing (a held job would stay forever). So while a cluster provider has live
 * jobs, a Ctrl-C, SIGTERM or SIGHUP that would kill the workflow, and a process exit without
 * cleanup(), first cancel them with the scheduler's cancel command, run synchronously and bounded.
 *
 * The handler goes first (prependListener) and removes itself before the other listeners run, so
 * they see the process as it was: a workflow's (or tsflow-perf's) own handler decides what
 * happens next, and libraries like signal-exit, which end the process only when no one else
 * listens, still do. With no other listener the signal is raised again, so the process ends the
 * way it would have without us (exit status 130 for SIGINT).
 */
import { spawnSync } from 'node:child_process'

export interface ExitCancellable {
  /** Cancels every live job now, synchronously; must not throw. */
  cancelNow(): void
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
const owners = new Set<ExitCancellable>()
let installed = false

function cancelAll(): void {
  for (const owner of [...owners]) {
    try {
      owner.cancelNow()
    } catch {
      // nothing sensible to do while the process is going away
    }
  }
  owners.clear()
}

function onSignal(signal: NodeJS.Signals): void {
  uninstall()
  cancelAll()
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}

function install(): void {
  if (installed) return
  installed = true
  for (const signal of SIGNALS) process.prependListener(signal, onSignal)
  process.on('exit', cancelAll)
}

function uninstall(): void {
  if (!installed) return
  installed = false
  for (const signal of SIGNALS) process.off(signal, onSignal)
  process.off('exit', cancelAll)
}

/** Starts watching for the process's end on behalf of `owner` (idempotent). */
export function cancelOnExit(owner: ExitCancellable): void {
  owners.add(owner)
  install()
}

/** Stops watching for `owner` (after its own shutdown cancelled its jobs). */
export function forgetOnExit(owner: ExitCancellable): void {
  owners.delete(owner)
  if (owners.size === 0) uninstall()
}

/** Runs one cancel command line synchronously, bounded by `timeoutMs`; failures are ignored. */
export function runSync(command: string, args: readonly string[], timeoutMs: number): void {
  spawnSync(command, args, { stdio: 'ignore', timeout: timeoutMs, killSignal: 'SIGKILL' })
}
