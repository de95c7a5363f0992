import { Future } from './future.js'
import { isPlainObject } from '../util/schema.js'
import { isProxy } from '../proxy/proxy.js'
import { refusedReason } from '../serialize/codec.js'

/**
 * Why one argument of a task cannot be used, found while scanning it: a value the codec would
 * refuse, or a property whose getter threw. `path` locates it inside the argument (`.a[2]`).
 */
export class ArgumentProblem {
  readonly path: string[] = []
  constructor(
    readonly problem: string,
    readonly cause?: unknown,
  ) {}

  /** `where` names the argument, e.g. "argument 0" or "inputs". */
  describe(where: string): string {
    return `${where}${this.path.length ? ` (at ${this.path.join('')})` : ''}`
  }
}

// The scan keeps no "seen" set for the first containers it visits (most arguments are small),
// then starts one: a cycle or a heavily shared structure is then visited at most once more.
const UNTRACKED_VISITS = 64
let visits = 0
let seen: Set<object> | undefined

/**
 * Futures may sit anywhere in a task's arguments: directly, or nested in arrays and plain
 * objects. Other objects (class instances, typed arrays, Maps) are passed through untouched.
 * Cycles are fine. With `refuse`, a value the codec cannot send (a generator, an iterator, a
 * WeakRef ...) throws an ArgumentProblem; a getter that throws always does.
 */
export function collectFutures(value: unknown, found: Future<unknown>[], refuse = false): void {
  if (typeof value !== 'object' || value === null) {
    if (refuse && typeof value === 'function') throw new ArgumentProblem(refusedReason(value)!)
    return
  }
  // Saved and restored: a getter may call an app, which scans its own arguments.
  const outerVisits = visits
  const outerSeen = seen
  visits = 0
  seen = undefined
  try {
    walk(value, found, refuse)
  } finally {
    visits = outerVisits
    seen = outerSeen
  }
}

function walk(value: object, found: Future<unknown>[], refuse: boolean): void {
  // A lazy proxy travels as its factory: looking inside (even instanceof) would fetch its target.
  if (isProxy(value)) return
  if (value instanceof Future) {
    found.push(value)
    return
  }
  const array = Array.isArray(value)
  if (!array && !isPlainObject(value)) {
    if (refuse) {
      const reason = refusedReason(value)
      if (reason) throw new ArgumentProblem(reason)
    }
    return
  }
  if (seen) {
    if (seen.has(value)) return
    seen.add(value)
  } else if (++visits > UNTRACKED_VISITS) {
    seen = new Set([value])
  }
  let key: string | number = 0
  try {
    if (array) {
      for (; (key as number) < value.length; (key as number)++) {
        const item = value[key as number]
        if (typeof item === 'object' && item !== null) walk(item, found, refuse)
        else if (refuse && typeof item === 'function') throw new ArgumentProblem(refusedReason(item)!)
      }
    } else {
      for (key in value) {
        const item = (value as Record<string, unknown>)[key]
        if (typeof item === 'object' && item !== null) walk(item, found, refuse)
        else if (refuse && typeof item === 'function') throw new ArgumentProblem(refusedReason(item)!)
      }
    }
  } catch (error) {
    const problem = error instanceof ArgumentProblem ? error : new ArgumentProblem(`reading it threw ${describe(error)}`, error)
    problem.path.unshift(array ? `[${key}]` : `.${String(key)}`)
    throw problem
  }
}

/**
 * A copy of `value` with each future replaced by its result (all must have succeeded). Arrays
 * and plain objects are copied; a structure that refers to itself is copied with the same shape.
 */
export function substituteFutures(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (isProxy(value)) return value
  if (value instanceof Future) return value.settledResult()
  return copy(value, new Map())
}

function copy(value: object, copies: Map<object, unknown>): unknown {
  if (isProxy(value)) return value
  if (value instanceof Future) return value.settledResult()
  const array = Array.isArray(value)
  if (!array && !isPlainObject(value)) return value
  const done = copies.get(value)
  if (done !== undefined) return done
  if (array) {
    const out: unknown[] = new Array(value.length)
    copies.set(value, out)
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      out[i] = typeof item === 'object' && item !== null ? copy(item, copies) : item
    }
    return out
  }
  const out: Record<string, unknown> = Object.getPrototypeOf(value) === null ? Object.create(null) : {}
  copies.set(value, out)
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key]
    // defineProperty, not assignment: an own "__proto__" key (from JSON.parse) stays data.
    Object.defineProperty(out, key, {
      value: typeof item === 'object' && item !== null ? copy(item, copies) : item,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

function describe(error: unknown): string {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  } catch {
    return typeof error
  }
}
