/**
 * The worker boundary: what a manager passes each worker (its setup, as environment variables
 * for a process and as piscina's workerData for a thread), what a worker answers when it is up,
 * and the frames of the byte stream between the manager and a worker process.
 *
 * Frames are length-prefixed over the byte stream between the manager and a worker process.
 *
 * A frame is a 4-byte little-endian body length, one kind byte, then the body. A pipe (not
 * Node's IPC channel) keeps the per-batch cost to two writes and no JSON or v8 serialization:
 * bodies are msgpack bytes produced once and read once.
 */

export const FrameKind = {
  /** manager -> worker: workParts(payloads) */
  work: 1,
  /** worker -> manager: the worker is up; body = encode(WorkerHello) */
  hello: 2,
  /** worker -> manager: results of the oldest batch not yet answered; body = encoded payload list */
  results: 3,
  /** worker -> manager: the oldest batch could not be run at all; body = encode(EncodedError) */
  batchError: 4,
  /** worker -> manager: results of some tasks of the oldest batch, before it ends; body = encode(EarlyResultsWire) */
  early: 5,
  /** worker -> manager: the oldest batch's task (one with a walltime) is being called now; empty body */
  started: 6,
} as const
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind]

const HEADER = 5

/** What a worker process tells the manager once it is ready for work. */
export interface WorkerHello {
  pid: number
  rank: number
  /** CPUs the worker pinned itself to, if it was asked to and could */
  cpus?: number[]
  /** why affinity could not be applied, if it was asked for */
  warning?: string
}

/** The header for a body; written before the body so the body is never copied to prepend it. */
export function frameHeader(kind: FrameKindValue, bodyLength: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER)
  header.writeUInt32LE(bodyLength, 0)
  header.writeUInt8(kind, 4)
  return header
}

/**
 * Reassembles frames from stream chunks. Chunks are kept as a list and joined only when a frame
 * spans several of them, so a large frame arriving in many pieces costs one copy, not one per piece.
 */
export class FrameReader {
  private chunks: Buffer[] = []
  private buffered = 0

  constructor(private readonly onFrame: (kind: number, body: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (this.buffered >= HEADER) {
      const header = this.peek(HEADER)
      const length = header.readUInt32LE(0)
      if (this.buffered < HEADER + length) return
      const frame = this.take(HEADER + length)
      this.onFrame(frame[4]!, frame.subarray(HEADER))
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!
    if (first.length >= n) return first
    this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0]!
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!
    if (first.length < n) {
      // Join just enough leading chunks to cover the frame.
      let joined = 0
      let count = 0
      while (joined < n) joined += this.chunks[count++]!.length
      first = Buffer.concat(this.chunks.slice(0, count), joined)
      this.chunks.splice(0, count, first)
    }
    this.buffered -= n
    if (first.length === n) {
      this.chunks.shift()
      return first
    }
    this.chunks[0] = first.subarray(n)
    return first.subarray(0, n)
  }
}

/** What makes one worker different from its siblings; built by the manager, applied by the worker. */
export interface WorkerSetup {
  rank: number
  /** CPUs to pin the worker to; undefined leaves it unpinned */
  cpus?: number[]
  /** variables set in the worker's process.env */
  env: Record<string, string>
}

/** Environment variable through which a worker process learns its CPU list. */
export const CPUS_ENV = 'TSFLOW_WORKER_CPUS'
export const RANK_ENV = 'TSFLOW_WORKER_RANK'

/** What the manager tells one worker; `encodeWorkerSetup` turns it into the worker's environment. */
export interface WorkerSpec {
  rank: number
  workers: number
  mode: 'threads' | 'processes'
  managerId: string
  blockId: string
  cpus?: number[]
  accelerator?: string
  /** the variable that names the accelerator (e.g. CUDA_VISIBLE_DEVICES) */
  acceleratorEnv: string
}

/** The setup of one worker: its environment carries the whole spec, so a process needs nothing else. */
export function encodeWorkerSetup(spec: WorkerSpec): WorkerSetup {
  const env: Record<string, string> = {
    [RANK_ENV]: String(spec.rank),
    TSFLOW_WORKER_COUNT: String(spec.workers),
    TSFLOW_WORKER_MODE: spec.mode,
    TSFLOW_MANAGER_ID: spec.managerId,
    TSFLOW_BLOCK_ID: spec.blockId,
  }
  if (spec.accelerator !== undefined) {
    env[spec.acceleratorEnv] = spec.accelerator
    env.TSFLOW_ACCELERATOR = spec.accelerator
  }
  if (spec.cpus) env[CPUS_ENV] = spec.cpus.join(',')
  return spec.cpus ? { rank: spec.rank, cpus: spec.cpus, env } : { rank: spec.rank, env }
}

/** What a worker process reads back from its environment. */
export function decodeWorkerEnv(env: Record<string, string | undefined>): { rank: number; cpus?: number[] } {
  const cpus = parseCpuList(env[CPUS_ENV])
  const rank = Number(env[RANK_ENV] ?? -1)
  return cpus ? { rank, cpus } : { rank }
}

/** Parses the "0,1,2" list a worker process receives in TSFLOW_WORKER_CPUS. */
export function parseCpuList(text: string | undefined): number[] | undefined {
  if (!text) return undefined
  const cpus = text.split(',').map((part) => Number(part.trim()))
  return cpus.every((cpu) => Number.isInteger(cpu) && cpu >= 0) ? cpus : undefined
}

/** What the manager passes to every worker thread (piscina's workerData). */
export interface ThreadPoolData {
  /** Int32 per rank: 0 when free, else the threadId holding it */
  slots: SharedArrayBuffer
  setups: WorkerSetup[]
  /**
   * Only while the manager samples resources: Int32 per rank, the number (plus one) of the batch
   * that rank's thread runs now, 0 when it runs none; threads then say their tid in their hello.
   */
  running?: SharedArrayBuffer
}

/** Posted to the manager once per thread start (piscina re-emits it as a pool 'message'). */
export interface ThreadHello {
  tsflowThread: true
  threadId: number
  rank: number
  cpus?: number[]
  warning?: string
  /** the thread's kernel thread id (with ThreadPoolData.running), for /proc/<pid>/task/<tid> */
  tid?: number
}

/** What the manager's thread pool posts to piscina for one batch. */
export interface ThreadWork {
  /** the batch's number, which names it in progress messages */
  n: number
  /** the batch as one buffer: workParts(workOf(batch)), read back with readWorkParts */
  work: Uint8Array
}

/** Posted on parentPort while a batch runs (piscina re-emits these as pool 'message' events). */
export type ThreadWorkProgress =
  /** encode(EarlyResultsWire) of tasks already finished */
  | { tsflowEarly: number; bytes: Uint8Array }
  /** batch `n`'s task (one with a walltime) is being called now */
  | { tsflowStarted: number }

/** Early results as a worker sends them: [payload indexes, encoded results]. */
export type EarlyResultsWire = [indexes: number[], encoded: Uint8Array[]]

