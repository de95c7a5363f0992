/**
 * The creator's side of the shard hosts' report connections: a TCP listener (port 0), one
 * connection per shard host, its one report line (`ready` / `error`), later `lost` lines, and the
 * `stop` command. The connection is also the hosts' lifeline: when it closes (stop, or this process
 * died however it died) every host stops its servers, so nothing here needs to run at exit.
 */
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { deferred, settledWithin } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import type { DDictReplicaInfo, ShardHostEvent, ShardHostReport } from '../../protocol/ddict.js'

/** How long a host's connection that closed before its report waits for the placement to say why (a process exit status, a block's stderr). */
const EXPLAIN_GRACE_MS = 1000
/** Idle time before TCP keepalive probes start on a report connection (both ends). */
export const KEEPALIVE_MS = 10_000

export type ReadyShard = Extract<ShardHostReport, { kind: 'ready' }>['shards'][number] & { node: string }

export interface HostLink {
  socket: Socket
  /** `address:port` of the host's end of the connection */
  remote: string
  report?: Extract<ShardHostReport, { kind: 'ready' }>
  closed: boolean
}

export type LostListener = (message: string, shard?: { host: string; port: number; node: string }) => void

export class HostLinks {
  private server: Server | undefined
  readonly links: HostLink[] = []
  private readonly started = deferred<void>()
  private settled = false
  private stopping = false
  private readonly lostListeners = new Set<LostListener>()
  /** `host:port` of shards already reported lost (each is reported once) */
  private readonly lost = new Set<string>()

  constructor(
    private readonly expected: number,
    private readonly logger: Logger,
  ) {
    this.started.promise.catch(() => undefined)
  }

  /** Listens on `bind`, port 0; resolves to the port. */
  async listen(bind: string): Promise<number> {
    const server = createServer((socket) => this.accept(socket))
    this.server = server
    server.listen(0, bind)
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))])
    // An undestroyed dictionary must not keep its creator alive; its exit closes the connections.
    server.unref()
    return (server.address() as { port: number }).port
  }

  /** Resolves once every expected host reported ready; rejects with the first failure. */
  ready(): Promise<void> {
    return this.started.promise
  }

  /** Fails the start (a host's process or block ended before its report, a timeout). */
  fail(reason: string): void {
    if (this.settled) return
    this.settled = true
    this.started.reject(new Error(reason))
  }

  reports(): Extract<ShardHostReport, { kind: 'ready' }>[] {
    return this.links.flatMap((link) => (link.report ? [link.report] : []))
  }

  onLost(listener: LostListener): () => void {
    this.lostListeners.add(listener)
    return () => this.lostListeners.delete(listener)
  }

  private accept(socket: Socket): void {
    const link: HostLink = { socket, remote: `${socket.remoteAddress}:${socket.remotePort}`, closed: false }
    if (this.stopping || this.links.length >= this.expected) {
      this.logger.warn(`ddict: refusing an extra report connection from ${link.remote}`)
      socket.destroy()
      return
    }
    this.links.push(link)
    socket.setEncoding('utf8')
    socket.setNoDelay(true)
    // A node that vanishes without closing (power, network) is found by TCP keepalive probes.
    socket.setKeepAlive(true, KEEPALIVE_MS)
    socket.unref()
    let buffer = ''
    socket.on('data', (chunk: string) => {
      buffer += chunk
      for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
        if (line.trim()) this.onLine(link, line)
      }
    })
    socket.on('error', (error) => this.logger.debug(`ddict: report connection ${link.remote}: ${error.message}`))
    socket.on('close', () => this.onClose(link))
  }

  private onLine(link: HostLink, line: string): void {
    let message: ShardHostReport | ShardHostEvent
    try {
      message = JSON.parse(line) as ShardHostReport | ShardHostEvent
    } catch {
      this.logger.warn(`ddict: a line from ${link.remote} is not JSON: ${line.slice(0, 200)}`)
      return
    }
    if (message.kind === 'ready' && Array.isArray(message.shards)) {
      link.report = message
      this.logger.info(`ddict: shard host on ${message.node} (pid ${message.pid}) ready: ${message.shards.map((s) => `${s.host}:${s.port}`).join(', ')}`)
      if (!this.settled && this.reports().length === this.expected) {
        this.settled = true
        this.started.resolve()
      }
    } else if (message.kind === 'error') {
      this.fail(`the shard host on node ${message.node} (pid ${message.pid}) reported: ${message.message}`)
    } else if (message.kind === 'lost') {
      const shard = link.report?.shards.find((s) => s.port === message.port)
      const replicaOf = link.report?.shards.find((s) => s.replicas.some((r) => r.port === message.port))
      const address = `${shard?.host ?? replicaOf?.host ?? link.socket.remoteAddress}:${message.port}`
      this.emitLost(`the Redis server ${address} on node ${message.node} was lost: ${message.message}`, shard ?? replicaOf, message.node)
    } else {
      this.logger.warn(`ddict: unknown line from ${link.remote}: ${line.slice(0, 200)}`)
    }
  }

  private onClose(link: HostLink): void {
    link.closed = true
    if (this.stopping) return
    if (!link.report) {
      // Give the placement a moment to say why (exit status, stderr); that reason wins if it comes.
      setTimeout(() => this.fail(`the shard host at ${link.remote} closed its report connection before reporting`), EXPLAIN_GRACE_MS).unref()
      return
    }
    const { node, pid } = link.report
    for (const shard of link.report.shards) {
      this.emitLost(`the shard host on node ${node} (pid ${pid}) is gone (its report connection closed), and with it the Redis server ${shard.host}:${shard.port}`, shard, node)
    }
  }

  private emitLost(message: string, shard: { host: string; port: number; replicas?: DDictReplicaInfo[] } | undefined, node: string): void {
    if (this.stopping) return
    const key = shard ? `${shard.host}:${shard.port}` : message
    if (this.lost.has(key)) return
    this.lost.add(key)
    this.logger.warn(`ddict: ${message}`)
    for (const listener of [...this.lostListeners]) {
      try {
        listener(message, shard ? { host: shard.host, port: shard.port, node } : undefined)
      } catch (error) {
        this.logger.error('ddict: an onLost listener threw', error)
      }
    }
  }

  /**
   * Tells every host to stop, ends the connections and waits up to `graceMs` for the hosts to
   * close them (they do once their servers are gone); then drops what is left and the listener.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true
    this.fail('the dictionary was stopped while its servers were starting')
    const closing = this.links
      .filter((link) => !link.closed)
      .map((link) => {
        const closed = once(link.socket, 'close').catch(() => undefined)
        if (link.socket.writable) link.socket.end(JSON.stringify({ kind: 'stop' }) + '\n')
        return closed
      })
    await settledWithin(Promise.all(closing), graceMs)
    for (const link of this.links) link.socket.destroy()
    const server = this.server
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
