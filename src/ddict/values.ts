/**
 * How a DDict value is laid out in Redis (protocol/ddict.ts VALUE_TAG): safe integers as ASCII
 * decimals (so INCRBY, `fetchAdd`, works on them), Buffers and typed arrays raw after an 8-byte
 * header (no JSON, no msgpack: a 4 MB Float64Array is 4 MB + 8 bytes in the server), anything
 * else as the codec's bytes after one tag byte.
 */
import { decode, encode } from '../serialize/codec.js'
import { SerializationError } from '../errors.js'
import { TYPED_KINDS, VALUE_HEADER_BYTES, VALUE_TAG } from '../protocol/ddict.js'

type TypedKind = (typeof TYPED_KINDS)[number]
type ViewConstructor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView; BYTES_PER_ELEMENT?: number }

const CONSTRUCTORS: Record<TypedKind, ViewConstructor> = {
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView: DataView as unknown as ViewConstructor,
}

function kindOf(view: ArrayBufferView): number {
  if (view instanceof DataView) return TYPED_KINDS.indexOf('DataView')
  const index = TYPED_KINDS.indexOf(view.constructor.name as TypedKind)
  // A subclass of a typed array travels as its base kind.
  if (index >= 0) return index
  for (let i = 0; i < TYPED_KINDS.length - 1; i++) if (view instanceof (CONSTRUCTORS[TYPED_KINDS[i]!] as unknown as Function)) return i
  return -1
}

/** A number stored as ASCII decimal: a safe integer (-0 reads back as 0, as through the codec). */
export function isCounterValue(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value)
}

// Large raw values are copied (header + data must be one Redis string) into buffers kept for
// the next write of the same size: a fresh multi-megabyte buffer costs page faults and GC work
// that made a 4 MB put 2-3x slower than the copy itself. Bounded: POOL_LIMIT bytes are kept.
export const POOL_MIN_BYTES = 64 * 1024
const POOL_LIMIT = 64 * 1024 * 1024
const pool = new Map<number, Buffer[]>()
let pooledBytes = 0

function takeBuffer(size: number): Buffer {
  if (size < POOL_MIN_BYTES) return Buffer.allocUnsafe(size)
  const free = pool.get(size)?.pop()
  if (free) {
    pooledBytes -= size
    return free
  }
  return Buffer.allocUnsafe(size)
}

/** Gives back a buffer encodeValue made, once the command that sent it has its answer (the socket is done with it). */
export function releaseEncoded(bytes: Buffer): void {
  if (bytes.length < POOL_MIN_BYTES || pooledBytes + bytes.length > POOL_LIMIT || bytes.byteOffset !== 0 || bytes.buffer.byteLength !== bytes.length) return
  const list = pool.get(bytes.length) ?? pool.set(bytes.length, []).get(bytes.length)!
  list.push(bytes)
  pooledBytes += bytes.length
}

/**
 * The bytes stored for `value`. Raw data is copied once, into header + data (one Redis bulk
 * string); a value of the codec is encoded once.
 */
export function encodeValue(value: unknown): Buffer {
  if (isCounterValue(value)) return Buffer.from(String(value), 'latin1')
  if (ArrayBuffer.isView(value)) {
    const kind = Buffer.isBuffer(value) ? -2 : kindOf(value)
    if (kind !== -1) {
      const out = takeBuffer(VALUE_HEADER_BYTES + value.byteLength)
      out.fill(0, 0, VALUE_HEADER_BYTES)
      out[0] = kind === -2 ? VALUE_TAG.buffer : VALUE_TAG.typed
      out[1] = kind === -2 ? 0 : kind
      out.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), VALUE_HEADER_BYTES)
      return out
    }
  }
  const body = encode(value)
  const out = Buffer.allocUnsafe(1 + body.length)
  out[0] = VALUE_TAG.codec
  body.copy(out, 1)
  return out
}

/**
 * The value of stored bytes. A typed array is a view of the reply's memory when its offset is a
 * multiple of the element size (no copy), else a copy made once; a Buffer is a view.
 */
export function decodeValue(bytes: Buffer): unknown {
  if (bytes.length === 0) throw new SerializationError('a DDict value of 0 bytes cannot be decoded (not written by a DDict)')
  const tag = bytes[0]!
  if (tag === VALUE_TAG.buffer) return bytes.subarray(VALUE_HEADER_BYTES)
  if (tag === VALUE_TAG.typed) {
    const kind = TYPED_KINDS[bytes[1]!]
    if (kind === undefined) throw new SerializationError(`a DDict value names typed-array kind ${bytes[1]}, which this version does not know`)
    const Ctor = CONSTRUCTORS[kind]
    const size = Ctor.BYTES_PER_ELEMENT ?? 1
    const byteLength = bytes.length - VALUE_HEADER_BYTES
    if (byteLength % size !== 0) throw new SerializationError(`a DDict ${kind} value of ${byteLength} bytes is not a whole number of elements`)
    let offset = bytes.byteOffset + VALUE_HEADER_BYTES
    let buffer: ArrayBufferLike = bytes.buffer
    if (offset % size !== 0) {
      const copy = new Uint8Array(byteLength)
      copy.set(bytes.subarray(VALUE_HEADER_BYTES))
      buffer = copy.buffer
      offset = 0
    }
    return new Ctor(buffer, offset, kind === 'DataView' ? byteLength : byteLength / size)
  }
  if (tag === VALUE_TAG.codec) return decode(bytes.subarray(1))
  // ASCII decimal: a counter (fetchAdd) or a safe integer put with set.
  const text = bytes.toString('latin1')
  const n = Number(text)
  if (!/^-?\d+$/.test(text) || !Number.isFinite(n)) throw new SerializationError(`a DDict value starts with byte 0x${tag.toString(16)}, which is no known value tag (not written by a DDict?)`)
  return n
}
