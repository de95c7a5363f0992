import type { Connector, ObjectKey } from 'tsflow/proxy'

/**
 * `inner` with its getSync (and evictSync) hidden: what an async-only connector looks like. Its
 * type and config stay `inner`'s, so a sync bridge thread rebuilds a real `inner` from them.
 */
export function asyncOnly(inner: Connector): Connector {
  return {
    type: inner.type,
    get label() {
      return inner.label
    },
    put: (bytes: Uint8Array, key?: ObjectKey) => inner.put(bytes, key),
    get: (key: ObjectKey) => inner.get(key),
    exists: (key: ObjectKey) => inner.exists(key),
    evict: (key: ObjectKey) => inner.evict(key),
    putBatch: (values: readonly Uint8Array[]) => inner.putBatch(values),
    getBatch: (keys: readonly ObjectKey[]) => inner.getBatch(keys),
    newKey: () => inner.newKey(),
    close: () => inner.close(),
    toConfig: () => inner.toConfig(),
  }
}
