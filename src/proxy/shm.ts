import { customAlphabet, nanoid } from 'nanoid'
import { constants as osConstants } from 'node:os'
import { isMainThread } from 'node:worker_threads'
import { ConfigError, ConnectorError, NativeError, ObjectNotFound } from '../errors.js'
import {
  listSharedMemory,
  nativeAvailable,
  openSharedMemory,
  renameSharedMemory,
  sharedMemorySize,
  unlinkSharedMemory,
  writeSharedMemory,
} from '../native/index.js'
import { boolean, object, optional, string, type Check } from '../util/schema.js'
import { connectors, keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'

export interface ShmConnectorOptions {
  /**
   * Part of every segment name, `/tsflow-<prefix>-<id>`, so segments can be told apart and
   * cleaned up by run (letters, digits and '_', at most 64). Default: a new random one, like a
   * local connector's name; it travels in the config, so workers use the same.
   */
  prefix?: string
  /**
   * Unlink, when this process exits normally, the segments it put (from any of its threads) and
   * did not evict (default true). Set it to false in a process whose objects must outlive it,
   * e.g. a short-lived producer whose consumers read later; then someone must evict them.
   */
  unlinkOnExit?: boolean
}

const PREFIX = /^[A-Za-z0-9_]{1,64}$/
const prefixCheck: Check<string> = (value, path) => {
  if (typeof value !== 'string' || !PREFIX.test(value)) {
    throw new ConfigError(path, `must be 1 to 64 letters, digits or '_' (it goes into shared memory names; got ${JSON.stringify(value)})`)
  }
  return value
}
const randomPrefix = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 12)
const optionsSchema = object({ type: optional(string), prefix: optional(prefixCheck), unlinkOnExit: optional(boolean) })

/** Every segment this connector makes is named `/tsflow-<prefix>-<id>` (a temporary one adds `.tmp-<pid>-<nonce>`). */
export const SHM_NAME_PREFIX = 'tsflow-'
const TMP = '.tmp-'
// A key id becomes part of a file name in /dev/shm: nanoid's alphabet only, no '.' (ours).
const SAFE_ID = /^[A-Za-z0-9_-]+$/
// NAME_MAX (255) bounds the file name in /dev/shm; the temporary name is the longest we make.
const NAME_MAX = 255
const TMP_SUFFIX_MAX = TMP.length + 10 + 1 + 10

// Each segment starts with a 32-byte header (which keeps the data 16-byte aligned, so typed
// arrays can view it in place): magic u32 | writer pid u32 | data length u64 (checked against
// the segment size on read) | flags u32 | reserved. The pid lets cleanup find a dead writer's
// leftovers and the exit backstop find its own process's objects, whichever thread wrote them.
const HEADER = 32
const MAGIC = 0x6c667374 // 'tsfl' little-endian
const FLAG_UNLINK_ON_EXIT = 1

// The exit backstop. Objects belong to the process that wrote them, whichever thread did, so only
// the main thread hooks 'exit': a worker thread that ends (a pool shrinking) must not take away
// objects the process still hands out. On exit it unlinks, under every prefix a main-thread
// connector used, the segments this pid wrote with unlinkOnExit, and its half-written temporary
// ones. 'exit' handlers must be synchronous, and these calls are. A process killed by a signal it
// does not handle (SIGKILL, or SIGTERM without a handler) never gets here: ShmConnector.cleanup().
const exitPrefixes = new Set<string>()
let exitHookInstalled = false
function watchOnExit(prefix: string): void {
  exitPrefixes.add(prefix)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const prefix of exitPrefixes) {
      for (const name of listSharedMemory(`${SHM_NAME_PREFIX}${prefix}-`)) {
        const header = headerOf(name)
        if (header?.pid === process.pid && (header.temporary || header.flags & FLAG_UNLINK_ON_EXIT)) unlinkQuietly(name)
      }
    }
  })
}

function unlinkQuietly(name: string): boolean {
  try {
    unlinkSharedMemory(name)
    return true
  } catch {
    return false
  }
}

const isMissing = (error: unknown) => error instanceof NativeError && error.errno === osConstants.errno.ENOENT

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, it is just not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface ShmCleanupOptions {
  /** only segments of this connector prefix (default: every tsflow segment) */
  prefix?: string
  /** also remove segments whose writer is still running (default false: only dead writers') */
  all?: boolean
}

