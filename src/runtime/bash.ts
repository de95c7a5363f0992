import { spawn } from 'node:child_process'
import { closeSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { readTail } from '../util/file-tail.js'
import { constants as osConstants } from 'node:os'
import { dirname, resolve } from 'node:path'
import { createRequire } from 'node:module'
import { BadStdStreamFile, BashExitFailure, WalltimeExceeded } from '../errors.js'
import type { PtyOptions, StdStreamTarget } from '../protocol/task.js'

export interface BashRunOptions {
  appName: string
  taskId: number
  stdout?: StdStreamTarget | undefined
  stderr?: StdStreamTarget | undefined
  pty?: PtyOptions | undefined
  cwd?: string | undefined
  env?: Record<string, string> | undefined
  walltimeSeconds?: number | undefined
}

const STDERR_TAIL_BYTES = 2048
const KILL_GRACE_MS = 2000

/**
 * Runs `command` with bash and resolves to its exit code (0). A non-zero exit rejects with
 * BashExitFailure, whose message carries the tail of stderr so the failure explains itself.
 * Redirected streams are handed to bash as file descriptors: output never passes through JS.
 */
export function runBashCommand(command: string, options: BashRunOptions): Promise<number> {
  return options.pty ? runUnderPty(command, options, options.pty) : runWithPipes(command, options)
}

interface OpenStream {
  fd: number
  path: string
  /** Size of the file when opened: this task's output starts there. */
  start: number
}

type StreamName = 'stdout' | 'stderr'

function modeOf(target: StdStreamTarget): 'w' | 'a' {
  // A plain path appends (as in Parsl), so tasks sharing a log file do not erase each other.
  return typeof target === 'string' ? 'a' : target[1]
}

function pathOf(target: StdStreamTarget): string {
  return typeof target === 'string' ? target : target[0]
}

function openStream(target: StdStreamTarget, stream: StreamName, options: BashRunOptions, mode = modeOf(target)): OpenStream {
  const path = pathOf(target)
  let fd: number | undefined
  try {
    mkdirSync(dirname(path), { recursive: true })
    fd = openSync(path, mode)
    return { fd, path, start: mode === 'a' ? fstatSync(fd).size : 0 }
  } catch (error) {
    if (fd !== undefined) closeSync(fd)
    throw new BadStdStreamFile(options.taskId, options.appName, stream, path, error)
  }
}

/**
 * Opens the redirected streams. The same file for both is opened once and handed to bash as
 * both descriptors, so the two streams share one file offset and land in the order written
 * (two descriptors with their own offsets would overwrite each other). It is truncated if
 * either stream asks for 'w'.
 */
function openStreams(options: BashRunOptions): { out: OpenStream | undefined; err: OpenStream | undefined } {
  const { stdout, stderr } = options
  if (stdout !== undefined && stderr !== undefined && resolve(pathOf(stdout)) === resolve(pathOf(stderr))) {
    const mode = modeOf(stdout) === 'w' || modeOf(stderr) === 'w' ? 'w' : 'a'
    const shared = openStream(stdout, 'stdout', options, mode)
    return { out: shared, err: shared }
  }
  const out = stdout === undefined ? undefined : openStream(stdout, 'stdout', options)
  let err: OpenStream | undefined
  try {
    err = stderr === undefined ? undefined : openStream(stderr, 'stderr', options)
  } catch (error) {
    if (out) closeSync(out.fd)
    throw error
  }
  if (out && err && sameFile(out.fd, err.fd)) {
    // Two names (a link) for one file: share one descriptor as above.
    closeSync(err.fd)
    err = out
  }
  return { out, err }
}

function sameFile(a: number, b: number): boolean {
  const left = fstatSync(a)
  const right = fstatSync(b)
  return left.dev === right.dev && left.ino === right.ino
}

function runWithPipes(command: string, options: BashRunOptions): Promise<number> {
  const { out: stdoutFile, err: stderrFile } = openStreams(options)
  return new Promise<number>((resolve, reject) => {
    // detached: bash leads its own process group, so a walltime kill reaches its children too.
    const child = spawn('bash', ['-c', command], {
      cwd: options.cwd,
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ['ignore', stdoutFile ? stdoutFile.fd : 'inherit', stderrFile ? stderrFile.fd : 'pipe'],
      detached: true,
    })
    if (stdoutFile) closeSync(stdoutFile.fd)
    if (stderrFile && stderrFile !== stdoutFile) closeSync(stderrFile.fd)
    let tail = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk)
      tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES)
    })
    const walltime = armWalltime(child.pid, options)
    child.on('error', (error) => {
      walltime.disarm()
      reject(error)
    })
    // Settle on 'close' only, also after a walltime kill: the process is reaped by then, so no
    // zombie outlives the task.
    child.on('close', (code, signal) => {
      walltime.disarm()
      if (walltime.expired) return reject(new WalltimeExceeded(options.taskId, options.appName, options.walltimeSeconds!))
      if (code === 0) return resolve(0)
      const stderrTail = stderrFile ? readTail(stderrFile.path, 40, STDERR_TAIL_BYTES, stderrFile.start) : tail
      reject(new BashExitFailure(options.appName, command, code, signal, explain(code, stderrTail)))
    })
  })
}

