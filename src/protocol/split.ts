/**
 * Payload bytes one message should carry at most. Batching many small tasks per message is what
 * makes tsflow fast; batching many large ones only makes huge messages that every hop must copy
 * whole, so senders start a new message past this size (a single larger task still goes alone).
 */
export const MAX_BATCH_PAYLOAD_BYTES = 1 << 20

/**
 * The one batch splitter of every hop (HTEX client, interchange, manager, thread executor): cuts
 * `items` into consecutive parts of at most `maxCount` items, closing a part once its items
 * reach `maxBytes` (so one item larger than the cap travels alone). One part is `items` itself,
 * not a copy.
 */
export function splitBatch<T>(
  items: readonly T[],
  bytesOf: (item: T) => number,
  maxCount = Number.POSITIVE_INFINITY,
  maxBytes = MAX_BATCH_PAYLOAD_BYTES,
): T[][] {
  const parts: T[][] = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < items.length; i++) {
    bytes += bytesOf(items[i]!)
    if (bytes < maxBytes && i + 1 - start < maxCount && i < items.length - 1) continue
    parts.push(start === 0 && i === items.length - 1 ? (items as T[]) : items.slice(start, i + 1))
    start = i + 1
    bytes = 0
  }
  return parts
}

/** How many of the first items of `items` make one part under the same rule as splitBatch. */
export function firstPartLength<T>(
  items: readonly T[],
  bytesOf: (item: T) => number,
  maxCount = Number.POSITIVE_INFINITY,
  maxBytes = MAX_BATCH_PAYLOAD_BYTES,
): number {
  let bytes = 0
  let count = 0
  while (count < items.length && count < maxCount && (count === 0 || bytes < maxBytes)) {
    bytes += bytesOf(items[count]!)
    count++
  }
  return count
}
