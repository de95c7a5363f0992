/**
 * The "unpacker" thread of proxy imports (started by loader.ts, one per thread that activates
 * imports): fetches and unpacks shipped packages in the background, off the task's thread, so
 * that a task's synchronous `require` can block waiting for one. Each package goes through
 * unpack.ts's node cache (its lock makes one unpacker per node do the work; the others wait).
 *
 * In: `{ type: 'unpack', store, cacheDir, packages }` (queue them all) and `{ type: 'need', hash }`
 * (an import waits for it: to the front). Out, to both the task thread and the loader hooks:
 * `{ type: 'done', hash, root }` or `{ type: 'failed', hash, message }`; then the shared counter
 * is bumped and notified, which wakes a task thread blocked in `require`.
 */
import { workerData, type MessagePort } from 'node:worker_threads'
import type { ShippedPackageWire } from '../protocol/imports.js'
import { Store, type StoreConfig } from '../proxy/store.js'
import { ensureUnpacked } from './unpack.js'

interface UnpackerData {
  task: MessagePort
  hooks: MessagePort
  signal: SharedArrayBuffer
}

interface Job {
  pkg: ShippedPackageWire
  store: StoreConfig
  cacheDir: string
  state: 'queued' | 'running' | 'settled'
}

/** Packages unpacked at once: tar extraction is CPU and I/O bound, and the node's cores run tasks. */
const CONCURRENCY = 2

// Every connector type registers itself when its module loads (stores are rebuilt from configs here).
await import('../proxy/index.js')

const { task, hooks, signal } = workerData as UnpackerData
const counter = new Int32Array(signal)
const jobs = new Map<string, Job>()
const queue: string[] = []
const settled = new Map<string, { type: 'done'; hash: string; root: string } | { type: 'failed'; hash: string; message: string }>()
/** needed before the package was queued (the two ports are not ordered with each other) */
const wanted = new Set<string>()
let running = 0

type Inbound = { type: 'unpack'; store: StoreConfig; cacheDir: string; packages: ShippedPackageWire[] } | { type: 'need'; hash: string }

function receive(message: Inbound, from: MessagePort): void {
  if (message.type === 'unpack') {
    for (const pkg of message.packages) {
      if (jobs.has(pkg.hash)) continue
      jobs.set(pkg.hash, { pkg, store: message.store, cacheDir: message.cacheDir, state: 'queued' })
      if (wanted.delete(pkg.hash)) queue.unshift(pkg.hash)
      else queue.push(pkg.hash)
    }
  } else if (message.type === 'need') {
    const outcome = settled.get(message.hash)
    // The outcome was posted before this request was read; the asker may have missed it.
    if (outcome) from.postMessage(outcome)
    else if (!jobs.has(message.hash)) wanted.add(message.hash)
    else if (jobs.get(message.hash)?.state === 'queued') {
      queue.splice(queue.indexOf(message.hash), 1)
      queue.unshift(message.hash)
    }
  }
  pump()
}

function pump(): void {
  while (running < CONCURRENCY && queue.length > 0) {
    const job = jobs.get(queue.shift()!)!
    job.state = 'running'
    running++
    void run(job).finally(() => {
      running--
      pump()
    })
  }
}

async function run(job: Job): Promise<void> {
  let outcome: { type: 'done'; hash: string; root: string } | { type: 'failed'; hash: string; message: string }
  try {
    const root = await ensureUnpacked(job.pkg, Store.fromConfig(job.store), job.cacheDir)
    outcome = { type: 'done', hash: job.pkg.hash, root }
  } catch (error) {
    outcome = { type: 'failed', hash: job.pkg.hash, message: (error as Error)?.message ?? String(error) }
  }
  job.state = 'settled'
  settled.set(job.pkg.hash, outcome)
  task.postMessage(outcome)
  hooks.postMessage(outcome)
  Atomics.add(counter, 0, 1)
  Atomics.notify(counter, 0)
}

task.on('message', (message: Inbound) => receive(message, task))
hooks.on('message', (message: Inbound) => receive(message, hooks))
