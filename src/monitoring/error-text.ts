/**
 * A task's error as the monitoring database keeps it: a one-line description and the stack. A
 * task that failed on a worker fails with the error rebuilt from the worker's encoding
 * (serialize/errors.ts), whose `stack` is the stack from where the task ran, and whose `cause`
 * chain (and AggregateError members) are rebuilt the same way: all of it goes into the text, so
 * the dashboard shows what a user would see with `console.error(future.exception())`.
 */

/** Longest stack text kept per error: a deep cause chain must not bloat the database. */
const MAX_STACK = 16_384
const MAX_DEPTH = 6

export function describeCause(cause: unknown): string {
  if (cause instanceof Error) return `${cause.name}: ${cause.message}`
  try {
    return typeof cause === 'string' ? cause : (JSON.stringify(cause) ?? String(cause))
  } catch {
    return String(cause)
  }
}

/** The stack with its causes ("caused by: ..."), or null for a value that is not an Error. */
export function errorStack(error: unknown): string | null {
  if (!(error instanceof Error)) return null
  const parts: string[] = []
  append(error, parts, 0)
  const text = parts.join('\n')
  return text.length > MAX_STACK ? `${text.slice(0, MAX_STACK)}\n... (${text.length - MAX_STACK} more characters)` : text
}

function append(error: Error, parts: string[], depth: number): void {
  // V8's stack starts with "Name: message"; a stack set by hand may not.
  const head = describeCause(error)
  const stack = typeof error.stack === 'string' && error.stack.length > 0 ? error.stack : head
  parts.push(stack.startsWith(head) || stack.startsWith(error.name) ? stack : `${head}\n${stack}`)
  if (depth >= MAX_DEPTH) return
  if (error instanceof AggregateError) {
    error.errors.forEach((inner, index) => {
      if (inner instanceof Error) {
        parts.push(`[error ${index}]`)
        append(inner, parts, depth + 1)
      }
    })
  }
  const cause = error.cause
  if (cause === undefined) return
  if (cause instanceof Error) {
    parts.push('caused by:')
    append(cause, parts, depth + 1)
  } else {
    parts.push(`caused by: ${describeCause(cause)}`)
  }
}
