/**
 * Key names of a dictionary in Redis (protocol/ddict.ts layout `${id}:${checkpoint}:${keyText}`),
 * the versions a read at a checkpoint looks at, and the SCAN over a shard's keys of a dictionary
 * (never KEYS: a SCAN page is bounded, so the server never stalls on a large dictionary).
 */
import { UsageError } from '../errors.js'
import { keyFromText, redisKey, type DDictKey } from '../protocol/ddict.js'
import type { Connection } from './connection.js'

/** Keys per SCAN page (a hint to the server, and the batch of values fetched per page). */
export const SCAN_COUNT = 1000

/** The checkpoints a handle at `c` reads, newest first: c down to c - workingSetSize + 1 (not below 0). */
export function readWindow(c: number, workingSetSize: number): number[] {
  const out: number[] = []
  for (let j = c; j >= Math.max(0, c - workingSetSize + 1); j--) out.push(j)
  return out
}

export function versionKeys(id: string, c: number, workingSetSize: number, text: string): string[] {
  return readWindow(c, workingSetSize).map((j) => redisKey(id, j, text))
}

/** A key for messages: strings quoted, numbers as they are. */
export function keyLabel(key: DDictKey): string {
  return typeof key === 'string' ? JSON.stringify(key) : String(key)
}

export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\^]/g, '\\$&')
}

/** The Redis key names of one shard matching `pattern`, page by page. */
export async function* scanNames(connection: Connection, pattern: string, what: string): AsyncGenerator<string[]> {
  let cursor = '0'
  do {
    const [next, names] = await connection.run(what, (c) => c.sendCommand<[Buffer, Buffer[]]>(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(SCAN_COUNT)]))
    cursor = next.toString('latin1')
    if (names.length > 0) yield names.map((name) => name.toString('utf8'))
  } while (cursor !== '0')
}

/**
 * This dictionary's user keys on one shard visible at checkpoint `c`, page by page, as
 * [key, keyText]. At checkpoint 0 (or a working set of 1) the pattern names the one checkpoint;
 * otherwise every version is scanned and a key is reported once (the newest version in the window).
 */
export async function* scanKeys(connection: Connection, id: string, c: number, workingSetSize: number): AsyncGenerator<[DDictKey, string][]> {
  const prefix = `${id}:`
  if (c === 0 || workingSetSize === 1) {
    const head = `${prefix}${c}:`
    for await (const names of scanNames(connection, `${globEscape(head)}*`, 'keys()')) {
      yield names.map((name) => {
        const text = name.slice(head.length)
        return [keyFromText(text), text]
      })
    }
    return
  }
  const low = Math.max(0, c - workingSetSize + 1)
  const seen = new Set<string>()
  for await (const names of scanNames(connection, `${globEscape(prefix)}[0-9]*`, 'keys()')) {
    const page: [DDictKey, string][] = []
    for (const name of names) {
      const rest = name.slice(prefix.length)
      const colon = rest.indexOf(':')
      const checkpoint = Number(rest.slice(0, colon))
      if (!(checkpoint >= low && checkpoint <= c)) continue
      const text = rest.slice(colon + 1)
      if (seen.has(text)) continue
      seen.add(text)
      page.push([keyFromText(text), text])
    }
    if (page.length > 0) yield page
  }
}

/** [key, value] pairs (arrays of two; a `.map(x => [k, v])` result is accepted, its keys checked when used), a Map, or an object. */
export type Entries = Iterable<readonly [DDictKey, unknown]> | Iterable<readonly unknown[]> | Map<DDictKey, unknown> | Record<string, unknown>

/** The [key, value] pairs of `entries`, each array checked to be a pair. */
export function* entriesOf(entries: Entries): Iterable<readonly [DDictKey, unknown]> {
  if (entries instanceof Map) yield* entries
  else if (Symbol.iterator in (entries as object)) {
    for (const entry of entries as Iterable<readonly unknown[]>) {
      if (!Array.isArray(entry) || entry.length !== 2) throw new UsageError(`DDict setMany/update: each entry must be a [key, value] pair (got ${Array.isArray(entry) ? `an array of ${entry.length}` : typeof entry})`)
      yield entry as unknown as readonly [DDictKey, unknown]
    }
  } else yield* Object.entries(entries as Record<string, unknown>)
}
