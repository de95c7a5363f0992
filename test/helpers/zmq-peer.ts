// Drives test/fixtures/zmq-peer.mjs: a zmq connector peer in another process (optionally inside a
// network namespace), one JSON command at a time.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const script = fileURLToPath(new URL('../fixtures/zmq-peer.mjs', import.meta.url))

export interface Peer {
  child: ChildProcessWithoutNullStreams
  endpoint: string
  pid: number
  /** sends a command, resolves to its reply (throws if the peer answered with an error or exited) */
  call<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T>
  /** the reply, error included, as the peer sent it */
  raw(command: Record<string, unknown>): Promise<Record<string, unknown>>
}

/**
 * Starts a peer with `options` (the ZmqConnector's). `netns`: run it inside that namespace. The
 * teardown registered on `t` kills it if it is still running.
 */
export async function startPeer(t: Test, options: Record<string, unknown> = {}, netns?: string): Promise<Peer> {
  const argv = [script, JSON.stringify(options)]
  const child = netns ? spawn('ip', ['netns', 'exec', netns, process.execPath, ...argv]) : spawn(process.execPath, argv)
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<Record<string, unknown>> => {
    const line = await lines.next()
    if (line.done) throw new Error(`the zmq peer exited (code ${child.exitCode}, signal ${child.signalCode}): ${stderr}`)
    return JSON.parse(line.value) as Record<string, unknown>
  }
  const ready = await next()
  // One command at a time: replies come back in order.
  let queue: Promise<unknown> = Promise.resolve()
  const raw = (command: Record<string, unknown>) => {
    const reply = queue.then(() => {
      child.stdin.write(`${JSON.stringify(command)}\n`)
      return next()
    })
    queue = reply.catch(() => {})
    return reply
  }
  return {
    child,
    endpoint: ready.endpoint as string,
    pid: ready.pid as number,
    raw,
    async call<T>(command: Record<string, unknown>): Promise<T> {
      const reply = await raw(command)
      if (reply.error) throw Object.assign(new Error(`peer: ${(reply.error as { message: string }).message}`), reply.error)
      return reply as T
    },
  }
}
