/**
 * The typed seam over tsflow's native addon (native/tsflow_native.c): POSIX shared memory
 * as Buffers and Linux CPU affinity.
 *
 * This is the only module that loads the `.node` file. It loads it lazily, on the first
 * call that needs it, so importing tsflow never fails just because the addon was not
 * built; only the features that need it do, with `NativeAddonUnavailable`.
 *
 * Arguments are validated here (TypeError / RangeError naming the argument) so the C side
 * can stay mechanism-only; system-call failures coming back from C are rewrapped as
 * `NativeError` with the operation and segment name in the message.
 */

import { constants as bufferConstants } from 'node:buffer'
import { closeSync, constants as fsConstants, existsSync, openSync, readdirSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { NativeAddonUnavailable, NativeError } from '../errors.js'

/** The functions native/tsflow_native.c exports. */
export interface NativeBinding {
  shmCreate(name: string, size: number): Buffer
  shmOpen(name: string): Buffer
  shmUnlink(name: string): void
  shmSize(name: string): number
  getAffinity(tid: number): number[]
  setAffinity(cpus: number[], tid: number): void
  onlineCpus(): number
  setParentDeathSignal(signal: number): void
}

const BINDING_FUNCTIONS = [
  'shmCreate',
  'shmOpen',
  'shmUnlink',
  'shmSize',
  'getAffinity',
  'setAffinity',
  'onlineCpus',
  'setParentDeathSignal',
] as const satisfies readonly (keyof NativeBinding)[]

const ADDON_FILE = 'tsflow_native.node'
// Release is what `node-gyp rebuild` produces; Debug only with `--debug`, so it comes second.
const BUILD_DIRS = ['build/Release', 'build/Debug'] as const
const PACKAGE_NAME = 'tsflow'
const HOW_TO_BUILD =
  `Build it with \`npm rebuild ${PACKAGE_NAME}\` (or \`npx node-gyp rebuild\` in the package ` +
  'directory); building needs python3, make and a C compiler (e.g. gcc).'

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/**
 * Finds the tsflow package root by walking up from this file. Walking (rather than a fixed
 * `../..`) works both from src/native (ts-node) and dist/native (compiled), and when tsflow
 * sits inside someone's node_modules.
 */
function findPackageRoot(start: string): string | undefined {
  let dir = start
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }
        if (parsed.name === PACKAGE_NAME) return dir
      } catch {
        // An unreadable or malformed package.json of some enclosing project: keep walking.
      }
    }
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Loads the addon from `packageRoot/build/{Release,Debug}/tsflow_native.node`, uncached.
 * The lazy loader behind every other export uses it with the real package root; it is
 * exported so tests can point it at a directory without a build.
 *
 * @internal
 */
export function loadNativeAddonFrom(packageRoot: string): NativeBinding {
  const candidates = BUILD_DIRS.map((dir) => join(packageRoot, dir, ADDON_FILE))
  const present = candidates.filter((file) => existsSync(file))
  if (present.length === 0) {
    throw new NativeAddonUnavailable(
      `tsflow's native addon is not built: looked for ${candidates.join(' and ')}, and neither exists. ` +
        `Shared memory and CPU affinity need it. ${HOW_TO_BUILD}`,
    )
  }
  const require = createRequire(join(packageRoot, 'package.json'))
  const failures: string[] = []
  let lastError: unknown
  for (const file of present) {
    let loaded: unknown
    try {
      loaded = require(file)
    } catch (error) {
      // Typically a build for another Node.js ABI or architecture, or a truncated file.
      failures.push(`${file}: ${describe(error)}`)
      lastError = error
      continue
    }
    const missing = BINDING_FUNCTIONS.filter(
      (fn) => typeof (loaded as Record<string, unknown> | null)?.[fn] !== 'function',
    )
    if (missing.length === 0) return loaded as NativeBinding
    // A stale build from an older native/tsflow_native.c.
    failures.push(`${file}: loaded, but lacks ${missing.join(', ')} (an outdated build)`)
  }
  throw new NativeAddonUnavailable(
    `tsflow's native addon could not be loaded (${failures.join('; ')}). ` +
      `Rebuild it for this Node.js (${process.version}, ${process.platform}-${process.arch}). ${HOW_TO_BUILD}`,
    { cause: lastError },
  )
}

