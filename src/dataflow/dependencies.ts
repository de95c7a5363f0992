import { Future } from './future.js'
import { isPlainObject } from '../config/schema.js'

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
    const copy: Record<string, unknown> = {}
    for (const key in value) copy[key] = substituteFutures(value[key])
    return copy
  }
  return value
}
