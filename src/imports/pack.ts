/**
 * Packing (issue 9, docs/proxy-imports.md "Packing"), the kernel side of proxy imports: each
 * traced package becomes one deterministic tar whose sha256 names it, kept in a pack cache across
 * runs (so an unchanged package is not packed again), put into a store under a key derived from
 * that hash (skipped when the store already holds it), and described in the `ImportsWire`
 * manifest that travels with the app's function.
 *
 * Deterministic: entries sorted by path, every mtime the same fixed date, no uid/gid/user names
 * (node-tar's `portable`), modes reduced to 0644/0755 (0755 for a file with any execute bit),
 * hard links stored as plain files. So the same files give the same bytes on any machine and
 * any install, and the hash only changes when content, names or executability change.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { availableParallelism, homedir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { gzipSync } from 'node:zlib'
import { PackagePackError, UsageError } from '../errors.js'
import type { ObjectKey } from '../proxy/connector.js'
import type { Store } from '../proxy/store.js'
import type { ImportsWire, ShippedPackageWire } from '../protocol/imports.js'
import type { TracedImports, TracedPackage } from './trace.js'
import { FORMAT, REMOTE_STAT_US, tarOf, tarOfRemote, walk, type Walked } from './pack-tar.js'

export { PACK_MTIME } from './pack-tar.js'

/** The key id prefix of packed packages in a store: `tsflow-pkg-<hash>`. */
export const PACKAGE_KEY_PREFIX = 'tsflow-pkg-'

export interface PackOptions {
  /** gzip the tar (default false: node-local stores are fast, and gzip costs CPU on both sides) */
  compress?: boolean
  /**
   * where packed tars are kept across runs, by a fingerprint of each package's directory
   * (default `defaultPackCacheDir()`); false: no cache, every call packs
   */
  packCacheDir?: string | false
}

/** One packed package. */
export interface PackedPackage {
  name: string
  version: string | undefined
  /** the package directory the tar was made from */
  root: string
  native: boolean
  /** sha256 (hex) of `bytes`: of the tar, or of the .tar.gz when compressed */
  hash: string
  /** bytes of the packed tar */
  size: number
  compressed: boolean
  /** true when the tar came from the pack cache: the package's files were only stat'ed, not read */
  cached: boolean
  /** the tar in the pack cache (undefined with `packCacheDir: false`) */
  file: string | undefined
  bytes: Uint8Array
}

/** `$XDG_CACHE_HOME/tsflow/packs`, else `~/.cache/tsflow/packs`. */
export function defaultPackCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'tsflow', 'packs')
}


interface CacheIndex {
  format: string
  hash: string
  size: number
  compressed: boolean
}

function tarName(hash: string, compressed: boolean): string {
  return `${hash}${compressed ? '.tar.gz' : '.tar'}`
}

// What the pack cache has for this fingerprint, if its tar is still there whole.
function cacheLookup(dir: string, fingerprint: string): (CacheIndex & { file: string }) | undefined {
  let index: CacheIndex
  try {
    index = JSON.parse(readFileSync(join(dir, `${fingerprint}.json`), 'utf8')) as CacheIndex
  } catch {
    return undefined // absent or unreadable: pack again
  }
  if (index.format !== FORMAT || typeof index.hash !== 'string') return undefined
  const file = join(dir, tarName(index.hash, index.compressed))
  try {
    if (statSync(file).size !== index.size) return undefined
  } catch {
    return undefined
  }
  return { ...index, file }
}

