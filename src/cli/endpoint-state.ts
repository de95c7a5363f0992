/**
 * What the files of an endpoint's directory say about it, checked against the process table:
 * running (a live daemon whose pid endpoint.json / endpoint.pid name), stopped, or stale (files
 * left by a daemon that died without removing them, cleaned here with a line saying so). Also
 * the start lock that keeps two `tsflow endpoint start` from racing.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { UsageError } from '../errors.js'
import { ENDPOINT_NAME, endpointPaths, type EndpointPaths, type EndpointState } from '../protocol/endpoint.js'
import { join } from 'node:path'

export interface EndpointInspection {
  name: string
  paths: EndpointPaths
  /** config.json exists */
  configured: boolean
  running: boolean
  /** the daemon's pid (running), or the dead pid the stale files named */
  pid?: number
  /** endpoint.json while running (absent for a moment while the daemon starts or stops) */
  state?: EndpointState
  /** set when stale files were found (and removed): the line saying so */
  staleNote?: string
  /** not running yet, but a live `tsflow endpoint start` (this pid) is starting it */
  startingBy?: number
}

/** The pid of a live `tsflow endpoint start` holding the start lock, if any. */
export function startInProgress(paths: EndpointPaths): number | undefined {
  const holder = Number(safeRead(join(paths.dir, LOCK_NAME))?.trim())
  return Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder) ? holder : undefined
}

/** Refuses a name that cannot be an endpoint's directory name. */
export function checkEndpointName(name: string, command: string): string {
  if (!ENDPOINT_NAME.test(name)) {
    throw new UsageError(
      `${command}: '${name}' is not a valid endpoint name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return name
}

/** The endpoint names configured or with state under `home` (directories of $TSFLOW_HOME/endpoints), sorted. */
export function endpointNames(home: string): string[] {
  let entries: string[]
  try {
    entries = readdirSync(join(home, 'endpoints'))
  } catch {
    return []
  }
  return entries.filter((name) => ENDPOINT_NAME.test(name) && existsSync(endpointPaths(name, home).dir)).sort()
}

/**
 * Looks at an endpoint's files and processes. With `clean` (the default), files naming a dead
 * daemon are removed and `staleNote` says which.
 */
export function inspectEndpoint(name: string, home: string, clean = true): EndpointInspection {
  const paths = endpointPaths(name, home)
  const configured = existsSync(paths.config)
  const state = readState(paths)
  const pidFromFile = readPid(paths)
  const pid = state?.pid ?? pidFromFile
  if (pid === undefined) {
    const startingBy = startInProgress(paths)
    return { name, paths, configured, running: false, ...(startingBy ? { startingBy } : {}) }
  }
  if (isEndpointProcess(pid, name)) return { name, paths, configured, running: true, pid, ...(state ? { state } : {}) }
  if (!clean) return { name, paths, configured, running: false, pid }
  const removed = removeStateFiles(paths, pid)
  const staleNote =
    removed.length > 0
      ? `endpoint ${name}: removed stale ${removed.join(' and ')} of pid ${pid}, which is no longer running (the endpoint did not stop cleanly; see ${paths.log})`
      : undefined
  return { name, paths, configured, running: false, pid, ...(staleNote ? { staleNote } : {}) }
}

/** endpoint.json, or undefined when missing or unreadable (a half-written file cannot exist: the daemon renames it into place). */
export function readState(paths: EndpointPaths): EndpointState | undefined {
  try {
    const parsed = JSON.parse(readFileSync(paths.state, 'utf8')) as EndpointState
    return typeof parsed === 'object' && parsed !== null && Number.isInteger(parsed.pid) ? parsed : undefined
  } catch {
    return undefined
  }
}

function readPid(paths: EndpointPaths): number | undefined {
  try {
    const pid = Number(readFileSync(paths.pid, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * Removes endpoint.json and endpoint.pid if they still name `pid` (a daemon started meanwhile
 * writes its own, which must stay). Returns the names of the files removed.
 */
export function removeStateFiles(paths: EndpointPaths, pid: number): string[] {
  const removed: string[] = []
  const state = readState(paths)
  const stateText = existsSync(paths.state) ? safeRead(paths.state) : undefined
  if (stateText !== undefined && (state === undefined || state.pid === pid)) {
    rmSync(paths.state, { force: true })
    removed.push('endpoint.json')
  }
  if (existsSync(paths.pid) && (readPid(paths) ?? pid) === pid) {
    rmSync(paths.pid, { force: true })
    removed.push('endpoint.pid')
  }
  return removed
}

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** The process exists and is not a zombie. EPERM (another user's process) counts as alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // "pid (comm) S ...": the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true
  }
}

/**
 * `pid` is alive and is an endpoint daemon for `name`, as far as /proc shows: so a pid the
 * system gave to another process after the daemon died is not taken for the endpoint (and never
 * signalled by `stop`). Without /proc, liveness alone decides.
 */
export function isEndpointProcess(pid: number, name: string): boolean {
  if (!isAlive(pid)) return false
  let argv: string[]
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true
  }
  if (!argv.some((arg) => /(^|\/)(endpoint\.[cm]?[jt]s|tsflow-endpoint)$/.test(arg))) return false
  const at = argv.indexOf('--name')
  const given = at >= 0 ? argv[at + 1] : argv.find((arg) => arg.startsWith('--name='))?.slice('--name='.length)
  return given === undefined || given === name
}

/** The process group `pid` leads (the daemon is started with its own session), if it leads one. */
export function leadsProcessGroup(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[2]) === pid
  } catch {
    return true
  }
}

/**
 * The live (not zombie) processes of group `pgid`, from /proc; without /proc, [pgid] when the
 * group answers a signal at all.
 */
export function groupMembers(pgid: number): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    try {
      process.kill(-pgid, 0)
      return [pgid]
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? [pgid] : []
    }
  }
  const members: number[] = []
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = safeRead(`/proc/${entry}/stat`)
    if (!stat) continue
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses, so parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry))
  }
  return members
}

/** Some live process of group `pgid` remains. */
export function groupAlive(pgid: number): boolean {
  return groupMembers(pgid).length > 0
}

/** Sends `signal` to a process group, ignoring a group already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // ESRCH: nothing left to signal
  }
}

const LOCK_NAME = 'endpoint.starting'

/** The start lock is held by another live `tsflow endpoint start`. */
export class StartLockHeld extends Error {
  constructor(
    readonly holder: number,
    readonly lock: string,
  ) {
    super(`held by pid ${holder} (${lock})`)
  }
}

/**
 * Takes the start lock of an endpoint (a file created with O_EXCL holding this process's pid),
 * taking over one whose holder is dead. Throws StartLockHeld when another live `start` holds it.
 * Returns the release function.
 */
export function acquireStartLock(paths: EndpointPaths, name: string): () => void {
  const lock = join(paths.dir, LOCK_NAME)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx')
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      return () => rmSync(lock, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const holder = Number(safeRead(lock)?.trim())
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) throw new StartLockHeld(holder, lock)
      rmSync(lock, { force: true })
    }
  }
  throw new Error(`endpoint ${name}: could not take the start lock ${lock}`)
}
