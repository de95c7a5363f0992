import { SerializationError } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'

/** Turns values into the bytes a connector keeps, and back. Named, so a store's config can say which. */
export interface Serializer {
  encode(value: unknown): Uint8Array
  decode(bytes: Uint8Array): unknown
}

const serializers = new Map<string, Serializer>([
  // tsflow's codec: what tasks already use (Map, Set, typed arrays, File, cycles; functions refused).
  ['msgpack', { encode, decode }],
  // Bytes as they are: for data that is already serialized (an image, a Parquet file's bytes).
  [
    'bytes',
    {
      encode: (value) => {
        if (!(value instanceof Uint8Array)) throw new SerializationError(`the 'bytes' serializer takes a Uint8Array or Buffer, not ${typeof value}`)
        return value
      },
      decode: (bytes) => bytes,
    },
  ],
])

/**
 * Adds a serializer by name. Register it in every process that reads such objects (a module the
 * tasks import), since only the name travels in a store's config.
 */
export function registerSerializer(name: string, serializer: Serializer): void {
  // Checked here so a serializer's mistake is named at the store, not met as a connector's
  // odd failure: encode must give bytes, and a decode failure says which serializer failed.
  serializers.set(name, {
    encode(value) {
      const bytes = serializer.encode(value)
      if (!(bytes instanceof Uint8Array)) throw new SerializationError(`serializer '${name}' must encode to a Uint8Array or Buffer, not ${bytes === null ? 'null' : typeof bytes}`)
      return bytes
    },
    decode(bytes) {
      try {
        return serializer.decode(bytes)
      } catch (error) {
        throw new SerializationError(`serializer '${name}' could not decode ${bytes.byteLength} bytes: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
      }
    },
  })
}

export function serializerNames(): string[] {
  return [...serializers.keys()]
}

export function getSerializer(name: string): Serializer | undefined {
  return serializers.get(name)
}
