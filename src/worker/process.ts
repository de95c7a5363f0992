/**
 * Entry of each manager worker process (`--mode processes`), started by the manager with a
 * socket pair on fd 3. It runs one work message at a time, in arrival order, so the manager
 * can tell which batch was running when the process died: the oldest one not yet answered.
 *
 * The process ends when the manager closes the socket (drain, shutdown, or the manager died),
 * or, if a long synchronous task keeps it from reading, when a watcher thread sees the manager
 * gone (parent-watch.ts): a worker never outlives its manager.
 */
import { Socket } from 'node:net'
import { markWorker } from '../runtime/context.js'
import { encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import { FrameKind, FrameReader, decodeWorkerEnv, frameHeader, type EarlyResultsWire, type FrameKindValue, type WorkerHello } from '../protocol/worker.js'
import { readWorkParts, runWork, type WorkHooks } from './run.js'
import { applyAffinity } from './setup.js'
import { dieWithParent } from './parent-watch.js'

markWorker('process')
dieWithParent()

const { rank, cpus } = decodeWorkerEnv(process.env)
const hello: WorkerHello = { pid: process.pid, rank }
const warning = applyAffinity(cpus)
if (warning) hello.warning = warning
else if (cpus) hello.cpus = cpus

const channel = new Socket({ fd: 3, readable: true, writable: true })
const waiting: Buffer[] = []
let busy = false

function send(kind: FrameKindValue, body: Uint8Array): void {
  // Header and body in one writev (one system call, one read on the manager's side).
  channel.cork()
  channel.write(frameHeader(kind, body.length))
  if (body.length > 0) channel.write(body)
  channel.uncork()
}

// Results go back as their tasks finish, and a walltime's clock starts with the call itself.
const EMPTY = new Uint8Array(0)
const hooks: WorkHooks = {
  results: (indexes, encoded) => send(FrameKind.early, encode([indexes, encoded] satisfies EarlyResultsWire)),
  started: () => send(FrameKind.started, EMPTY),
}

function pump(): void {
  while (!busy && waiting.length > 0) {
    const work = waiting.shift()!
    let answer: Buffer | Promise<Buffer>
    try {
      answer = runWork(readWorkParts(work), hooks)
    } catch (error) {
      send(FrameKind.batchError, encode(encodeError(error)))
      continue
    }
    if (answer instanceof Promise) {
      busy = true
      answer.then(
        (bytes) => send(FrameKind.results, bytes),
        (error: unknown) => send(FrameKind.batchError, encode(encodeError(error))),
      ).finally(() => {
        busy = false
        pump()
      })
    } else {
      send(FrameKind.results, answer)
    }
  }
}

const reader = new FrameReader((kind, body) => {
  if (kind !== FrameKind.work) return
  waiting.push(body)
  pump()
})

channel.on('data', (chunk: Buffer) => reader.push(chunk))
// The manager closed the pipe or died: nobody is left to take results.
channel.on('end', () => process.exit(0))
channel.on('close', () => process.exit(0))
channel.on('error', () => process.exit(0))

send(FrameKind.hello, encode(hello))
