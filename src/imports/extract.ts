/**
 * A dedicated tar extractor for the archives pack.ts writes (docs/proxy-imports.md, "Extracting"),
 * used by unpack.ts. Several times faster than node-tar's general unpacker on packages of many
 * small files: each header is decoded in place, each file written with one open/write/close
 * straight from the archive's buffer, each directory made once.
 *
 * What it reads: ustar headers (checksum verified), pax extended headers (`x`: path, linkpath and
 * size of the next entry; `g` ignored), GNU long names and link names (`L`, `K`), regular files
 * (`0`, NUL, `7`), directories (`5`), symbolic links (`2`) and hard links (`1`, written as a copy
 * of the earlier file). Anything else (devices, FIFOs, sparse files, volume labels) is refused.
 * gzip input (magic 1f 8b) is inflated first, on libuv's thread pool.
 *
 * Safety, for an archive that may be damaged or hostile: no absolute paths, no `..` segments, no
 * entry written through a symbolic link (links are kept as written but never followed: a path
 * whose parent is a link or file of this archive is refused, and files are created with O_EXCL so
 * an existing link is never opened), modes reduced to 0644/0755 (no setuid, sticky or
 * group-writable bits), every size checked against the buffer (a truncated archive is an error,
 * not a short file). Owners and mtimes are not restored.
 *
 * Loaded by worker processes and threads (through unpack.ts): imports only node built-ins.
 */
import { closeSync, lstatSync, mkdirSync, openSync, symlinkSync, writeSync } from 'node:fs'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { gunzip, gunzipSync } from 'node:zlib'

/** Yield to the event loop after this much work by default (ms), so timers such as a lock heartbeat run. */
export const DEFAULT_YIELD_MS = 20

export interface ExtractOptions {
  /** give the event loop a turn after this many ms of extraction (default 20) */
  yieldMs?: number
}

/** What an extraction wrote. */
export interface ExtractResult {
  /** regular files, hard-link copies included */
  files: number
  directories: number
  symlinks: number
  /** bytes of file content written */
  bytes: number
}

/**
 * Why an archive was not (wholly) extracted. `kind`: 'format' (not a tar we can read: bad
 * checksum, truncated, bad number), 'refused' (a readable entry we do not write: unsafe path,
 * write through a link, unsupported type), 'write' (the file system failed: disk full, EACCES).
 * Wrapped by unpack.ts into a PackageUnpackError (E_PACKAGE_UNPACK) as its cause.
 */
export class TarExtractError extends Error {
  readonly kind: 'format' | 'refused' | 'write'
  /** the entry's path as the archive spells it (undefined when the header itself is unreadable) */
  readonly entry: string | undefined
  /** byte offset of the entry's header in the (inflated) archive */
  readonly offset: number
  readonly reason: string
  constructor(kind: 'format' | 'refused' | 'write', entry: string | undefined, offset: number, reason: string, options?: { cause?: unknown }) {
    super(`${entry === undefined ? '' : `entry '${entry}' `}at byte ${offset}: ${reason}`, options)
    this.name = 'TarExtractError'
    this.kind = kind
    this.entry = entry
    this.offset = offset
    this.reason = reason
  }
}

const gunzipAsync = promisify(gunzip)
const isGzip = (bytes: Uint8Array): boolean => bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

