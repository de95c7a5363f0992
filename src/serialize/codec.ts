import { C1, Packr, addExtension } from 'msgpackr'
import { SerializationError } from '../errors.js'
import { File } from '../data/file.js'

/**
 * The binary codec for everything tsflow sends between threads and processes (task arguments,
 * results, checkpoints, protocol messages). msgpackr in structured-clone mode keeps Map, Set,
 * Date, RegExp, typed arrays, BigInt, undefined and cycles; tsflow's own value types register
 * extensions here so they arrive as instances, not plain objects.
 */

// Extension type ids 0x20..0x2f are tsflow's; msgpackr's own (0x42 BigInt, 0x52, 0x62, 0x65 ...)
// must not be reused, or its built-in types stop decoding.
addExtension({
  Class: File,
  type: 0x20,
  write: (file: File) => file.url,
  read: (url: string) => new File(url),
})

// Objects whose content cannot be read (promises, weak references, generators and other
// iterators, whose state lives in the engine) would otherwise arrive as an empty object; refuse
// them with a message that says what to send instead. msgpackr matches extensions with
// instanceof, so the iterator prototypes get stand-in constructors.
function instancesOf(prototype: object): new () => object {
  const Class = function () {} as unknown as new () => object
  Class.prototype = prototype
  return Class
}
const GeneratorPrototype = Object.getPrototypeOf(function* () {}).prototype as object
const AsyncGeneratorPrototype = Object.getPrototypeOf(async function* () {}).prototype as object
const IteratorPrototype = Object.getPrototypeOf(GeneratorPrototype) as object
const GeneratorObject = instancesOf(GeneratorPrototype)
const AsyncIteratorPrototype = Object.getPrototypeOf(AsyncGeneratorPrototype) as object
const refused: [new (...args: never[]) => object, (value: object) => string][] = [
  [Promise, () => 'a Promise cannot be sent to a worker; await it first, or pass the future of an app (futures are awaited for you)'],
  [WeakMap, () => 'a WeakMap cannot be sent to a worker (its entries cannot be read); use a Map'],
  [WeakSet, () => 'a WeakSet cannot be sent to a worker (its entries cannot be read); use a Set'],
  [
    instancesOf(IteratorPrototype),
    (value) =>
      value instanceof GeneratorObject
        ? 'a generator object cannot be sent to a worker (its state stays in this process); collect its values first, e.g. [...generator]'
        : `an iterator (${tagOf(value)}) cannot be sent to a worker (its state stays in this process); collect its values first, e.g. [...iterator]`,
  ],
  [
    instancesOf(AsyncIteratorPrototype),
    () => 'an async generator or iterator cannot be sent to a worker; collect its values first (for await ... of) and send them',
  ],
  [WeakRef, () => 'a WeakRef cannot be sent to a worker (its target cannot be read); send the target itself'],
  [FinalizationRegistry, () => 'a FinalizationRegistry cannot be sent to a worker'],
]
refused.forEach(([Class, message], index) => {
  addExtension({
    Class,
    type: 0x21 + index,
    write: (value: object) => {
      throw new SerializationError(message(value))
    },
    read: () => {
      throw new SerializationError(`received a refused type (extension ${0x21 + index})`)
    },
  })
})

function tagOf(value: object): string {
  try {
    return Object.prototype.toString.call(value).slice(8, -1)
  } catch {
    return 'object'
  }
}

function functionReason(fn: unknown): string {
  const name = typeof fn === 'function' && fn.name ? ` '${fn.name}'` : ''
  return `a function${name} cannot be sent between processes or threads; pass data, or make it an app and pass its future`
}

/**
 * Why `value` itself cannot be encoded (a function, or one of the refused types above), or
 * undefined. Lets the kernel refuse an argument at submit time and name it.
 */
export function refusedReason(value: unknown): string | undefined {
  if (typeof value === 'function') return functionReason(value)
  if (typeof value !== 'object' || value === null) return undefined
  // A lazy proxy (proxy/) travels as its factory; `instanceof` here would fetch its target.
  if ((value as Record<symbol, unknown>)[PROXY_STATE] !== undefined) return undefined
  for (const [Class, message] of refused) if (value instanceof Class) return message(value)
  return undefined
}