// One outcome per thread (each worker_thread has its own module instance); a failure is
// cached too, so `nativeAvailable()` stays cheap and every caller gets the same diagnosis.
let cached: { binding: NativeBinding } | { error: NativeAddonUnavailable } | undefined

function addon(): NativeBinding {
  if (cached === undefined) {
    try {
      const here = dirname(fileURLToPath(import.meta.url))
      const root = findPackageRoot(here)
      if (root === undefined) {
        throw new NativeAddonUnavailable(
          `tsflow's native addon could not be located: no package.json named "${PACKAGE_NAME}" ` +
            `was found in ${here} or any directory above it, so there is no build/Release/${ADDON_FILE} ` +
            `to load. Reinstall tsflow, or run from an intact checkout. ${HOW_TO_BUILD}`,
        )
      }
      cached = { binding: loadNativeAddonFrom(root) }
    } catch (error) {
      cached = {
        error:
          error instanceof NativeAddonUnavailable
            ? error
            : new NativeAddonUnavailable(`tsflow's native addon could not be loaded: ${describe(error)}`, {
                cause: error,
              }),
      }
    }
  }
  if ('error' in cached) throw cached.error
  return cached.binding
}

/** Whether the native addon is built and loads here. Never throws. */
export function nativeAvailable(): boolean {
  try {
    addon()
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------
// Errors from C
// ---------------------------------------------------------------------------------------

interface SyscallError extends Error {
  syscall: string
  errno: number
}

function isSyscallError(error: unknown): error is SyscallError {
  return (
    error instanceof Error &&
    typeof (error as Partial<SyscallError>).syscall === 'string' &&
    typeof (error as Partial<SyscallError>).errno === 'number'
  )
}

const E = osConstants.errno

/**
 * Calls into C and turns a syscall failure into a NativeError. `explain` gets the failure
 * and returns the message without the trailing "(syscall: strerror)", which is appended.
 * Anything else (a TypeError from C, say) passes through untouched.
 */
function call<T>(fn: () => T, explain: (error: SyscallError) => string): T {
  try {
    return fn()
  } catch (error) {
    if (!isSyscallError(error)) throw error
    throw new NativeError(`${explain(error)} (${error.message})`, error.syscall, error.errno)
  }
}

/** Wording shared by every shm operation for the errnos a user can act on. */
function shmProblem(name: string, error: SyscallError): string | undefined {
  switch (error.errno) {
    case E.ENOENT:
      return `shared memory segment '${name}' does not exist`
    case E.EEXIST:
      return `shared memory segment '${name}' already exists; pick another name, or unlink it if it is left over from a crashed run`
    case E.EACCES:
    case E.EPERM:
      return `permission denied for shared memory segment '${name}' (segments are created owner-only, mode 0600)`
    case E.ENAMETOOLONG:
      return `shared memory name '${name}' is too long`
    case E.EMFILE:
    case E.ENFILE:
      return `too many open files to open shared memory segment '${name}'`
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------------------
// Argument validation
// ---------------------------------------------------------------------------------------

// Linux (glibc) maps "/name" to /dev/shm/name: the name after the slash is one path
// component, so it must be non-empty, not "." or "..", and free of further slashes.
const SHM_NAME_MAX_BYTES = 255

function checkShmName(name: unknown, argument = 'name'): asserts name is string {
  if (typeof name !== 'string') {
    throw new TypeError(`${argument} must be a string like '/tsflow-1234', got ${typeof name}`)
  }
  if (!name.startsWith('/')) {
    throw new TypeError(`${argument} '${name}' must start with '/' (POSIX shared memory names look like '/tsflow-1234')`)
  }
  if (name.length === 1) {
    throw new TypeError(`${argument} '/' needs at least one character after the leading '/'`)
  }
  if (name.indexOf('/', 1) !== -1) {
    throw new TypeError(`${argument} '${name}' must not contain '/' after the leading one`)
  }
  if (name === '/.' || name === '/..') {
    throw new TypeError(`${argument} '${name}' is not a valid shared memory name`)
  }
  if (name.includes('\0')) {
    throw new TypeError(`${argument} must not contain NUL characters`)
  }
  const bytes = Buffer.byteLength(name, 'utf8')
  if (bytes > SHM_NAME_MAX_BYTES) {
    throw new RangeError(
      `${argument} is ${bytes} bytes long (UTF-8); shared memory names may be at most ${SHM_NAME_MAX_BYTES}`,
    )
  }
}

function checkSize(size: unknown): asserts size is number {
  if (typeof size !== 'number') {
    throw new TypeError(`size must be a number of bytes, got ${typeof size}`)
  }
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new RangeError(`size must be a positive integer number of bytes, got ${size}`)
  }
  // A Buffer cannot be longer than this, so a bigger segment could not be handed back.
  if (size > bufferConstants.MAX_LENGTH) {
    throw new RangeError(`size ${size} exceeds the largest Buffer Node.js can make (${bufferConstants.MAX_LENGTH} bytes)`)
  }
}

const MAX_TID = 2 ** 31 - 1

function checkTid(tid: unknown): asserts tid is number {
  if (typeof tid !== 'number') {
    throw new TypeError(`tid must be a thread id (a number; 0 for the calling thread), got ${typeof tid}`)
  }
  if (!Number.isInteger(tid) || tid < 0 || tid > MAX_TID) {
    throw new RangeError(`tid must be 0 (the calling thread) or a positive thread id, got ${tid}`)
  }
}

function whichThread(tid: number): string {
  return tid === 0 ? 'the calling thread' : `thread ${tid}`
}

// ---------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------

/**
 * Creates a new POSIX shared memory segment of `size` bytes (zero-filled, mode 0600) and
 * returns a Buffer over it. Fails with NativeError (errno EEXIST) if the name is taken.
 *
 * The segment outlives this process until someone calls `unlinkSharedMemory(name)`; the
 * mapping is released when the Buffer is garbage-collected.
 */
export function createSharedMemory(name: string, size: number): Buffer {
  checkShmName(name)
  checkSize(size)
  const native = addon()
  return call(
    () => native.shmCreate(name, size),
    (error) => shmProblem(name, error) ?? `could not create shared memory segment '${name}' of ${size} bytes`,
  )
}

/** Maps an existing segment; the Buffer's length is the segment's current size. */
export function openSharedMemory(name: string): Buffer {
  checkShmName(name)
  const native = addon()
  try {
    return call(
      () => native.shmOpen(name),
      (error) => {
        // The C side reports a zero-size segment as mmap EINVAL (mmap cannot map 0 bytes).
        if (error.syscall === 'mmap' && error.errno === E.EINVAL) {
          return `shared memory segment '${name}' has size 0, so there is nothing to map (its creator may not have sized it yet)`
        }
        return shmProblem(name, error) ?? `could not open shared memory segment '${name}'`
      },
    )
  } catch (error) {
    // Node refuses Buffers above buffer.constants.MAX_LENGTH; say which segment that was.
    if ((error as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new RangeError(
        `shared memory segment '${name}' is larger than the largest Buffer Node.js can make (${bufferConstants.MAX_LENGTH} bytes)`,
        { cause: error },
      )
    }
    throw error
  }
}

/**
 * Removes the segment's name. Processes that already mapped it keep a working mapping;
 * the memory is freed when the last one unmaps. Opening the name afterwards fails.
 */
export function unlinkSharedMemory(name: string): void {
  checkShmName(name)
  const native = addon()
  call(
    () => native.shmUnlink(name),
    (error) =>
      error.errno === E.ENOENT
        ? `cannot unlink shared memory segment '${name}': it does not exist`
        : (shmProblem(name, error) ?? `could not unlink shared memory segment '${name}'`),
  )
}

/** The segment's current size in bytes, without mapping it. */
export function sharedMemorySize(name: string): number {
  checkShmName(name)
  const native = addon()
  return call(
    () => native.shmSize(name),
    (error) => shmProblem(name, error) ?? `could not read the size of shared memory segment '${name}'`,
  )
}

// POSIX has no call to rename or list shared memory segments. On Linux, glibc's shm_open keeps
// "/name" as the file /dev/shm/name (a tmpfs), so both go through that directory.
const SHM_DIRECTORY = '/dev/shm'

/**
 * Renames segment `from` to `to` atomically (rename(2) within /dev/shm), replacing any segment
 * named `to`: a process opening `to` gets the old segment or the new one, never neither or a
 * mix. Mappings of the replaced segment stay valid. Linux only.
 */
export function renameSharedMemory(from: string, to: string): void {
  checkShmName(from, 'from')
  checkShmName(to, 'to')
  try {
    renameSync(join(SHM_DIRECTORY, from.slice(1)), join(SHM_DIRECTORY, to.slice(1)))
  } catch (error) {
    const errno = -((error as NodeJS.ErrnoException).errno ?? -E.EIO)
    const problem = errno === E.ENOENT ? `shared memory segment '${from}' does not exist` : `could not rename shared memory segment '${from}' to '${to}'`
    throw new NativeError(`${problem} (rename: ${(error as Error).message})`, 'rename', errno)
  }
}

/**
 * Creates segment `name` (it must not exist) holding `parts` one after another, written with
 * write(2) rather than through a mapping: tmpfs then allocates the pages in the write itself,
 * without a page fault per 4 KiB page, which makes a large put about as fast as one memcpy into
 * fresh memory (measured: 100 MB in ~36 ms here, against ~60 ms through a fresh mapping).
 * Linux only.
 */
export function writeSharedMemory(name: string, parts: readonly Uint8Array[]): void {
  checkShmName(name)
  const path = join(SHM_DIRECTORY, name.slice(1))
  let fd: number
  try {
    fd = openSync(path, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600)
  } catch (error) {
    const errno = -((error as NodeJS.ErrnoException).errno ?? -E.EIO)
    const problem = errno === E.EEXIST ? `shared memory segment '${name}' already exists` : `could not create shared memory segment '${name}'`
    throw new NativeError(`${problem} (open: ${(error as Error).message})`, 'open', errno)
  }
  try {
    for (const part of parts) {
      let written = 0
      while (written < part.byteLength) written += writeSync(fd, part, written, part.byteLength - written)
    }
  } catch (error) {
    const errno = -((error as NodeJS.ErrnoException).errno ?? -E.EIO)
    const problem = errno === E.ENOSPC ? `no space left in ${SHM_DIRECTORY} for shared memory segment '${name}'` : `could not write shared memory segment '${name}'`
    throw new NativeError(`${problem} (write: ${(error as Error).message})`, 'write', errno)
  } finally {
    closeSync(fd)
  }
}

/** The names ('/name') of this machine's shared memory segments starting with '/' + `prefix`. Linux only. */
export function listSharedMemory(prefix = ''): string[] {
  let files: string[]
  try {
    files = readdirSync(SHM_DIRECTORY)
  } catch (error) {
    const errno = -((error as NodeJS.ErrnoException).errno ?? -E.EIO)
    throw new NativeError(`could not list shared memory segments in ${SHM_DIRECTORY} (readdir: ${(error as Error).message})`, 'readdir', errno)
  }
  return files.filter((file) => file.startsWith(prefix)).map((file) => `/${file}`)
}

// ---------------------------------------------------------------------------------------
// CPU affinity
// ---------------------------------------------------------------------------------------

/** How many CPUs are online (sysconf(_SC_NPROCESSORS_ONLN)). */
export function onlineCpuCount(): number {
  const native = addon()
  return call(
    () => native.onlineCpus(),
    () => 'could not count the online CPUs',
  )
}

/**
 * The CPUs thread `tid` may run on, ascending. `tid` 0 is the calling thread: in Node.js
 * that is the JavaScript thread of this isolate (the main thread, or the worker thread
 * calling), not the whole process.
 */
export function getCpuAffinity(tid = 0): number[] {
  checkTid(tid)
  const native = addon()
  return call(
    () => native.getAffinity(tid),
    (error) =>
      error.errno === E.ESRCH
        ? `cannot read the CPU affinity of ${whichThread(tid)}: no such thread`
        : `could not read the CPU affinity of ${whichThread(tid)}`,
  )
}

/**
 * Restricts thread `tid` (0: the calling thread) to `cpus`. Only that thread changes:
 * threads that already exist keep their mask, while threads and child processes it
 * creates afterwards inherit the new one.
 */
export function setCpuAffinity(cpus: readonly number[], tid = 0): void {
  if (!Array.isArray(cpus)) {
    throw new TypeError(`cpus must be an array of CPU indices, got ${cpus === null ? 'null' : typeof cpus}`)
  }
  if (cpus.length === 0) {
    throw new RangeError('cpus must name at least one CPU')
  }
  checkTid(tid)
  const native = addon()
  const online = onlineCpuCount()
  cpus.forEach((cpu: unknown, i) => {
    if (typeof cpu !== 'number') {
      throw new TypeError(`cpus[${i}] must be a CPU index (a number), got ${typeof cpu}`)
    }
    if (!Number.isInteger(cpu) || cpu < 0) {
      throw new RangeError(`cpus[${i}] must be a non-negative integer CPU index, got ${cpu}`)
    }
    if (cpu >= online) {
      throw new RangeError(
        `cpus[${i}] is CPU ${cpu}, which is not online: valid CPU indices are 0..${online - 1} (${online} online)`,
      )
    }
  })
  const list = `[${cpus.join(', ')}]`
  call(
    () => native.setAffinity([...cpus], tid),
    (error) => {
      const base = `could not set the CPU affinity of ${whichThread(tid)} to ${list}`
      switch (error.errno) {
        case E.EINVAL:
          // The kernel intersects the mask with the cpuset the process is confined to.
          return `${base}: none of those CPUs is available to this process (a cgroup cpuset or container limit may exclude them)`
        case E.ESRCH:
          return `${base}: no such thread`
        case E.EPERM:
          return `${base}: not permitted (the thread belongs to another user; that needs CAP_SYS_NICE)`
        default:
          return base
      }
    },
  )
}

// ---------------------------------------------------------------------------------------
// Process lifetime
// ---------------------------------------------------------------------------------------

/**
 * Asks the kernel to send `signal` to this process when its parent exits, however the parent
 * ends (Linux `prctl(PR_SET_PDEATHSIG)`); 0 clears it. The parent is the thread that spawned
 * this process, so it suits children spawned from a process's main thread. Check
 * `process.ppid` afterwards: a parent that died before the call is not signalled.
 */
export function setParentDeathSignal(signal: NodeJS.Signals | number): void {
  const number = typeof signal === 'number' ? signal : osConstants.signals[signal]
  if (typeof number !== 'number' || !Number.isInteger(number) || number < 0) {
    throw new RangeError(`unknown signal ${String(signal)}: give a name such as 'SIGKILL' or a signal number`)
  }
  const native = addon()
  call(
    () => native.setParentDeathSignal(number),
    () => `could not set the parent-death signal to ${String(signal)}`,
  )
}