interface PtyProcess {
  pid: number
  onData(listener: (data: string) => void): void
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): void
}

function runUnderPty(command: string, options: BashRunOptions, pty: PtyOptions): Promise<number> {
  // node-pty is CommonJS with a native part; load it only for the tasks that ask for a terminal.
  const nodePty = createRequire(import.meta.url)('node-pty') as {
    spawn(file: string, args: string[], options: Record<string, unknown>): PtyProcess
  }
  const out = options.stdout === undefined ? undefined : openStream(options.stdout, 'stdout', options)
  return new Promise<number>((resolve, reject) => {
    let tail = ''
    const term = nodePty.spawn('bash', ['-c', command], {
      name: 'xterm-256color',
      cols: pty.cols ?? 120,
      rows: pty.rows ?? 40,
      cwd: options.cwd ?? process.cwd(),
      env: options.env ? { ...process.env, ...options.env } : process.env,
    })
    const walltime = armWalltime(term.pid, options)
    term.onData((data) => {
      // A terminal merges stdout and stderr; keep the tail for the failure message.
      tail = (tail + data).slice(-STDERR_TAIL_BYTES)
      if (out) writeAllSync(out.fd, data)
      else process.stdout.write(data)
    })
    term.onExit(({ exitCode, signal }) => {
      if (out) closeSync(out.fd)
      walltime.disarm()
      if (walltime.expired) return reject(new WalltimeExceeded(options.taskId, options.appName, options.walltimeSeconds!))
      if (exitCode === 0 && !signal) return resolve(0)
      const signalName = signal ? signalNameOf(signal) : null
      reject(new BashExitFailure(options.appName, command, signal ? null : exitCode, signalName, explain(exitCode, tail)))
    })
  })
}

/** At the walltime, kills the process group (SIGTERM, then SIGKILL after a grace period). */
function armWalltime(pid: number | undefined, options: BashRunOptions): { readonly expired: boolean; disarm(): void } {
  const state = { expired: false, disarm: () => {} }
  if (!options.walltimeSeconds || pid === undefined) return state
  let killTimer: NodeJS.Timeout | undefined
  const timer = setTimeout(() => {
    state.expired = true
    killGroup(pid, 'SIGTERM')
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS)
  }, options.walltimeSeconds * 1000)
  state.disarm = () => {
    clearTimeout(timer)
    if (killTimer) clearTimeout(killTimer)
  }
  return state
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

function explain(code: number | null, stderrTail: string): string {
  let hint = ''
  if (code === 127) hint = ' (command not found: check the spelling and that it is on PATH where the task runs)'
  else if (code === 126) hint = ' (the command exists but could not be executed: check its permissions)'
  const trimmed = stderrTail.trim()
  return trimmed ? `${hint}\n--- end of its output ---\n${trimmed}` : hint
}


function writeAllSync(fd: number, data: string): void {
  const bytes = Buffer.from(data, 'utf8')
  let offset = 0
  while (offset < bytes.length) {
    offset += writeSync(fd, bytes, offset)
  }
}

function signalNameOf(signal: number): string {
  for (const [name, value] of Object.entries(osConstants.signals)) if (value === signal) return name
  return `signal ${signal}`
}
