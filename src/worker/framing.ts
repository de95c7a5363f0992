/**
 * Length-prefixed frames over the byte stream between the manager and a worker process.
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
