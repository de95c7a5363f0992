import { Worker } from 'node:worker_threads'
import { nativeAvailable, setParentDeathSignal } from '../native/index.js'

/** How often the watcher thread checks the parent pid. */
const CHECK_EVERY_MS = 100

// Plain CommonJS for `eval: true`; it shares nothing with the main thread but the process.
const WATCHER = `
const { workerData } = require('node:worker_threads')
setInterval(() => {
  if (process.ppid !== workerData.parent) process.kill(workerData.self, 'SIGKILL')
}, workerData.everyMs)
`

/**
 * Makes this worker process die with its manager, even in the middle of a long synchronous task:
 * through the parent-death signal when the native addon is there, else a watcher thread.
 * The pipe to the manager closing ends an idle worker (process.ts), but a worker busy in
 * synchronous code reads nothing until the task ends; a small thread of its own, whose event loop
 * the task cannot block, sees the parent change (the manager died and the worker was re-parented)
 * and kills the process.
 */
export function dieWithParent(): void {
  const parent = process.ppid
  if (parent <= 1) return
  // Where the native addon is built, the kernel does it: no thread, nothing on the start-up path.
  if (nativeAvailable()) {
    try {
      setParentDeathSignal('SIGKILL')
      // A manager that died before the call is not signalled: the re-parenting shows it.
      if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL')
      return
    } catch {
      // Fall back to the watcher thread.
    }
  }
  const watcher = new Worker(WATCHER, { eval: true, workerData: { parent, self: process.pid, everyMs: CHECK_EVERY_MS } })
  // The watcher never keeps the process alive, and a failure to start it is not fatal.
  watcher.unref()
  watcher.on('error', () => undefined)
}
