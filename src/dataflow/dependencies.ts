import { Future } from './future.js'
import { isPlainObject } from '../util/schema.js'

/**
 * Futures may sit anywhere in a task's arguments: directly, or nested in arrays and plain
 * objects. Other objects (class instances, typed arrays, Maps) are passed through untouched.
 */
export function collectFutures(value: unknown, found: Future<unknown>[]): void {
  if (typeof value !== 'object' || value === null) return
  if (value instanceof Future) {
    found.push(value)
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) collectFutures(value[i], found)
  } else if (isPlainObject(value)) {
    for (const key in value) collectFutures(value[key], found)
  }
}

/** A copy of `value` with each future replaced by its result (all must have succeeded). */
export function substituteFutures(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Future) return value.settledResult()
  if (Array.isArray(value)) return value.map(substituteFutures)
  if (isPlainObject(value)) {
    // defineProperty, not assignment: an own "__proto__" key (from JSON.parse) stays data.
    const copy: Record<string, unknown> = Object.getPrototypeOf(value) === null ? Object.create(null) : {}
    for (const key of Object.keys(value)) {
      Object.defineProperty(copy, key, { value: substituteFutures(value[key]), enumerable: true, writable: true, configurable: true })
    }
    return copy
  }
  return value
}
