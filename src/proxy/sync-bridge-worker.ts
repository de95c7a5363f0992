// The thread behind a SyncBridge (sync-bridge.ts): rebuilds the connector from its config and
// answers each read on the port, then bumps the shared counter the caller sleeps on.
import { isAbsolute } from 'node:path'
import { pathToFileURL } from 'node:url'
import { workerData } from 'node:worker_threads'
import { encodeError } from '../serialize/errors.js'
import { connectorFromConfig, type Connector } from './connector.js'
import type { BridgeAnswer, BridgeRequest, BridgeWorkerData } from './sync-bridge.js'

const { config, modules, control: shared, port } = workerData as BridgeWorkerData
const control = new Int32Array(shared)

// Registers the built-in connector types (the bridge's own module graph is not the caller's),
// then the caller's extra modules; a failure is every read's answer.
const ready: Promise<Connector> = (async () => {
  await import('./index.js')
  for (const module of modules) await import(isAbsolute(module) ? pathToFileURL(module).href : module)
  return connectorFromConfig(config)
})()
ready.catch(() => {}) // reported per read below

function answer(message: BridgeAnswer): void {
  // The bytes' buffer moves to the caller when it is theirs alone; a view into a shared or
  // pooled buffer (small Buffers) is copied by postMessage instead.
  const bytes = 'bytes' in message ? message.bytes : undefined
  const whole = bytes && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer
  try {
    port.postMessage(message, whole ? [bytes.buffer as ArrayBuffer] : [])
  } catch {
    port.postMessage(bytes ? { id: message.id, bytes: Uint8Array.from(bytes) } : message)
  }
  Atomics.store(control, 0, message.id)
  Atomics.notify(control, 0)
}

port.on('message', (request: BridgeRequest) => {
  ready
    .then((connector) => connector.get(request.key))
    .then(
      (bytes) => answer({ id: request.id, bytes }),
      (error: unknown) => answer({ id: request.id, error: encodeError(error) }),
    )
    .catch((error: unknown) => answer({ id: request.id, error: encodeError(error) }))
})