async function inflated(bytes: Uint8Array): Promise<Buffer> {
  if (!isGzip(bytes)) return asBuffer(bytes)
  try {
    return await gunzipAsync(bytes)
  } catch (error) {
    throw new TarExtractError('format', undefined, 0, `gzip data that does not inflate: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * Extracts a tar (or .tar.gz) held in memory into `dir` (created if missing), giving the event
 * loop a turn every `yieldMs`. On failure the entries written so far stay: extract into a fresh
 * directory and remove it on error (unpack.ts does).
 */
export async function extractTar(archive: Uint8Array, dir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const steps = extraction(await inflated(archive), dir, options.yieldMs ?? DEFAULT_YIELD_MS)
  for (;;) {
    const step = steps.next()
    if (step.done) return step.value
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** extractTar without yielding (for a thread of its own, or a worker's init). */
export function extractTarSync(archive: Uint8Array, dir: string): ExtractResult {
  let tar: Buffer
  try {
    tar = isGzip(archive) ? gunzipSync(archive) : asBuffer(archive)
  } catch (error) {
    throw new TarExtractError('format', undefined, 0, `gzip data that does not inflate: ${(error as Error).message}`, { cause: error })
  }
  const steps = extraction(tar, dir, Infinity)
  for (;;) {
    const step = steps.next()
    if (step.done) return step.value
  }
}

// ---------------------------------------------------------------------------------------------
// Header fields

const BLOCK = 512
const TYPE_NAMES: Record<string, string> = {
  '3': 'a character device',
  '4': 'a block device',
  '6': 'a FIFO',
  S: 'a GNU sparse file',
  V: 'a GNU volume label',
  M: 'a GNU multi-volume continuation',
  D: 'a GNU directory dump',
  N: 'a GNU old long name',
}

// A NUL-terminated string field.
function text(block: Buffer, start: number, length: number): string {
  let end = block.indexOf(0, start)
  if (end < 0 || end > start + length) end = start + length
  return block.toString('utf8', start, end)
}

// A numeric field: octal digits (space or NUL padded) or, with the high bit of its first byte set,
// base-256 big-endian (GNU's form for large values). undefined: empty or malformed.
function number(block: Buffer, start: number, length: number): number | undefined {
  const first = block[start]!
  if (first & 0x80) {
    if (first === 0xff) return undefined // negative
    let value = first & 0x7f
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]!
    return Number.isSafeInteger(value) ? value : undefined
  }
  let i = start
  const end = start + length
  while (i < end && block[i] === 0x20) i++
  let value = 0
  let digits = 0
  for (; i < end; i++) {
    const c = block[i]!
    if (c >= 0x30 && c <= 0x37) {
      value = value * 8 + (c - 0x30)
      digits++
    } else if (c === 0x20 || c === 0) {
      break
    } else {
      return undefined
    }
  }
  for (; i < end; i++) if (block[i] !== 0x20 && block[i] !== 0) return undefined
  return digits === 0 ? undefined : value
}

// The checksum is the sum of the header's bytes with its own field taken as spaces; some old
// writers summed signed bytes, which is accepted too.
function checksumOk(block: Buffer, start: number): boolean {
  const stored = number(block, start + 148, 8)
  if (stored === undefined) return false
  let sum = 8 * 0x20
  let high = 0 // bytes above 127, for the signed sum
  for (let i = start; i < start + 148; i++) sum += block[i]!
  for (let i = start + 156; i < start + BLOCK; i++) {
    const c = block[i]!
    sum += c
    if (c > 127) high++
  }
  if (stored === sum) return true
  for (let i = start; i < start + 148; i++) if (block[i]! > 127) high++
  return high > 0 && stored === sum - 256 * high
}

function isZeroBlock(block: Buffer, start: number): boolean {
  for (let i = start; i < start + BLOCK; i++) if (block[i] !== 0) return false
  return true
}

/** A pax extended header's records: `<length> <key>=<value>\n`, length in bytes, itself included. */
function paxRecords(data: Buffer, fail: (reason: string) => never): Map<string, string> {
  const records = new Map<string, string>()
  let at = 0
  while (at < data.length) {
    if (data[at] === 0) break // padding some writers leave
    const space = data.indexOf(0x20, at)
    const length = space < 0 ? NaN : Number(data.toString('latin1', at, space))
    if (!Number.isSafeInteger(length) || length <= space - at + 1 || at + length > data.length || data[at + length - 1] !== 0x0a) {
      fail(`a malformed pax record at byte ${at} of its extended header`)
    }
    const record = data.toString('utf8', space + 1, at + length - 1)
    const equals = record.indexOf('=')
    if (equals <= 0) fail(`a pax record without a key at byte ${at} of its extended header`)
    records.set(record.slice(0, equals), record.slice(equals + 1))
    at += length
  }
  return records
}

// ---------------------------------------------------------------------------------------------
// Paths

/** The entry's path as a list of plain segments ('' for the root), or why it is refused. */
function relativePath(raw: string): string | { refused: string } {
  if (raw.includes('\0')) return { refused: 'a path with a NUL byte' }
  if (raw.startsWith('/')) return { refused: 'an absolute path (entries must be relative to the package root)' }
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.')
  if (parts.includes('..')) return { refused: "a path with a '..' segment (it could write outside the directory)" }
  return parts.join('/')
}

const fileMode = (mode: number): number => ((mode & 0o111) !== 0 ? 0o755 : 0o644)

// ---------------------------------------------------------------------------------------------
// The extraction, as a generator that yields whenever it has worked for `yieldMs`

type Kind = 'directory' | 'file' | 'symlink'

function* extraction(tar: Buffer, dir: string, yieldMs: number): Generator<void, ExtractResult, void> {
  const root = resolve(dir)
  const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, bytes: 0 }
  // Every path this archive made or found as a real directory, by its relative path: a parent
  // seen here is not checked again (the mkdir cache), and a link or file of this archive is never
  // used as a parent.
  const kinds = new Map<string, Kind>()
  // Regular files written so far, for hard links: their content in the archive.
  const contents = new Map<string, { start: number; size: number; mode: number }>()
  try {
    mkdirSync(root, { recursive: true, mode: 0o755 })
  } catch (error) {
    throw new TarExtractError('write', undefined, 0, `cannot create the directory ${root}: ${(error as Error).message}`, { cause: error })
  }
  kinds.set('', 'directory')

  let offset = 0
  let entry: string | undefined
  let last = performance.now()
  // Extended attributes for the next entry.
  let paxPath: string | undefined
  let paxLinkpath: string | undefined
  let paxSize: number | undefined
  let longName: string | undefined
  let longLink: string | undefined

  const fail = (kind: TarExtractError['kind'], reason: string, cause?: unknown): never => {
    throw new TarExtractError(kind, entry, offset, reason, cause === undefined ? undefined : { cause })
  }
  const failFormat = (reason: string): never => fail('format', reason)

  const makeDirectory = (relative: string): void => {
    const path = `${root}/${relative}`
    try {
      mkdirSync(path, 0o755)
      result.directories++
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') fail('write', `cannot create the directory ${path}: ${(error as Error).message}`, error)
      // Only in a directory that was not empty: what is there must be a real directory.
      let isDirectory = false
      try {
        isDirectory = lstatSync(path).isDirectory()
      } catch {
        // removed meanwhile: refused below
      }
      if (!isDirectory) fail('refused', `${path} exists and is not a directory (a symbolic link is never followed)`)
    }
    kinds.set(relative, 'directory')
  }

  // Makes the parents of `relative` that this extraction has not seen yet, refusing one that is a
  // link or a file of this archive.
  const ensureParent = (relative: string): void => {
    const slash = relative.lastIndexOf('/')
    if (slash < 0) return
    const parent = relative.slice(0, slash)
    const kind = kinds.get(parent)
    if (kind === 'directory') return
    if (kind === 'symlink') fail('refused', `its parent '${parent}' is a symbolic link of this archive: nothing is written through a link`)
    if (kind === 'file') fail('refused', `its parent '${parent}' is a file of this archive`)
    ensureParent(parent)
    makeDirectory(parent)
  }

  const claim = (relative: string, what: string): void => {
    if (relative === '') fail('refused', `${what} cannot be the root directory itself`)
    const kind = kinds.get(relative)
    if (kind !== undefined) fail('refused', `the path appears twice in the archive (already a ${kind === 'symlink' ? 'symbolic link' : kind})`)
    ensureParent(relative)
  }

  const writeFile = (relative: string, start: number, size: number, mode: number): void => {
    const path = `${root}/${relative}`
    let fd: number
    try {
      // O_EXCL: fails on anything already there, a symbolic link included (never followed).
      fd = openSync(path, 'wx', fileMode(mode))
    } catch (error) {
      return fail('write', `cannot create ${path}: ${(error as Error).message}`, error)
    }
    try {
      let written = 0
      while (written < size) written += writeSync(fd, tar, start + written, size - written)
    } catch (error) {
      fail('write', `cannot write ${path}: ${(error as Error).message}`, error)
    } finally {
      closeSync(fd)
    }
    kinds.set(relative, 'file')
    contents.set(relative, { start, size, mode })
    result.files++
    result.bytes += size
  }

  for (;;) {
    if (offset + BLOCK > tar.length) {
      entry = undefined
      if (offset === tar.length) fail('format', 'the archive ends without its end-of-archive block: truncated')
      fail('format', `only ${tar.length - offset} bytes where a 512-byte header belongs: truncated`)
    }
    entry = undefined
    if (tar[offset] === 0 && isZeroBlock(tar, offset)) {
      if (paxPath !== undefined || longName !== undefined || paxSize !== undefined) fail('format', 'an extended header with no entry after it')
      break // end of archive (what follows, a second zero block and padding, is not read)
    }
    if (!checksumOk(tar, offset)) fail('format', `a header whose checksum does not match (a damaged archive, or not a tar)`)
    const type = String.fromCharCode(tar[offset + 156]!)
    const magic = tar.toString('latin1', offset + 257, offset + 263)
    let name = text(tar, offset, 100)
    // POSIX ustar: a 155-byte prefix; GNU's own format ("ustar  ") keeps other fields there.
    if (magic === 'ustar\0' && tar[offset + 345] !== 0) name = `${text(tar, offset + 345, 155)}/${name}`
    entry = paxPath ?? longName ?? name
    const headerSize = number(tar, offset + 124, 12)
    if (headerSize === undefined) fail('format', 'a header with an unreadable size field')
    const size = paxSize ?? headerSize!
    const dataStart = offset + BLOCK
    // Directories carry no data whatever their size field says (as node-tar reads them).
    const dataSize = type === '5' ? 0 : size
    const next = dataStart + Math.ceil(dataSize / BLOCK) * BLOCK
    if (dataStart + dataSize > tar.length) fail('format', `its data (${dataSize} bytes) runs past the end of the archive (${tar.length} bytes): truncated`)
    const mode = number(tar, offset + 100, 8) ?? 0o644

    switch (type) {
      case 'x': {
        const records = paxRecords(tar.subarray(dataStart, dataStart + dataSize), failFormat)
        paxPath = records.get('path') ?? paxPath
        paxLinkpath = records.get('linkpath') ?? paxLinkpath
        const sizeText = records.get('size')
        if (sizeText !== undefined) {
          const value = /^\d+$/.test(sizeText) ? Number(sizeText) : NaN
          if (!Number.isSafeInteger(value)) fail('format', `a pax size that is not a byte count: ${JSON.stringify(sizeText)}`)
          paxSize = value
        }
        offset = next
        continue
      }
      case 'g':
        offset = next
        continue
      case 'L':
      case 'K': {
        const value = text(tar, dataStart, dataSize)
        if (type === 'L') longName = value
        else longLink = value
        offset = next
        continue
      }
    }

    const linkpath = paxLinkpath ?? longLink ?? text(tar, offset + 157, 100)
    paxPath = paxLinkpath = paxSize = longName = longLink = undefined
    const path = relativePath(entry!)
    if (typeof path !== 'string') fail('refused', path.refused)
    const relative = path as string

    switch (type) {
      case '0':
      case '\0':
      case '7': {
        // A trailing slash on a file entry is how very old tars marked a directory.
        if (entry!.endsWith('/')) {
          if (kinds.get(relative) !== 'directory') {
            claim(relative, 'a directory')
            makeDirectory(relative)
          }
          break
        }
        claim(relative, 'a file')
        writeFile(relative, dataStart, size, mode)
        break
      }
      case '5': {
        const kind = kinds.get(relative)
        if (kind === 'directory') break
        if (kind !== undefined) fail('refused', `a directory where the archive already has a ${kind === 'symlink' ? 'symbolic link' : kind}`)
        ensureParent(relative)
        makeDirectory(relative)
        break
      }
      case '2': {
        if (linkpath === '' || linkpath.includes('\0')) fail('refused', 'a symbolic link with an empty target')
        claim(relative, 'a symbolic link')
        const target = `${root}/${relative}`
        try {
          symlinkSync(linkpath, target)
        } catch (error) {
          fail('write', `cannot create the symbolic link ${target} -> ${linkpath}: ${(error as Error).message}`, error)
        }
        kinds.set(relative, 'symlink')
        result.symlinks++
        break
      }
      case '1': {
        const source = relativePath(linkpath)
        const original = typeof source === 'string' ? contents.get(source) : undefined
        if (!original) fail('refused', `a hard link to '${linkpath}', which is not a regular file earlier in this archive`)
        claim(relative, 'a hard link')
        writeFile(relative, original!.start, original!.size, original!.mode)
        break
      }
      default: {
        const what = TYPE_NAMES[type] ?? `an entry of unknown type ${JSON.stringify(type)}`
        fail('refused', `${what}: only files, directories and symbolic links are unpacked`)
      }
    }
    offset = next
    if (performance.now() - last >= yieldMs) {
      yield
      last = performance.now()
    }
  }
  return result
}
