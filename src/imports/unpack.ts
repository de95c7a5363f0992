/**
 * The worker side of proxy imports (docs/proxy-imports.md, "The node cache and its lock
 * protocol"): each shipped package is fetched from its store and unpacked once per node into a
 * cache directory, then reused by every later task and run whose manifest names the same hash.
 *
 * Loaded by worker processes and threads: imports only protocol/, proxy/, errors and util.
 *
 * Layout of a cache directory, for a package root `<name>@<version>-<hash16>`:
 *   <root>/               the unpacked files (renamed into place whole)
 *   <root>.done           the done marker (JSON, fsync'd, renamed into place): its presence means done
 *   <root>.lock           held by the one process unpacking it (JSON: pid, host, start), its mtime
 *                         refreshed while it works
 *   <root>.tmp-<pid>-<r>  where the holder extracts; only exists while a holder works (or crashed)
 */
import { createHash, randomUUID } from 'node:crypto'
import { accessSync, constants, existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs'
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises'
import { hostname, tmpdir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { PackageUnpackError, PackageUnpackTimeout, ProtocolError } from '../errors.js'
import type { ShippedPackageWire } from '../protocol/imports.js'
import { isObjectKey, keyText, type ObjectKey } from '../proxy/connector.js'
import type { Store } from '../proxy/store.js'
import { boolean, nonNegativeInt, object, optional, positiveInt, arrayOf, string } from '../util/schema.js'
import { extractTar, TarExtractError } from './extract.js'
import { describeLock, isStale, lockStateSync, release, releaseSync, takeOver, takeOverSync, tryLock, tryLockSync } from './node-lock.js'

/** How long a caller waits for another process's unpack by default. */
export const DEFAULT_UNPACK_TIMEOUT_MS = 300_000
/** A lock whose mtime was not refreshed for this long is a crashed holder's (default). */
export const DEFAULT_STALE_LOCK_MS = 30_000

export interface UnpackOptions {
  /** how long to wait for another process that holds the package's lock (default 300 s) */
  timeoutMs?: number
  /**
   * a lock not refreshed for this long belongs to a crashed holder and is taken over (default
   * 30 s). A holder on this host whose pid is gone is taken over at once.
   */
  staleLockMs?: number
  /** check the fetched bytes against the manifest's sha256 (default true) */
  verify?: boolean
}

export interface CleanOptions {
  /** only packages whose last use (done marker mtime) is at least this old */
  olderThanMs?: number
  /** content hashes (sha256 hex, or their first 16 digits) to keep */
  keep?: readonly string[]
  /** as UnpackOptions.staleLockMs: a lock older than this is a crashed holder's and is removed */
  staleLockMs?: number
}

const unpackOptionsSchema = object({ timeoutMs: optional(positiveInt), staleLockMs: optional(positiveInt), verify: optional(boolean) })
const cleanOptionsSchema = object({ olderThanMs: optional(nonNegativeInt), keep: optional(arrayOf(string)), staleLockMs: optional(positiveInt) })

const gunzipAsync = promisify(gunzip)
const HASH = /^[0-9a-f]{64}$/i
const PACKAGE_ENTRY = /^(.+-[0-9a-f]{16})(\.done|\.lock|\.done\.tmp-.+|\.lock\.stale-.+|\.tmp-.+)?$/

function uid(): string {
  return String(process.getuid?.() ?? userInfo().username)
}

function writableDirectory(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return false
    accessSync(path, constants.W_OK | constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `/dev/shm/tsflow-imports-<uid>` when /dev/shm is a writable directory, else under the temporary directory. */
export function defaultCacheDir(): string {
  return join(writableDirectory('/dev/shm') ? '/dev/shm' : tmpdir(), `tsflow-imports-${uid()}`)
}

// A placeholder's value becomes one path component.
function component(text: string): string {
  return text.replace(/[/\\]/g, '_') || '_'
}

/**
 * The cache directory a manifest's `cacheDir` names where this process runs: `{block}` becomes
 * the block id (TSFLOW_BLOCK_ID, else 'local') and `{host}` the host name. Undefined: the default.
 */
export function expandCacheDir(dir: string | undefined, where: { block?: string; host?: string } = {}): string {
  if (dir === undefined) return defaultCacheDir()
  const block = where.block ?? process.env.TSFLOW_BLOCK_ID ?? 'local'
  const host = where.host ?? hostname()
  return resolve(dir.replaceAll('{block}', component(block)).replaceAll('{host}', component(host)))
}

function checkPackage(pkg: ShippedPackageWire): void {
  if (typeof pkg?.name !== 'string' || pkg.name === '') throw new ProtocolError(`a shipped package needs a name (got ${JSON.stringify(pkg?.name)})`)
  if (typeof pkg.hash !== 'string' || !HASH.test(pkg.hash)) {
    throw new ProtocolError(`shipped package '${pkg.name}': hash must be a sha256 in hex (64 digits), got ${JSON.stringify(pkg.hash)}`)
  }
}

// Names and versions become one safe path component: a scope's '/' is '+', anything odd is '_'.
function safe(text: string): string {
  return text.replace(/\//g, '+').replace(/[^A-Za-z0-9._@+-]/g, '_').replace(/^\./, '_')
}

/** The unpacked package's root in `cacheDir`: `<name>@<version>-<first 16 digits of its hash>`. */
export function packageDir(cacheDir: string, pkg: ShippedPackageWire): string {
  checkPackage(pkg)
  const version = pkg.version ? `@${safe(pkg.version)}` : ''
  return join(resolve(cacheDir), `${safe(pkg.name)}${version}-${pkg.hash.slice(0, 16).toLowerCase()}`)
}

const donePath = (dir: string): string => `${dir}.done`
const lockPath = (dir: string): string => `${dir}.lock`

/**
 * The package root `dir` (from packageDir) is unpacked: its done marker exists (and the root,
 * so that a marker whose files were lost is unpacked again instead of trusted).
 */
export function isUnpacked(dir: string): boolean {
  return existsSync(donePath(dir)) && existsSync(dir)
}

// The done marker's mtime is the package's last use (what cleanImportsCache's olderThanMs
// reads); touched once per process, not per task.
const touched = new Set<string>()
function used(dir: string): string {
  if (!touched.has(dir)) {
    touched.add(dir)
    try {
      const now = new Date()
      utimesSync(donePath(dir), now, now)
    } catch {
      // removed meanwhile or read-only: only the cleanup's age is affected
    }
  }
  return dir
}

// ---------------------------------------------------------------------------------------------
// Unpacking

interface Settings {
  timeoutMs: number
  staleLockMs: number
  verify: boolean
}

const inFlight = new Map<string, Promise<string>>()

/**
 * Resolves to the package's root in `cacheDir` once it is unpacked there: at once when its done
 * marker exists; else this caller takes the node-level lock and unpacks it, or waits for the
 * process that holds the lock (taking the lock over when that process crashed). Concurrent calls
 * in one process share one unpack.
 */
export async function ensureUnpacked(pkg: ShippedPackageWire, store: Store, cacheDir: string, options: UnpackOptions = {}): Promise<string> {
  const dir = packageDir(cacheDir, pkg)
  const checked = unpackOptionsSchema(options, 'ensureUnpacked options')
  if (isUnpacked(dir)) return used(dir)
  const settings: Settings = {
    timeoutMs: checked.timeoutMs ?? DEFAULT_UNPACK_TIMEOUT_MS,
    staleLockMs: checked.staleLockMs ?? DEFAULT_STALE_LOCK_MS,
    verify: checked.verify ?? true,
  }
  let pending = inFlight.get(dir)
  if (!pending) {
    pending = unpackOnce(pkg, store, dir, settings).finally(() => inFlight.delete(dir))
    inFlight.set(dir, pending)
  }
  return pending
}

function keyLabel(pkg: ShippedPackageWire): string {
  return isObjectKey(pkg.key) ? keyText(pkg.key as ObjectKey) : JSON.stringify(pkg.key)
}

async function unpackOnce(pkg: ShippedPackageWire, store: Store, dir: string, settings: Settings): Promise<string> {
  const cacheDir = resolve(dir, '..')
  const lock = lockPath(dir)
  try {
    await mkdir(cacheDir, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw new PackageUnpackError(pkg.name, keyLabel(pkg), dir, `cannot create the cache directory: ${(error as Error).message}`, { cause: error })
  }
  const deadline = Date.now() + settings.timeoutMs
  let delay = 5
  for (;;) {
    if (isUnpacked(dir)) return used(dir)
    let handle: FileHandle | undefined
    try {
      handle = await tryLock(lock)
    } catch (error) {
      throw new PackageUnpackError(pkg.name, keyLabel(pkg), dir, `cannot create the lock ${lock}: ${(error as Error).message}`, { cause: error })
    }
    if (handle) {
      try {
        // Finished by another process between the look above and taking the lock.
        if (!isUnpacked(dir)) await unpackHolding(pkg, store, dir, handle, settings)
        return used(dir)
      } finally {
        await release(lock, handle)
      }
    }
    const state = lockStateSync(lock)
    if (!state) continue
    if (isStale(state, settings.staleLockMs)) {
      await takeOver(lock, state)
      continue
    }
    const left = deadline - Date.now()
    if (left <= 0) throw new PackageUnpackTimeout(pkg.name, dir, lock, settings.timeoutMs, describeLock(lock, state))
    await new Promise((done) => setTimeout(done, Math.min(delay, left)))
    delay = Math.min(delay * 1.5, 250)
  }
}

// What a crashed holder may have left: its temp dirs, and a root renamed into place without a
// done marker. Only called by the lock's holder, so none of it belongs to a live unpack.
async function removeLeftovers(dir: string): Promise<void> {
  const cacheDir = resolve(dir, '..')
  const base = dir.slice(cacheDir.length + 1)
  const names = await readdir(cacheDir)
  await Promise.all(
    names
      .filter((name) => name.startsWith(`${base}.tmp-`) || name.startsWith(`${base}.done.tmp-`))
      .map((name) => rm(join(cacheDir, name), { recursive: true, force: true })),
  )
  await rm(dir, { recursive: true, force: true })
}

async function unpackHolding(pkg: ShippedPackageWire, store: Store, dir: string, handle: FileHandle, settings: Settings): Promise<void> {
  const key = keyLabel(pkg)
  const fail = (reason: string, cause?: unknown): PackageUnpackError => new PackageUnpackError(pkg.name, key, dir, reason, cause === undefined ? undefined : { cause })
  // Keeps the lock fresh for callers on other hosts; through the handle, so only our own lock.
  const heartbeatMs = Math.max(20, Math.min(2000, Math.floor(settings.staleLockMs / 4)))
  const heartbeat = setInterval(() => {
    const now = new Date()
    handle.utimes(now, now).catch(() => {})
  }, heartbeatMs)
  heartbeat.unref()
  const started = performance.now()
  const temp = `${dir}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`
  let renamed = false
  try {
    try {
      await removeLeftovers(dir)
      await mkdir(temp)
    } catch (error) {
      throw fail(`cannot prepare ${temp}: ${(error as Error).message}`, error)
    }
    if (!isObjectKey(pkg.key)) throw fail(`the manifest's store key is not an object key`)
    let bytes: Uint8Array
    try {
      bytes = await store.get<Uint8Array>(pkg.key as ObjectKey, { serializer: 'bytes', cache: false })
    } catch (error) {
      throw fail(`cannot fetch it from store '${store.name}': ${(error as Error).message}`, error)
    }
    const tar = settings.verify ? await verified(bytes, pkg.hash, fail) : bytes
    let files = 0
    try {
      const written = await extractTar(tar, temp)
      files = written.files + written.symlinks
    } catch (error) {
      throw fail(extractFailure(error, bytes.byteLength), error)
    }
    if (files === 0) throw fail(`the stored archive (${bytes.byteLength} bytes) holds no files`)
    try {
      try {
        await rename(temp, dir)
      } catch (error) {
        // Another holder (after a mistaken takeover) put the same content in place first.
        const code = (error as NodeJS.ErrnoException).code
        if ((code === 'ENOTEMPTY' || code === 'EEXIST') && isUnpacked(dir)) {
          await rm(temp, { recursive: true, force: true })
          return
        }
        throw error
      }
      renamed = true
      await writeDone(dir, { name: pkg.name, version: pkg.version, hash: pkg.hash, files, bytes: bytes.byteLength, unpackMs: performance.now() - started })
    } catch (error) {
      throw fail(`cannot move it into place: ${(error as Error).message}`, error)
    }
  } catch (error) {
    await rm(temp, { recursive: true, force: true }).catch(() => {})
    if (renamed && !isUnpacked(dir)) await rm(dir, { recursive: true, force: true }).catch(() => {})
    throw error
  } finally {
    clearInterval(heartbeat)
  }
}

// The manifest's hash is the sha256 of the tar; a gzipped object may be hashed either way.
async function verified(bytes: Uint8Array, hash: string, fail: (reason: string, cause?: unknown) => Error): Promise<Uint8Array> {
  const want = hash.toLowerCase()
  const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')
  if (sha256(bytes) === want) return bytes
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    let tar: Uint8Array
    try {
      tar = await gunzipAsync(bytes)
    } catch (error) {
      throw fail(`the stored bytes look gzipped but do not decompress: ${(error as Error).message}`, error)
    }
    if (sha256(tar) === want) return tar
  }
  throw fail(`the stored bytes (${bytes.byteLength}) do not match the manifest's sha256 ${want.slice(0, 16)}…: corrupted or replaced in the store`)
}

// What went wrong in extract.ts, for the PackageUnpackError that wraps it.
function extractFailure(error: unknown, size: number): string {
  const message = (error as Error)?.message ?? String(error)
  if (!(error instanceof TarExtractError)) return `cannot extract it: ${message}`
  if (error.kind === 'format') return `the stored bytes (${size}) are not a valid tar archive: ${message}`
  if (error.kind === 'refused') return `the stored archive (${size} bytes) is refused: ${message}`
  return `cannot extract it: ${message}`
}

async function writeDone(dir: string, record: Record<string, unknown>): Promise<void> {
  const done = donePath(dir)
  const temp = `${done}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`
  const text = JSON.stringify({ ...record, pid: process.pid, host: hostname(), at: new Date().toISOString() })
  const handle = await open(temp, 'wx')
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temp, done)
  const parent = await open(resolve(dir, '..'), 'r')
  try {
    await parent.sync()
  } finally {
    await parent.close()
  }
}

/**
 * Blocks the calling thread until the package is unpacked in `cacheDir` (by this process's
 * background unpack or another's), for CommonJS `require`, which cannot await. Sleeps with
 * Atomics.wait, short and growing. Throws PackageUnpackTimeout after `timeoutMs`.
 */
export function waitUnpackedSync(pkg: ShippedPackageWire, cacheDir: string, timeoutMs: number): string {
  const dir = packageDir(cacheDir, pkg)
  const deadline = Date.now() + timeoutMs
  const cell = new Int32Array(new SharedArrayBuffer(4))
  let delay = 1
  while (!isUnpacked(dir)) {
    const left = deadline - Date.now()
    if (left <= 0) {
      const lock = lockPath(dir)
      throw new PackageUnpackTimeout(pkg.name, dir, lock, timeoutMs, describeLock(lock, lockStateSync(lock)))
    }
    Atomics.wait(cell, 0, 0, Math.min(delay, left))
    delay = Math.min(delay * 2, 50)
  }
  return used(dir)
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/**
 * Removes unpacked packages from a cache directory (default: defaultCacheDir()), with the temp
 * dirs and stale locks crashed unpackers left. A package whose lock is live (being unpacked, or
 * cleaned by another process) is left alone; `olderThanMs` and `keep` spare recently used and
 * named ones. Packages tasks are importing from right now are not detectable: clean between
 * runs, or with olderThanMs.
 */
export function cleanImportsCache(cacheDir: string = defaultCacheDir(), options: CleanOptions = {}): { removed: string[] } {
  const checked = cleanOptionsSchema(options, 'cleanImportsCache options')
  const staleLockMs = checked.staleLockMs ?? DEFAULT_STALE_LOCK_MS
  const keep = new Set((checked.keep ?? []).map((hash) => hash.slice(0, 16).toLowerCase()))
  const root = resolve(cacheDir)
  let names: string[]
  try {
    names = readdirSync(root)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { removed: [] }
    throw error
  }
  const entries = new Map<string, string[]>()
  for (const name of names) {
    const match = PACKAGE_ENTRY.exec(name)
    if (!match) continue
    const list = entries.get(match[1]!) ?? []
    list.push(name)
    entries.set(match[1]!, list)
  }
  const removed: string[] = []
  for (const [base, files] of entries) {
    const dir = join(root, base)
    const done = donePath(dir)
    const isDone = files.includes(`${base}.done`)
    if (isDone && keep.has(base.slice(-16))) continue
    if (isDone && checked.olderThanMs !== undefined) {
      try {
        if (Date.now() - statSync(done).mtimeMs < checked.olderThanMs) continue
      } catch {
        continue
      }
    }
    const lock = lockPath(dir)
    let fd = tryLockSync(lock)
    if (fd === undefined) {
      const state = lockStateSync(lock)
      if (state && !isStale(state, staleLockMs)) continue
      if (state) takeOverSync(lock, state)
      fd = tryLockSync(lock)
      if (fd === undefined) continue
    }
    try {
      // Marker first: from here on no reader takes the package as unpacked.
      rmSync(done, { force: true })
      rmSync(dir, { recursive: true, force: true })
      for (const name of files) {
        if (name !== `${base}.lock`) rmSync(join(root, name), { recursive: true, force: true })
      }
      touched.delete(dir)
      if (files.some((name) => name !== `${base}.lock` && !name.startsWith(`${base}.lock.stale-`))) removed.push(dir)
    } finally {
      releaseSync(lock, fd)
    }
  }
  return { removed }
}

/**
 * Removes a whole cache directory (default: defaultCacheDir()), whatever it holds, locks
 * included: for when no task on the node uses it any more (the end of a run, a node's epilogue).
 */
export function unlinkImportsCache(cacheDir: string = defaultCacheDir()): void {
  const root = resolve(cacheDir)
  rmSync(root, { recursive: true, force: true })
  for (const dir of touched) if (dir.startsWith(`${root}/`)) touched.delete(dir)
}
