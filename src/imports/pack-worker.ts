// A pack thread (pack.ts): packs one package per message, on this thread, not the kernel's.
import { parentPort } from 'node:worker_threads'
import { PackFailure, packInThread, type PackOptions, type PackReply } from './pack.js'
import type { TracedPackage } from './trace.js'

parentPort!.on('message', async ({ pkg, options }: { pkg: TracedPackage; options: PackOptions }) => {
  let reply: PackReply
  try {
    reply = { record: await packInThread(pkg, options) }
  } catch (error) {
    const failure = error instanceof PackFailure ? error : new PackFailure('cannot pack it', error instanceof Error ? error.message : String(error), undefined)
    reply = { failure: { what: failure.what, causeMessage: failure.causeMessage, causeCode: failure.causeCode } }
  }
  // The tar's bytes move to the caller rather than being copied (a fresh buffer: Buffer.concat
  // and gzipSync do not hand out pooled memory for packages this size, but copy the small ones).
  const bytes = 'record' in reply ? reply.record.bytes : undefined
  if (bytes && bytes.byteLength === bytes.buffer.byteLength) parentPort!.postMessage(reply, [bytes.buffer as ArrayBuffer])
  else parentPort!.postMessage(reply)
})
