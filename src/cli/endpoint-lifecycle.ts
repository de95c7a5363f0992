/**
 * `tsflow endpoint start` and `stop`: the daemon's process lifecycle.
 *
 * start: the daemon (bin/endpoint.ts) is spawned detached, in a session and process group of its
 * own (no controlling terminal: closing the terminal sends it no SIGHUP), stdout and stderr
 * appended to endpoint.log, and a pipe as fd 3 (`--ready-fd 3`) on which it writes one line when
 * it listens (its EndpointState) or fails ({"error": ...}). Any failure (error line, exit, silence
 * past the timeout) ends with no process of its group left and no endpoint.json of it.
 *
 * stop: SIGTERM to the daemon (the server then fails every queued and running task with
 * EndpointStopped at its clients, stops managers and blocks, removes its files and exits); after
 * the timeout, SIGKILL to its process group; stragglers of the group are ended either way.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, fstatSync, openSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Readable } from 'node:stream'
import { endpointDaemonSpec, type EndpointState } from '../protocol/endpoint.js'
import type { LogLevel } from '../util/logger.js'
import { workerExecArgv } from '../runtime/exec-argv.js'
import { readTail } from '../util/file-tail.js'
import { acquireStartLock, groupAlive, StartLockHeld, inspectEndpoint, isAlive, leadsProcessGroup, removeStateFiles, signalGroup, type EndpointInspection } from './endpoint-state.js'

/** dist/bin/endpoint.js beside this module's dist/cli/. */
export const ENDPOINT_BIN = fileURLToPath(new URL('../bin/endpoint.js', import.meta.url))

/** The daemon's fd for the ready line (0-2 are stdin and the log). */
const READY_FD = 3
/** How long a daemon that reported an error gets to exit by itself before its group is killed. */
const EXIT_GRACE_MS = 3_000
/** How long SIGKILLed processes get to disappear. */
const KILL_WAIT_MS = 5_000

export type StartResult =
  | { kind: 'started'; state: EndpointState; log: string; staleNote?: string }
  | { kind: 'running'; inspection: EndpointInspection }
  | { kind: 'failed'; message: string; logTail: string; log: string; interrupted?: boolean; staleNote?: string }

export interface StartOptions {
  name: string
  home: string
  timeoutMs: number
  logLevel?: LogLevel
  /** run the daemon (and so its managers and workers) with tsx's loader: apps defined in .ts modules run by reference */
  typescript?: boolean
  env?: NodeJS.ProcessEnv
}

/**
 * The node flags that give the daemon tsx's hooks; its managers and workers inherit them
 * (runtime/exec-argv.ts). Asked as for a TypeScript main module, which is what such a workflow
 * is; [] when this Node strips types by itself.
 */
export function typeScriptFlags(cwd: string): string[] {
  return workerExecArgv([], { mainScript: 'endpoint.ts', nodeOptions: '', cwd })
}

export async function startEndpoint(options: StartOptions): Promise<StartResult> {
  const { name, home } = options
  const deadline = Date.now() + options.timeoutMs
  let inspection = inspectEndpoint(name, home)
  const staleNote = inspection.staleNote
  let release: (() => void) | undefined
  // Another `start` of the same endpoint in progress: wait for it, then report what it made.
  while (!inspection.running) {
    try {
      release = acquireStartLock(inspection.paths, name)
      // A start that held the lock until just now may have left it running.
      inspection = inspectEndpoint(name, home)
      break
    } catch (error) {
      if (!(error instanceof StartLockHeld)) throw error
      if (Date.now() >= deadline) throw new Error(`endpoint ${name} is being started by another 'tsflow endpoint start' (pid ${error.holder}), still after ${options.timeoutMs} ms; remove ${error.lock} if that process is not a start`)
      await new Promise((resolve) => setTimeout(resolve, 50))
      inspection = inspectEndpoint(name, home)
    }
  }
  if (inspection.running || !release) {
    release?.()
    return { kind: 'running', inspection }
  }
  const paths = inspection.paths
  try {
    // The tail shown on failure starts where this start's output does.
    const logFd = openSync(paths.log, 'a', 0o600)
    const logStart = fstatSync(logFd).size
    let child: ChildProcess
    try {
      const args = endpointDaemonSpec.encode({ name, home, readyFd: READY_FD, ...(options.logLevel ? { logLevel: options.logLevel } : {}) })
      const nodeFlags = options.typescript ? typeScriptFlags(paths.dir) : []
      child = spawn(process.execPath, [...nodeFlags, ENDPOINT_BIN, ...args], {
        detached: true,
        stdio: ['ignore', logFd, logFd, 'pipe'],
        cwd: paths.dir,
        env: { ...(options.env ?? process.env), TSFLOW_HOME: home },
      })
    } finally {
      closeSync(logFd)
    }
    const outcome = await readyLine(child, child.stdio[READY_FD] as Readable, options.timeoutMs)
    if (outcome.kind === 'ready') {
      // The CLI may exit now: nothing of the daemon keeps this process's event loop alive.
      child.unref()
      return { kind: 'started', state: outcome.state, log: paths.log, ...(staleNote ? { staleNote } : {}) }
    }
    const pid = child.pid
    if (pid !== undefined) {
      await endGroup(child, pid, outcome.kind === 'error' ? EXIT_GRACE_MS : 0)
      removeStateFiles(paths, pid)
    }
    const status = child.exitCode !== null ? `exit code ${child.exitCode}` : child.signalCode ? `signal ${child.signalCode}` : 'killed'
    const message =
      outcome.kind === 'error'
        ? `endpoint ${name} failed to start: ${outcome.message}`
        : outcome.kind === 'timeout'
          ? `endpoint ${name} did not report ready within ${options.timeoutMs} ms (--timeout); it was stopped`
          : outcome.kind === 'interrupted'
            ? `${outcome.signal} while endpoint ${name} was starting: it was stopped`
            : `endpoint ${name} exited before it was ready (${status})`
    const interrupted = outcome.kind === 'interrupted'
    return { kind: 'failed', message, logTail: readTail(paths.log, 20, 8192, logStart), log: paths.log, ...(interrupted ? { interrupted } : {}), ...(staleNote ? { staleNote } : {}) }
  } finally {
    release()
  }
}

