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
  serializers.set(name, serializer)
}

export function serializerNames(): string[] {
  return [...serializers.keys()]
}

export function getSerializer(name: string): Serializer | undefined {
  return serializers.get(name)
}
