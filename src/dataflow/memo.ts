import { createHash, type Hash } from 'node:crypto'
import { File } from '../data/file.js'
import type { AppFuture } from './future.js'

/**
 * Memoization: a task whose app has `cache: true` is keyed on the app's identity (where it is
 * defined and its source text, so editing the function invalidates old entries) and its
 * arguments. A later identical call gets the earlier result instead of running again; an
 * identical call made while the first is still running waits for it.
 */
export class MemoTable {
  private readonly done = new Map<string, unknown>()
  private readonly inFlight = new Map<string, AppFuture<unknown>>()
  // Keys preloaded from checkpoint files and not yet used in this run: the first hit on one
  // is reported, so the kernel writes it to this run's checkpoint as well.
  private readonly loaded = new Set<string>()

  get size(): number {
    return this.done.size
  }

  lookup(key: string): { hit: true; value: unknown } | { hit: false; running?: AppFuture<unknown> } {
    if (this.done.has(key)) return { hit: true, value: this.done.get(key) }
    const running = this.inFlight.get(key)
    return running ? { hit: false, running } : { hit: false }
  }

  /** True the first time a hit on `key` is answered from a preloaded (checkpoint) entry. */
  firstUseOfLoaded(key: string): boolean {
    return this.loaded.size > 0 && this.loaded.delete(key)
  }

  started(key: string, future: AppFuture<unknown>): void {
    this.inFlight.set(key, future)
  }

  finished(key: string, future: AppFuture<unknown>, ok: boolean, value: unknown): void {
    if (this.inFlight.get(key) === future) this.inFlight.delete(key)
    // Failures are not remembered: the next identical call runs again.
    if (ok) {
      this.done.set(key, value)
      this.loaded.delete(key)
    }
  }

  /** Adds entries loaded from checkpoint files. */
  preload(entries: Iterable<[string, unknown]>): void {
    for (const [key, value] of entries) {
      this.done.set(key, value)
      this.loaded.add(key)
    }
  }
}

/** `ignore` holds positional indices and call-option names left out of the key. */
export function memoKey(
  appIdentity: string,
  args: readonly unknown[],
  callOptions: Record<string, unknown>,
  ignore: readonly (number | string)[],
): string {
  const hash = createHash('sha256')
  hash.update(appIdentity)
  hash.update('\0args')
  args.forEach((arg, index) => {
    if (ignore.includes(index)) return
    hash.update(`\0${index}=`)
    feed(hash, arg, new Set())
  })
  for (const name of Object.keys(callOptions).sort()) {
    if (ignore.includes(name) || callOptions[name] === undefined) continue
    hash.update(`\0opt ${name}=`)
    feed(hash, callOptions[name], new Set())
  }
  return hash.digest('hex')
}

/** The part of an app's identity that comes from its code. */
export function sourceDigest(fn: (...args: never[]) => unknown): string {
  return createHash('sha256').update(Function.prototype.toString.call(fn)).digest('hex').slice(0, 16)
}

// Feeds a canonical form of `value` into the hash: plain-object keys sorted, types tagged so
// that 1, "1" and [1] differ.
function feed(hash: Hash, value: unknown, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
      hash.update(`s${value.length}:`).update(value)
      return
    case 'number':
      hash.update(`n${Object.is(value, -0) ? '-0' : String(value)};`)
      return
    case 'bigint':
      hash.update(`b${value};`)
      return
    case 'boolean':
      hash.update(value ? 'T' : 'F')
      return
    case 'undefined':
      hash.update('u')
      return
    case 'function':
      hash.update(`f${value.name}`)
      return
    case 'symbol':
      hash.update(`y${String(value)}`)
      return
  }
  if (value === null) {
    hash.update('z')
    return
  }
  const object = value as object
  if (seen.has(object)) {
    hash.update('cycle')
    return
  }
  seen.add(object)
  if (object instanceof File) hash.update(`F${object.url};`)
  else if (ArrayBuffer.isView(object)) {
    hash.update(`v${object.constructor.name}${object.byteLength}:`)
    hash.update(new Uint8Array(object.buffer, object.byteOffset, object.byteLength))
  } else if (object instanceof ArrayBuffer) hash.update(`B${object.byteLength}:`).update(new Uint8Array(object))
  else if (object instanceof Date) hash.update(`d${object.getTime()};`)
  else if (object instanceof RegExp) hash.update(`r${String(object)};`)
  else if (Array.isArray(object)) {
    hash.update(`a${object.length}[`)
    for (const item of object) feed(hash, item, seen)
    hash.update(']')
  } else if (object instanceof Map) {
    hash.update(`m${object.size}{`)
    const entries = [...object.entries()].map(([k, v]) => [subDigest(k, seen), v] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1))
    for (const [k, v] of entries) {
      hash.update(k)
      feed(hash, v, seen)
    }
    hash.update('}')
  } else if (object instanceof Set) {
    const items = [...object].map((item) => subDigest(item, seen)).sort()
    hash.update(`S${items.length}{${items.join(',')}}`)
  } else {
    const keys = Object.keys(object).sort()
    hash.update(`o${keys.length}{`)
    for (const key of keys) {
      hash.update(`${key.length}:${key}=`)
      feed(hash, (object as Record<string, unknown>)[key], seen)
    }
    hash.update('}')
  }
  seen.delete(object)
}

function subDigest(value: unknown, seen: Set<object>): string {
  const hash = createHash('sha256')
  feed(hash, value, seen)
  return hash.digest('hex')
}