type ReadyOutcome = { kind: 'ready'; state: EndpointState } | { kind: 'error'; message: string } | { kind: 'exited' } | { kind: 'timeout' } | { kind: 'interrupted'; signal: string }

/** Waits for the daemon's one line on the ready pipe, its exit, or the timeout, whichever comes first. */
function readyLine(child: ChildProcess, pipe: Readable, timeoutMs: number): Promise<ReadyOutcome> {
  return new Promise((resolve) => {
    let text = ''
    let done = false
    // Ctrl-C while waiting abandons the start: the half-started daemon is stopped, not left behind.
    const onSignal = (signal: NodeJS.Signals) => finish({ kind: 'interrupted', signal })
    const finish = (outcome: ReadyOutcome) => {
      if (done) return
      done = true
      clearTimeout(timer)
      process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal)
      pipe.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs)
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
    child.once('error', (error) => finish({ kind: 'error', message: `cannot run ${ENDPOINT_BIN}: ${error.message}` }))
    pipe.setEncoding('utf8')
    pipe.on('data', (chunk: string) => {
      text += chunk
      const newline = text.indexOf('\n')
      if (newline >= 0) finish(parseReady(text.slice(0, newline)))
    })
    pipe.on('error', () => undefined)
    // EOF without a newline: a last unterminated line counts; no line at all means the daemon
    // closed the pipe by dying, and its exit (handled below) follows.
    pipe.on('end', () => {
      if (text.trim()) finish(parseReady(text))
    })
    // The pipe's last data may arrive just after the exit event: give it a moment.
    child.once('exit', () => setTimeout(() => finish(text.trim() ? parseReady(text) : { kind: 'exited' }), 50).unref())
  })
}

function parseReady(line: string): ReadyOutcome {
  try {
    const value = JSON.parse(line) as Partial<EndpointState> & { error?: unknown }
    if (typeof value.error === 'string') return { kind: 'error', message: value.error }
    if (Number.isInteger(value.pid) && typeof value.serverPublicKey === 'string') return { kind: 'ready', state: value as EndpointState }
  } catch {
    // fall through
  }
  return { kind: 'error', message: `unreadable ready line from the daemon: ${JSON.stringify(line.slice(0, 200))}` }
}

/** Lets the daemon exit within `graceMs`, then SIGKILLs its whole group and waits until none of it is left. */
async function endGroup(child: ChildProcess, pid: number, graceMs: number): Promise<void> {
  if (graceMs > 0) await until(() => child.exitCode !== null || child.signalCode !== null, graceMs)
  signalGroup(pid, 'SIGKILL')
  await until(() => (child.exitCode !== null || child.signalCode !== null) && !groupAlive(pid), KILL_WAIT_MS)
}

export type StopResult =
  | { kind: 'stopped'; pid: number; forced: boolean; notes: string[] }
  | { kind: 'not-running'; staleNote?: string }

export async function stopEndpoint(name: string, home: string, timeoutMs: number): Promise<StopResult> {
  const inspection = inspectEndpoint(name, home)
  if (!inspection.running) return { kind: 'not-running', ...(inspection.staleNote ? { staleNote: inspection.staleNote } : {}) }
  const pid = inspection.pid!
  const paths = inspection.paths
  const notes: string[] = []
  // The daemon leads its own group (setsid at spawn); one started another way might not, and
  // then its pid names no group to signal.
  const ownGroup = leadsProcessGroup(pid)
  try {
    process.kill(pid, 'SIGTERM')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPERM') throw new Error(`endpoint ${name} runs as another user (pid ${pid}); it cannot be stopped from here`)
  }
  // The daemon removes endpoint.json before it exits; one that died mid-stop leaves it (removed below, with a note).
  const clean = await until(() => !isAlive(pid), timeoutMs)
  let forced = false
  if (!clean) {
    forced = true
    notes.push(`endpoint ${name} did not stop within ${timeoutMs} ms of SIGTERM; killed its process group with SIGKILL (see ${paths.log})`)
    if (ownGroup) signalGroup(pid, 'SIGKILL')
    else process.kill(pid, 'SIGKILL')
    await until(() => !isAlive(pid), KILL_WAIT_MS)
  }
  if (ownGroup && groupAlive(pid)) {
    // The daemon is gone but something it started in its group is not: end it too.
    signalGroup(pid, 'SIGTERM')
    if (!(await until(() => !groupAlive(pid), 2_000))) signalGroup(pid, 'SIGKILL')
    await until(() => !groupAlive(pid), KILL_WAIT_MS)
    notes.push(`processes of endpoint ${name}'s process group outlived it and were ended`)
  }
  const removed = removeStateFiles(paths, pid)
  if (removed.length > 0 && !forced) notes.push(`endpoint ${name} exited without removing ${removed.join(' and ')}; removed them`)
  return { kind: 'stopped', pid, forced, notes }
}

/** Polls `condition` every 25 ms; true when it held within `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (condition()) return true
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
