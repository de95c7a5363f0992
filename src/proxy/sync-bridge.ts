import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
import { ConnectorError, UsageError } from '../errors.js'
import { decodeError, type EncodedError } from '../serialize/errors.js'
import { keyText, type Connector, type ConnectorConfig, type ObjectKey } from './connector.js'

export interface SyncBridgeOptions {
  /** how long one blocking read may take, the bridge thread's start included (default 60 000 ms) */
  timeoutMs?: number
  /**
   * modules (URLs or absolute paths) the bridge thread imports before rebuilding the connector:
   * where a connector type registered outside `tsflow/proxy` comes from
   */
  modules?: string[]
}

/** @internal what the bridge thread is started with */
export interface BridgeWorkerData {
  config: ConnectorConfig
  modules: string[]
  /** Int32 slot 0: the id of the last answer posted (the caller waits on it) */
  control: SharedArrayBuffer
  port: MessagePort
}

/** @internal one request and its answer on the bridge's port */
export interface BridgeRequest {
  id: number
  key: ObjectKey
}
export type BridgeAnswer = { id: number; bytes: Uint8Array } | { id: number; error: EncodedError }

const DEFAULT_TIMEOUT_MS = 60_000
const WORKER = new URL('./sync-bridge-worker.js', import.meta.url)

/**
 * A blocking `get` for connectors whose back end only answers asynchronously (a socket: redis,
 * zmq). A worker thread of its own runs the same connector, rebuilt from its `toConfig()`; the
 * caller posts the key and sleeps in `Atomics.wait` until the thread has posted the bytes (their
 * ArrayBuffer transferred, not copied) and bumped a shared counter, then takes the answer with
 * `receiveMessageOnPort`. Errors come back encoded, so an ObjectNotFound stays an
 * ObjectNotFound (code, message, cause). The thread starts on the first read, is unref'd (it
 * never keeps the process alive) and ends with `close()`.
 *
 * Never point it at a connector whose objects this same thread serves (a peer connector's own
 * objects): the caller's event loop is blocked while it waits, so such a read can only time out.
 */
export class SyncBridge {
  readonly timeoutMs: number
  private readonly modules: string[]
  private worker: Worker | undefined
  private port: MessagePort | undefined
  private control: Int32Array | undefined
  private nextId = 0
  private closed = false

  constructor(
    private readonly config: ConnectorConfig,
    /** how errors name the connector, e.g. `redis(127.0.0.1:6379)` */
    readonly label: string,
    options: SyncBridgeOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0) throw new UsageError(`sync bridge of ${label}: timeoutMs must be a positive integer (got ${options.timeoutMs})`)
    this.modules = options.modules ?? []
  }

  /** whether the bridge thread is running */
  get started(): boolean {
    return this.worker !== undefined
  }

  private start(): { port: MessagePort; control: Int32Array } {
    if (this.port && this.control) return { port: this.port, control: this.control }
    const shared = new SharedArrayBuffer(4)
    const { port1, port2 } = new MessageChannel()
    const workerData: BridgeWorkerData = { config: this.config, modules: this.modules, control: shared, port: port2 }
    // No inherited node flags: the thread runs our plain JS, and some flags make Worker() throw.
    const worker = new Worker(WORKER, { workerData, transferList: [port2], execArgv: [], stdout: false, stderr: false })
    worker.unref()
    port1.unref()
    // The thread answers its own failures (a module that does not load, a connector that cannot be
    // rebuilt) to each read; a thread that dies anyway shows as a read's timeout. Listening here
    // keeps that death from being an unhandled 'error' event.
    worker.on('error', () => {})
    this.worker = worker
    this.port = port1
    this.control = new Int32Array(shared)
    return { port: port1, control: this.control }
  }

  /** The bytes under `key`, blocking this thread until the bridge thread has them. */
  get(key: ObjectKey): Uint8Array {
    if (this.closed) throw new ConnectorError(this.label, `the synchronous read bridge is closed (reading ${keyText(key)})`)
    const { port, control } = this.start()
    this.nextId = (this.nextId % 0x7fff_fffe) + 1
    const id = this.nextId
    port.postMessage({ id, key } satisfies BridgeRequest)
    const deadline = Date.now() + this.timeoutMs
    for (;;) {
      // Load the counter before looking for the answer: an answer posted after the load changes
      // the counter, so the wait below returns at once instead of sleeping past it.
      const seen = Atomics.load(control, 0)
      for (let message = receiveMessageOnPort(port); message; message = receiveMessageOnPort(port)) {
        const answer = message.message as BridgeAnswer
        // Answers to reads that timed out earlier arrive late: dropped.
        if (answer.id !== id) continue
        if ('error' in answer) throw decodeError(answer.error)
        return answer.bytes
      }
      const left = deadline - Date.now()
      if (left <= 0) {
        throw new ConnectorError(this.label, `a synchronous read of ${keyText(key)} got no answer from the bridge thread within ${this.timeoutMs} ms`)
      }
      Atomics.wait(control, 0, seen, left)
    }
  }

  /** Ends the bridge thread (the connector it ran is dropped with it). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.port?.close()
    const worker = this.worker
    this.worker = undefined
    this.port = undefined
    this.control = undefined
    await worker?.terminate()
  }
}

/**
 * Gives a connector without `getSync` a blocking one through a `SyncBridge` (started on the
 * first synchronous read, closed with the connector), so proxies of its objects resolve on a
 * plain property access. A connector that has `getSync` is returned as it is. The connector is
 * changed in place (and returned, typed with `getSync`). Its type must be registered in the
 * bridge thread: built-in ones are; pass `modules` for others.
 */
export function withSyncGet<C extends Connector>(connector: C, options: SyncBridgeOptions = {}): C & { getSync(key: ObjectKey): Uint8Array } {
  if (connector.getSync) return connector as C & { getSync(key: ObjectKey): Uint8Array }
  let bridge: SyncBridge | undefined
  let closed = false
  const close = connector.close.bind(connector)
  Object.defineProperties(connector, {
    getSync: {
      value: (key: ObjectKey) => {
        if (closed) throw new ConnectorError(connector.label, `is closed (reading ${keyText(key)})`)
        return (bridge ??= new SyncBridge(connector.toConfig(), connector.label, options)).get(key)
      },
      configurable: true,
    },
    close: {
      value: async () => {
        closed = true
        await bridge?.close()
        await close()
      },
      configurable: true,
    },
  })
  return connector as C & { getSync(key: ObjectKey): Uint8Array }
}