/**
 * Objects in POSIX shared memory (/dev/shm) on this node. Node-local: only processes on the same
 * machine can read them, through the same names; use it between a kernel and its local workers
 * (thread executor, HTEX with a local provider), and another connector across nodes.
 *
 * Reading is zero-copy: `get` maps the segment and returns a Buffer over the mapping (no memcpy
 * of the data; the pages are the ones the writer filled). That Buffer is shared memory: writing
 * into it changes the object for every reader, so treat it as read-only. The mapping lives until
 * the Buffer is garbage-collected, even after the object is evicted (then only its name is gone).
 *
 * A put writes the whole object into a temporary segment and then publishes it by renaming it to
 * its final name. rename(2) is atomic, so a reader opening the name finds the previous object or
 * the new one, never a half-written one, and a replaced object's readers keep their old mapping.
 * A writer that dies mid-put leaves only a temporary name that no reader opens. (A ready flag in a
 * header would need the reader to wait or retry, and replacing an object in place would tear
 * readers that already mapped it; renaming avoids both.)
 *
 * Cleanup: `evict` unlinks the segment; `close()` unlinks what this instance put and did not evict
 * (a connector rebuilt from the config in a worker owns only what that worker put) plus what
 * writers that are gone left under the prefix; and a process's segments are unlinked when it
 * exits normally (option `unlinkOnExit`). A process killed by a signal (HTEX stops its workers
 * with SIGTERM) leaves its segments: `close()` of a connector with that prefix, or
 * `ShmConnector.cleanup()`, removes those of dead writers. (No signal handlers are installed:
 * they would change how every tsflow process dies, e.g. a worker busy in sync code ignoring
 * SIGTERM until it yields.)
 */
export class ShmConnector implements Connector {
  readonly type = 'shm'
  readonly prefix: string
  readonly unlinkOnExit: boolean
  private readonly owned = new Set<string>()

  constructor(options: ShmConnectorOptions = {}) {
    const checked = optionsSchema(options, 'connector')
    this.prefix = checked.prefix ?? randomPrefix()
    this.unlinkOnExit = checked.unlinkOnExit ?? true
    if (process.platform !== 'linux') throw new ConnectorError(this.label, `needs Linux POSIX shared memory (/dev/shm); this is ${process.platform}`)
    if (!nativeAvailable()) {
      throw new ConnectorError(this.label, "needs tsflow's native addon, which does not load here (see docs/native.md: npm rebuild tsflow)")
    }
    if (this.unlinkOnExit && isMainThread) watchOnExit(this.prefix)
  }

  get label(): string {
    return `shm(${this.prefix})`
  }

  newKey(): ObjectKey {
    return { id: nanoid() }
  }

  /** The segment name of a key: `/tsflow-<prefix>-<id>`. */
  segmentName(key: ObjectKey): string {
    const name = `/${SHM_NAME_PREFIX}${this.prefix}-${key.id}`
    if (typeof key.id !== 'string' || !SAFE_ID.test(key.id) || Buffer.byteLength(name) - 1 + TMP_SUFFIX_MAX > NAME_MAX) {
      throw new ConnectorError(this.label, `key ${keyText(key)} is not a valid object name (letters, digits, '_', '-'; the segment name must fit NAME_MAX)`)
    }
    return name
  }

  private fail(what: string, key: ObjectKey, error: unknown): never {
    if (error instanceof ConnectorError || error instanceof ObjectNotFound) throw error
    throw new ConnectorError(this.label, `cannot ${what} object ${keyText(key)}: ${(error as Error).message}`, { cause: error })
  }

  async put(bytes: Uint8Array, key: ObjectKey = this.newKey()): Promise<ObjectKey> {
    this.putSync(bytes, key)
    return key
  }

  /** `put`, blocking (shared memory needs no I/O wait). */
  putSync(bytes: Uint8Array, key: ObjectKey = this.newKey()): ObjectKey {
    const name = this.segmentName(key)
    const temporary = `${name}${TMP}${process.pid}-${nanoid(10).replace(/[^A-Za-z0-9]/g, 'x')}`
    try {
      const header = Buffer.alloc(HEADER)
      header.writeUInt32LE(MAGIC, 0)
      header.writeUInt32LE(process.pid, 4)
      header.writeBigUInt64LE(BigInt(bytes.byteLength), 8)
      header.writeUInt32LE(this.unlinkOnExit ? FLAG_UNLINK_ON_EXIT : 0, 16)
      try {
        // write(2), not a fresh mapping: no page fault per page (see writeSharedMemory)
        writeSharedMemory(temporary, [header, bytes])
        renameSharedMemory(temporary, name)
      } catch (error) {
        unlinkQuietly(temporary)
        throw error
      }
    } catch (error) {
      this.fail('write', key, error)
    }
    this.owned.add(name)
    return key
  }

