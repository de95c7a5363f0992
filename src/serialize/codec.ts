import { Packr, addExtension } from 'msgpackr'
import { SerializationError } from '../errors.js'
import { File } from '../data/file.js'

/**
 * The binary codec for everything tsflow sends between threads and processes (task arguments,
 * results, checkpoints, protocol messages). msgpackr in structured-clone mode keeps Map, Set,
 * Date, RegExp, typed arrays, BigInt, undefined and cycles; tsflow's own value types register
 * extensions here so they arrive as instances, not plain objects.
 */

// Extension type ids 0x40..0x4f are reserved for tsflow.
addExtension({
  Class: File,
  type: 0x40,
  write: (file: File) => file.url,
  read: (url: string) => new File(url),
})

const packr = new Packr({
  structuredClone: true,
  // Without this, msgpackr silently encodes functions as undefined and the value is lost.
  writeFunction: (fn: unknown) => {
    const name = typeof fn === 'function' && fn.name ? ` '${fn.name}'` : ''
    throw new SerializationError(
      `a function${name} cannot be sent between processes or threads; pass data, or make it an app and pass its future`,
    )
  },
} as unknown as ConstructorParameters<typeof Packr>[0])

export function encode(value: unknown): Buffer {
  try {
    return packr.pack(value)
  } catch (error) {
    if (error instanceof SerializationError) throw error
    throw new SerializationError(`value could not be encoded: ${(error as Error).message}`, { cause: error })
  }
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  try {
    return packr.unpack(bytes) as T
  } catch (error) {
    throw new SerializationError(`bytes could not be decoded (${bytes.length} bytes): ${(error as Error).message}`, {
      cause: error,
    })
  }
}
