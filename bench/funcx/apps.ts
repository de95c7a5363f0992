/**
 * The funcX suite's task functions. Workers import this module by reference (out/bench/funcx/apps.js),
 * so every app is exported at top level.
 */
import { app } from 'tsflow'

/** The paper's hello-world function. */
export const hello = app(function hello(name: string) {
  return `Hello ${name}!`
})

/** A small function for batching: returns its argument doubled. */
export const double = app(function double(x: number) {
  return x * 2
})

/** A no-op. */
export const noop = app(function noop() {
  return null
})

/** Sleeps `ms` milliseconds (a timer, not a busy loop: oversubscribed workers do not fight for the cores). */
export const sleepMs = app(async function sleepMs(ms: number) {
  await new Promise((resolve) => setTimeout(resolve, ms))
  return ms
})