  async get(key: ObjectKey): Promise<Uint8Array> {
    return this.getSync(key)
  }

  /** A Buffer over the shared pages: no copy. Treat it as read-only. */
  getSync(key: ObjectKey): Buffer {
    const name = this.segmentName(key)
    let segment: Buffer
    try {
      segment = openSharedMemory(name)
    } catch (error) {
      if (isMissing(error)) throw new ObjectNotFound(this.label, keyText(key))
      this.fail('read', key, error)
    }
    if (segment.length < HEADER || segment.readUInt32LE(0) !== MAGIC || Number(segment.readBigUInt64LE(8)) !== segment.length - HEADER) {
      throw new ConnectorError(this.label, `segment '${name}' of object ${keyText(key)} is not a tsflow object (bad header)`)
    }
    return segment.subarray(HEADER)
  }

  async exists(key: ObjectKey): Promise<boolean> {
    const name = this.segmentName(key)
    try {
      sharedMemorySize(name)
      return true
    } catch (error) {
      if (isMissing(error)) return false
      this.fail('check', key, error)
    }
  }

  async evict(key: ObjectKey): Promise<void> {
    this.evictSync(key)
  }

  /** `evict`, blocking (an unlink). */
  evictSync(key: ObjectKey): void {
    const name = this.segmentName(key)
    try {
      unlinkSharedMemory(name)
    } catch (error) {
      if (!isMissing(error)) this.fail('evict', key, error)
    }
    this.owned.delete(name)
  }

  async putBatch(values: readonly Uint8Array[]): Promise<ObjectKey[]> {
    return values.map((bytes) => this.putSync(bytes))
  }

  async getBatch(keys: readonly ObjectKey[]): Promise<Uint8Array[]> {
    return keys.map((key) => this.getSync(key))
  }

  /** The segment names of this prefix's published objects on this node (any writer). */
  segments(): string[] {
    return listSharedMemory(`${SHM_NAME_PREFIX}${this.prefix}-`).filter((name) => !name.includes(TMP))
  }

  /**
   * Unlinks the segments this instance put and did not evict, and, under this prefix, those whose
   * writer process has ended without removing them (an HTEX worker stopped by SIGTERM): closing
   * the store after the executors have shut down leaves nothing of the run behind.
   */
  async close(): Promise<void> {
    for (const name of this.owned) unlinkQuietly(name)
    this.owned.clear()
    ShmConnector.cleanup({ prefix: this.prefix })
  }

  toConfig(): ConnectorConfig {
    return { type: this.type, prefix: this.prefix, unlinkOnExit: this.unlinkOnExit }
  }

  /**
   * Removes leftover tsflow segments on this node: those whose writer process is no longer
   * running (a writer killed mid-put, or a process killed by a signal before it could clean up),
   * or with `all`, every one of the prefix. Returns the names removed.
   */
  static cleanup(options: ShmCleanupOptions = {}): string[] {
    const { prefix, all = false } = object({ prefix: optional(prefixCheck), all: optional(boolean) })(options, 'cleanup')
    const removed: string[] = []
    for (const name of listSharedMemory(prefix === undefined ? SHM_NAME_PREFIX : `${SHM_NAME_PREFIX}${prefix}-`)) {
      const header = headerOf(name)
      // Not one of ours (no header): another program's segment that happens to share the prefix.
      if (header === undefined || (!all && isAlive(header.pid))) continue
      if (unlinkQuietly(name)) removed.push(name)
    }
    return removed
  }
}

interface Header {
  pid: number
  flags: number
  temporary: boolean
}

// Who wrote a segment: from a temporary name (its header may not be written yet) or a published
// segment's header; undefined for a segment that is not a tsflow object.
function headerOf(name: string): Header | undefined {
  const temporary = name.lastIndexOf(TMP)
  if (temporary !== -1) {
    const pid = Number(name.slice(temporary + TMP.length).split('-')[0])
    return Number.isInteger(pid) ? { pid, flags: 0, temporary: true } : undefined
  }
  try {
    const segment = openSharedMemory(name)
    if (segment.length < HEADER || segment.readUInt32LE(0) !== MAGIC) return undefined
    return { pid: segment.readUInt32LE(4), flags: segment.readUInt32LE(16), temporary: false }
  } catch {
    return undefined
  }
}

connectors.register('shm', (options) => new ShmConnector(options as ShmConnectorOptions))