// Concurrent runs may write the same entry: each writes a unique temporary name and renames it,
// so a reader sees a whole file or none; the tar before the index that points at it.
function writeAtomically(path: string, data: Uint8Array | string): void {
  const temporary = `${path}.tmp-${process.pid}-${randomUUID()}`
  try {
    writeFileSync(temporary, data)
    renameSync(temporary, path)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
}

/** @internal A package packed (or found in the pack cache); `bytes` absent on a cache hit. */
export interface PackRecord {
  hash: string
  size: number
  compressed: boolean
  cached: boolean
  file: string | undefined
  bytes: Uint8Array | undefined
}

/** @internal What went wrong in a pack thread, rebuilt as a PackagePackError by the caller. */
export class PackFailure extends Error {
  constructor(
    readonly what: string,
    readonly causeMessage: string,
    readonly causeCode: string | undefined,
  ) {
    super(`${what} (${causeMessage})`)
  }
}

function packFailure(error: unknown, what = 'cannot read it'): PackFailure {
  return new PackFailure(what, error instanceof Error ? error.message : String(error), (error as NodeJS.ErrnoException | undefined)?.code)
}

/**
 * @internal Packs one package (pack threads run it): the stat walk, a pack-cache lookup by its
 * fingerprint, else the tar (gzipped when asked), its hash, and the cache entry. Files on a local
 * disk are read one after the other (fastest there); on a network file system, many at once
 * (`remote` forces one or the other).
 */
export async function packInThread(pkg: TracedPackage, options: PackOptions, remote?: boolean): Promise<PackRecord> {
  const compressed = options.compress ?? false
  const cacheDir = options.packCacheDir === false ? undefined : (options.packCacheDir ?? defaultPackCacheDir())
  let walked: Walked
  try {
    walked = walk(pkg, compressed)
  } catch (error) {
    throw packFailure(error)
  }
  if (cacheDir !== undefined) {
    const hit = cacheLookup(cacheDir, walked.fingerprint)
    if (hit) {
      // the index's mtime is the entry's last use, for cleanPackCache
      const now = new Date()
      try {
        utimesSync(join(cacheDir, `${walked.fingerprint}.json`), now, now)
      } catch {
        // removed meanwhile by a cleanup: the tar is still read below or packed again next time
      }
      return { hash: hit.hash, size: hit.size, compressed, cached: true, file: hit.file, bytes: undefined }
    }
  }
  let bytes: Buffer
  try {
    bytes = (remote ?? walked.statMicros > REMOTE_STAT_US) ? await tarOfRemote(pkg.root, walked) : tarOf(pkg.root, walked)
    if (compressed) bytes = gzipSync(bytes, { level: 6 })
  } catch (error) {
    throw packFailure(error)
  }
  const hash = createHash('sha256').update(bytes).digest('hex')
  let file: string | undefined
  if (cacheDir !== undefined) {
    file = join(cacheDir, tarName(hash, compressed))
    const index: CacheIndex = { format: FORMAT, hash, size: bytes.byteLength, compressed }
    try {
      mkdirSync(cacheDir, { recursive: true })
      writeAtomically(file, bytes)
      writeAtomically(join(cacheDir, `${walked.fingerprint}.json`), JSON.stringify(index))
    } catch (error) {
      throw packFailure(error, `cannot write the pack cache ${cacheDir} (set packCacheDir to a writable directory, or false)`)
    }
  }
  return { hash, size: bytes.byteLength, compressed, cached: false, file, bytes }
}

function failure(pkg: TracedPackage, error: unknown): PackagePackError {
  if (error instanceof PackagePackError) return error
  const { what, causeMessage, causeCode } = error instanceof PackFailure ? error : packFailure(error, 'cannot pack it')
  const cause = Object.assign(new Error(causeMessage), causeCode === undefined ? {} : { code: causeCode })
  return new PackagePackError(pkg.name, pkg.root, `${what} (${causeMessage})`, { cause })
}

// Packing runs on a few threads: node-tar's synchronous pack is much faster than its streaming
// one for many small files, and on a thread it blocks neither the kernel's event loop nor the
// other packages' packs. Idle threads end after a while and never keep the process alive.
const POOL_SIZE = Math.max(1, Math.min(4, availableParallelism()))
const IDLE_MS = 5_000
const PACK_WORKER = new URL('./pack-worker.js', import.meta.url)

interface PackJob {
  pkg: TracedPackage
  options: PackOptions
  resolve: (record: PackRecord) => void
  reject: (error: unknown) => void
}

/** @internal the messages of pack threads */
export type PackReply = { record: PackRecord } | { failure: { what: string; causeMessage: string; causeCode: string | undefined } }

class PackPool {
  private readonly idle: Worker[] = []
  private readonly queue: PackJob[] = []
  private running = 0
  private idleTimer: NodeJS.Timeout | undefined

  run(pkg: TracedPackage, options: PackOptions): Promise<PackRecord> {
    return new Promise((resolve, reject) => {
      this.queue.push({ pkg: { ...pkg, dependencies: {} }, options: { compress: options.compress, packCacheDir: options.packCacheDir ?? defaultPackCacheDir() }, resolve, reject })
      this.next()
    })
  }

  private next(): void {
    while (this.queue.length > 0 && (this.idle.length > 0 || this.running < POOL_SIZE)) {
      const job = this.queue.shift()!
      let worker: Worker
      try {
        worker = this.idle.pop() ?? this.spawn()
      } catch (error) {
        job.reject(packFailure(error, 'cannot start a pack thread'))
        continue
      }
      this.running++
      worker.ref()
      const exited = (code: number): void => done(new Error(`the pack thread exited (code ${code}) while packing`))
      const done = (reply: PackReply | Error): void => {
        worker.off('message', done)
        worker.off('error', done)
        worker.off('exit', exited)
        this.running--
        if (reply instanceof Error) {
          job.reject(packFailure(reply, 'the pack thread failed'))
        } else {
          // bytes arrive as a plain Uint8Array; a Buffer over the same memory, like a cache hit's readFile
          const bytes = 'record' in reply ? reply.record.bytes : undefined
          if (bytes) reply = { record: { ...(reply as { record: PackRecord }).record, bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } }
          if ('record' in reply) job.resolve(reply.record)
          else job.reject(new PackFailure(reply.failure.what, reply.failure.causeMessage, reply.failure.causeCode))
          worker.unref()
          this.idle.push(worker)
        }
        this.next()
        this.scheduleIdleEnd()
      }
      worker.on('message', done)
      worker.on('error', done)
      worker.on('exit', exited)
      worker.postMessage({ pkg: job.pkg, options: job.options })
    }
  }

  private spawn(): Worker {
    // No inherited node flags: the thread runs our plain JS, and some flags make Worker() throw.
    const worker = new Worker(PACK_WORKER, { execArgv: [] })
    worker.unref()
    // a thread that ends while idle (terminated, or it failed) is not handed another job
    worker.on('exit', () => {
      const at = this.idle.indexOf(worker)
      if (at >= 0) this.idle.splice(at, 1)
    })
    worker.on('error', () => {}) // reported to the job in flight by its own listener
    return worker
  }

  private scheduleIdleEnd(): void {
    clearTimeout(this.idleTimer)
    if (this.running > 0 || this.idle.length === 0) return
    this.idleTimer = setTimeout(() => {
      for (const worker of this.idle.splice(0)) void worker.terminate()
    }, IDLE_MS)
    this.idleTimer.unref()
  }
}

const pool = new PackPool()

async function pack(pkg: TracedPackage, options: PackOptions): Promise<PackRecord> {
  try {
    return await pool.run(pkg, options)
  } catch (error) {
    throw failure(pkg, error)
  }
}

async function bytesOf(pkg: TracedPackage, record: PackRecord): Promise<Uint8Array> {
  if (record.bytes) return record.bytes
  try {
    return await readFile(record.file!)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw failure(pkg, packFailure(error, `cannot read its packed tar ${record.file}`))
  }
  // A cleanPackCache removed the tar after the lookup: pack it again, here only.
  const again = await pack(pkg, { compress: record.compressed, packCacheDir: false })
  if (again.hash !== record.hash) throw failure(pkg, packFailure(new Error(`its hash is now ${again.hash}, not ${record.hash}`), 'it changed while being shipped'))
  return again.bytes!
}

/**
 * Packs one package's directory (its own `node_modules` left out) into a deterministic tar, or
 * takes it from the pack cache when nothing in the directory changed (same directory, and the
 * same paths, modes, sizes, mtimes, ctimes and inodes). Symbolic links inside the package stay
 * links, their targets as written (a link pointing outside the package dangles where it is
 * unpacked). A directory that cannot be read is
 * PackagePackError (E_PACKAGE_PACK) naming the package, the directory and the cause.
 */
export async function packPackage(pkg: TracedPackage, options: PackOptions = {}): Promise<PackedPackage> {
  const record = await pack(pkg, options)
  const bytes = await bytesOf(pkg, record)
  const { name, version, root, native } = pkg
  return { name, version, root, native, hash: record.hash, size: record.size, compressed: record.compressed, cached: record.cached, file: record.file, bytes }
}

/**
 * The packs made in one run: a package directory is packed (or looked up in the pack cache)
 * once per memo, and a package's bytes put once per store. shipPackages uses one process-wide
 * memo unless given its own; give each run its own when one process runs several workflows
 * whose packages may change in between.
 */
export class PackMemo {
  /** @internal packs by package directory, compression and pack cache */
  readonly packs = new Map<string, Promise<PackRecord>>()
  /** @internal keys by store, then by hash */
  readonly puts = new WeakMap<Store, Map<string, Promise<ObjectKey>>>()
}

export interface CleanPackCacheOptions {
  /** the pack cache (default defaultPackCacheDir()) */
  packCacheDir?: string
  /** remove only entries not used for this long (default 0: every entry) */
  olderThanMs?: number
}

/**
 * Removes pack-cache entries not used for `olderThanMs` (their index's mtime, refreshed on every
 * hit), then every tar no remaining index points at, and temporary files older than an hour
 * (a crashed writer's). Safe beside running packs: a lookup whose tar was removed packs again.
 * Resolves to the files removed.
 */
export async function cleanPackCache(options: CleanPackCacheOptions = {}): Promise<string[]> {
  const dir = options.packCacheDir ?? defaultPackCacheDir()
  const olderThanMs = options.olderThanMs ?? 0
  if (!Number.isFinite(olderThanMs) || olderThanMs < 0) throw new UsageError(`cleanPackCache: olderThanMs must be a number of ms >= 0 (got ${olderThanMs})`)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const now = Date.now()
  const removed: string[] = []
  const remove = (name: string): void => {
    rmSync(join(dir, name), { force: true })
    removed.push(join(dir, name))
  }
  const ageOf = (name: string): number | undefined => {
    try {
      return now - statSync(join(dir, name)).mtimeMs
    } catch {
      return undefined // removed meanwhile
    }
  }
  const kept = new Set<string>()
  for (const name of names.filter((n) => n.endsWith('.json') && !n.includes('.tmp-'))) {
    const age = ageOf(name)
    if (age === undefined) continue
    if (age >= olderThanMs) {
      remove(name)
      continue
    }
    try {
      const index = JSON.parse(readFileSync(join(dir, name), 'utf8')) as CacheIndex
      kept.add(tarName(index.hash, index.compressed))
    } catch {
      remove(name) // unreadable: useless
    }
  }
  for (const name of names) {
    const isTar = /^[0-9a-f]{64}\.tar(\.gz)?$/.test(name)
    if (isTar && !kept.has(name)) remove(name)
    else if (name.includes('.tmp-') && (ageOf(name) ?? 0) > 3_600_000) remove(name)
  }
  return removed
}

export function createPackMemo(): PackMemo {
  return new PackMemo()
}

const processMemo = createPackMemo()

/** What shipPackages did for one package (for benchmarks and logs). */
export interface ShipEvent {
  name: string
  root: string
  hash: string
  size: number
  /** 'packed': its files were read and packed; 'cache': found in the pack cache; 'memo': shipped earlier in this run */
  source: 'packed' | 'cache' | 'memo'
  /** whether its bytes were put into the store now (false: the store had them, or this run put them already) */
  put: boolean
  /** time spent on it (pack or cache lookup, store check and put), ms */
  ms: number
}

export interface ShipOptions extends PackOptions {
  /** the node-local cache directory for the manifest (`{block}`, `{host}` allowed); absent: the workers' default */
  cacheDir?: string
  /** this run's memo (default: one for the whole process) */
  memo?: PackMemo
  /** called once per package shipped */
  onPackage?: (event: ShipEvent) => void
  /** packages packed at a time (default 4) */
  concurrency?: number
}

/**
 * The key a package's bytes are kept under in `store`: a fresh key of its connector (so
 * connectors whose keys carry more than an id, such as zmq's owner or multi's child, keep theirs)
 * with the id `tsflow-pkg-<hash>`, so a persistent store (file, redis) is found to hold it in a
 * later run.
 */
export function packageKey(store: Store, hash: string): ObjectKey {
  return { ...store.connector.newKey(), id: `${PACKAGE_KEY_PREFIX}${hash}` }
}

/**
 * Packs every traced package (once per memo), puts each into `store` with the `bytes` serializer
 * unless the store already holds it (`exists` under its key), and gives the manifest that travels
 * with the app's function: the store's config, each package by hash with its key, size and
 * dependency edges (as hashes), and the entry's roots (as hashes). Packages with identical
 * content (the same tar hash) are listed once.
 */
export async function shipPackages(traced: TracedImports, store: Store, options: ShipOptions = {}): Promise<ImportsWire> {
  const memo = options.memo ?? processMemo
  const concurrency = options.concurrency ?? 4
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`shipPackages: concurrency must be a positive integer (got ${concurrency})`)
  let puts = memo.puts.get(store)
  if (!puts) memo.puts.set(store, (puts = new Map()))
  const storePuts = puts

  const shipped = new Map<string, { pkg: TracedPackage; record: PackRecord; key: ObjectKey }>() // by root
  const shipOne = async (pkg: TracedPackage): Promise<void> => {
    const started = performance.now()
    const memoKey = `${pkg.root}\0${options.compress ? 'gzip' : 'tar'}\0${options.packCacheDir === false ? '' : (options.packCacheDir ?? defaultPackCacheDir())}`
    let packing = memo.packs.get(memoKey)
    const fromMemo = packing !== undefined
    if (!packing) {
      packing = pack(pkg, options)
      memo.packs.set(memoKey, packing)
      packing.catch(() => memo.packs.delete(memoKey)) // a failure is not remembered: a fix is seen by the next call
    }
    const record = await packing
    let put = false
    let putting = storePuts.get(record.hash)
    if (!putting) {
      putting = (async () => {
        const key = packageKey(store, record.hash)
        if (!(await store.exists(key))) {
          await store.set(key, await bytesOf(pkg, record), { serializer: 'bytes' })
          put = true
        }
        return key
      })()
      storePuts.set(record.hash, putting)
      putting.catch(() => storePuts.delete(record.hash))
    }
    const key = await putting
    shipped.set(pkg.root, { pkg, record, key })
    options.onPackage?.({ name: pkg.name, root: pkg.root, hash: record.hash, size: record.size, source: fromMemo ? 'memo' : record.cached ? 'cache' : 'packed', put, ms: performance.now() - started })
  }

  const queue = [...traced.packages]
  const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    for (let pkg = queue.shift(); pkg !== undefined; pkg = queue.shift()) await shipOne(pkg)
  })
  await Promise.all(workers)

  const hashOf = (root: string, from: string): string => {
    const entry = shipped.get(root)
    if (!entry) throw new UsageError(`shipPackages: ${from} depends on the package at ${root}, which is not among the traced packages (trace with traceImports)`)
    return entry.record.hash
  }
  const packages = new Map<string, ShippedPackageWire>() // by hash: identical content once
  for (const pkg of traced.packages) {
    const { record, key } = shipped.get(pkg.root)!
    if (packages.has(record.hash)) continue
    const deps = Object.fromEntries(Object.entries(pkg.dependencies).map(([name, root]) => [name, hashOf(root, `package ${pkg.name} (${pkg.root})`)]))
    const wire: ShippedPackageWire = { name: pkg.name, hash: record.hash, key: { ...key }, size: record.size, deps }
    if (pkg.version !== undefined) wire.version = pkg.version
    if (pkg.native) wire.native = true
    packages.set(record.hash, wire)
  }
  const roots = Object.fromEntries(Object.entries(traced.roots).map(([name, root]) => [name, hashOf(root, 'the entry module')]))
  const manifest: ImportsWire = { store: store.toConfig() as unknown as ImportsWire['store'], packages: [...packages.values()], roots }
  if (options.cacheDir !== undefined) manifest.cacheDir = options.cacheDir
  return manifest
}