const packr = new Packr({
  structuredClone: true,
  // Without this, msgpackr silently encodes functions as undefined and the value is lost.
  writeFunction: (fn: unknown) => {
    throw new SerializationError(functionReason(fn))
  },
} as unknown as ConstructorParameters<typeof Packr>[0])

const PROXY_STATE = Symbol.for('tsflow.proxy.state')

// Depth of encode() calls under way. A lazy proxy (proxy/) reads it to tell msgpackr's type probes
// (`value.constructor`) apart from a user's use, and answer the probe without fetching its target.
let encoding = 0

/** Whether an encode() is running now (synchronous, so exact). */
export function isEncoding(): boolean {
  return encoding > 0
}

/**
 * Bytes of the binary data (typed arrays, ArrayBuffers, DataViews) in `value`, found by a walk
 * over arrays, plain objects and Maps that gives up after `budget` nodes (primitives not
 * counted): a few microseconds at most, and it finds the few large arrays of a big message. A
 * lower bound of the encoded size.
 */
export function binaryBytes(value: unknown, budget = 64): number {
  if (typeof value !== 'object' || value === null) return 0
  walkBytes = 0
  walkLeft = budget
  walkBinary(value, 0)
  return walkBytes
}

// The walk's running totals: module state, not a closure, so a call allocates nothing (it runs
// before every top-level encode and for each task of a batch).
let walkBytes = 0
let walkLeft = 0

function walkBinary(item: unknown, depth: number): void {
  if (typeof item !== 'object' || item === null || --walkLeft < 0) return
  // A lazy proxy must not be touched (its target would be fetched): it travels as its factory.
  if ((item as Record<symbol, unknown>)[PROXY_STATE] !== undefined) return
  if (ArrayBuffer.isView(item)) walkBytes += item.byteLength
  else if (item instanceof ArrayBuffer) walkBytes += item.byteLength
  else if (depth > 8) return
  else if (Array.isArray(item)) for (const element of item) walkBinary(element, depth + 1)
  else if (item instanceof Map) for (const element of item.values()) walkBinary(element, depth + 1)
  else {
    const prototype = Object.getPrototypeOf(item)
    if (prototype === Object.prototype || prototype === null) for (const key in item) walkBinary((item as Record<string, unknown>)[key], depth + 1)
  }
}

// Past 64 MB msgpackr grows its buffer by 1.25x, copying what it wrote each time: a 640 MB
// message cost 3-6 s instead of 0.7 s. Messages with this much binary data get a buffer of
// their own, sized once, which the caller may then hand on whole (no slice of a shared pool).
const PRESIZE_BYTES = 8 << 20
const PRESIZE_SLACK = 1 << 20

/**
 * `binaryHint`: the binary bytes in `value` when the caller already counted them (a task batch
 * counts each task's), so the bounded walk is not made again.
 */
export function encode(value: unknown, binaryHint?: number): Buffer {
  const binary = encoding === 0 ? (binaryHint ?? binaryBytes(value)) : 0
  const ownBuffer = binary >= PRESIZE_BYTES
  encoding++
  if (ownBuffer) packr.useBuffer(Buffer.allocUnsafeSlow(binary + PRESIZE_SLACK))
  try {
    return packr.pack(value)
  } catch (error) {
    if (error instanceof SerializationError) throw error
    throw new SerializationError(`value could not be encoded: ${(error as Error).message}`, { cause: error })
  } finally {
    encoding--
    // Small messages go back to a small pool: msgpackr would otherwise keep writing after the
    // large one in its buffer (and keep it alive).
    if (ownBuffer) packr.useBuffer(Buffer.allocUnsafeSlow(8192))
  }
}

/**
 * Whether `bytes` is the whole of a buffer encode() sized for it (so it can be sent as is,
 * without the exact-size copy a slice of the shared pool needs).
 */
export function ownsItsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength >= PRESIZE_BYTES && bytes.buffer.byteLength - bytes.byteLength <= 2 * PRESIZE_SLACK
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (error) {
    throw new SerializationError(`bytes could not be decoded (${bytes.length} bytes): ${(error as Error).message}`, {
      cause: error,
    })
  }
  // 0xc1 is "never used" in msgpack; msgpackr hands back a marker object for it.
  if (value === C1) throw new SerializationError(`bytes could not be decoded (${bytes.length} bytes): reserved byte 0xc1`)
  return value as T
}
