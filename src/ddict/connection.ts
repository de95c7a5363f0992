/**
 * One connection to one Redis server of a DDict (a shard's primary, one of its replicas, or the
 * shard's subscriber for `waitFor`), on our own RESP2 client (resp-client.ts). A lost connection
 * is dropped (pending commands fail at once), the next command connects again, and every connect
 * and command is bounded by the dictionary's timeoutMs. So a killed or silent server shows as
 * DDictUnreachable naming the shard and its address within the bound, never a hang. Sockets are
 * unref'd: an idle connection does not keep a process or worker thread alive (a pending
 * command's timeout timer does, while it waits).
 *
 * Why not node-redis here (it stays for the proxy's RedisConnector): measured with
 * bench/ddict-throughput (2 shards, 16 in flight, this 2-core machine), the DDict on node-redis
 * reached only 0.33 (4 KiB set), 0.43 (4 KiB get), 0.81 (4 MiB set) and 0.36 (4 MiB get) of
 * redis-benchmark's ops/s against the same servers, below issue 11's 0.5. node-redis's raw client
 * is as slow on 4 MiB gets (it collects 64 KB socket chunks in a list and concatenates them) and
 * pays per-command JS overhead on 4 KiB values; resp-client.ts copies a large reply once into
 * its exact-size buffer and writes large arguments without copying. It also loads in a fraction
 * of node-redis's ~100 ms (this module is reached from runtime/execute.ts through the codec
 * extension).
 */
import { DDictDestroyed, DDictUnreachable, TsflowError } from '../errors.js'
import { ReplyError, RespClient, RespConnectTimeout } from './resp-client.js'

type Client = RespClient

/** What the DDict sends: raw commands, bulk strings as Buffers. */
export interface Commands {
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>): Promise<T>
}

export interface ServerAddress {
  host: string
  port: number
}

/** Shared by every connection of one dictionary in this process: its name and whether it is gone. */
export interface LinkContext {
  dict: string
  password: string
  timeoutMs: number
  /** set by destroy(): later commands fail with DDictDestroyed */
  destroyed: boolean
}

interface Open {
  client: Client
  commands: Commands
  retired: boolean
  /** the watchdog found a command older than timeoutMs and dropped the connection */
  timedOut: boolean
}

export class TimedOut extends Error {}

/** `promise`, or a TimedOut rejection after `ms` (calling `onTimeout` first). */
export function bounded<T>(promise: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout()
      reject(new TimedOut())
    }, ms)
  })
  promise.catch(() => {})
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export function hostPort(address: ServerAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

/** A reply error of the server (WRONGTYPE, OOM, our scripts' errors), as opposed to a transport failure. */
export function isReplyError(error: unknown): error is Error {
  return error instanceof ReplyError
}

export class Connection {
  readonly label: string
  private current: Open | undefined
  private connecting: Promise<Open> | undefined
  private closed = false
  /** start times of the runs under way, oldest first (Map keeps insertion order) */
  private readonly pending = new Map<number, number>()
  private nextRun = 0
  private watchdog: NodeJS.Timeout | undefined
  private idleTicks = 0
  /** set when the servers' host reported this server lost: every call fails at once, naming it */
  private lost: string | undefined
  /** for the subscriber: called (with the cause) when the connection is lost */
  onLost: ((cause: string) => void) | undefined

  constructor(
    readonly context: LinkContext,
    readonly shard: number,
    readonly address: ServerAddress,
  ) {
    this.label = hostPort(address)
  }

  unreachable(message: string, cause?: unknown): DDictUnreachable {
    const hint = /refused|ECONNREFUSED|closed|reset/i.test(message) ? ' (the server stopped; the dictionary may have been destroyed)' : ''
    return new DDictUnreachable(this.context.dict, this.shard, this.label, message + hint, cause === undefined ? undefined : { cause })
  }

  /** The server is gone (its shard host said so): pending and later calls fail with DDictUnreachable. */
  markLost(message: string): void {
    this.lost = message
    if (this.current) this.retire(this.current, message)
  }

  private check(what: string): void {
    if (this.context.destroyed) throw new DDictDestroyed(this.context.dict, what)
    if (this.lost !== undefined) throw this.unreachable(`${what}: the server was lost (${this.lost})`)
    if (this.closed) throw this.unreachable('its connection was closed (detach)')
  }

  /** The RESP client, connected now if needed (bounded by timeoutMs). */
  async client(): Promise<Open> {
    if (this.current && !this.current.retired) return this.current
    this.connecting ??= this.open()
      .then((open) => {
        if (!open.retired && !this.closed) this.current = open
        return open
      })
      .finally(() => (this.connecting = undefined))
    return this.connecting
  }

  private async open(): Promise<Open> {
    const ms = this.context.timeoutMs
    const client = new RespClient({
      host: this.address.host,
      port: this.address.port,
      ...(this.context.password ? { password: this.context.password } : {}),
      connectTimeoutMs: ms,
    })
    client.unref()
    const open: Open = { client, commands: client, retired: false, timedOut: false }
    client.onClose = (cause) => this.retire(open, cause)
    try {
      await client.ready
    } catch (error) {
      this.retire(open, 'connect failed')
      if (error instanceof RespConnectTimeout) throw this.unreachable(`cannot connect: no answer within ${ms} ms (timeoutMs)`)
      throw this.unreachable(`cannot connect: ${(error as Error).message}`, error)
    }
    return open
  }

  private retire(open: Open, cause: string): void {
    if (open.retired) return
    open.retired = true
    if (this.current === open) this.current = undefined
    if (open.client.isOpen) open.client.destroy()
    this.onLost?.(cause)
  }

  /**
   * Runs `command` (one or several commands sent in the same turn: one round trip), bounded by
   * timeoutMs. Reply errors pass through; transport failures become DDictUnreachable, and the
   * connection is dropped so the next call starts afresh.
   */
  async run<T>(what: string, command: (commands: Commands) => Promise<T>): Promise<T> {
    this.check(what)
    const open = this.current && !this.current.retired ? this.current : await this.client()
    const ms = this.context.timeoutMs
    // One watchdog per connection instead of a timer per command (it costs a third of a small
    // command's time): it drops the connection when the oldest run is older than timeoutMs, which
    // fails every run on it at once.
    const id = this.nextRun++
    this.pending.set(id, performance.now())
    this.armWatchdog()
    try {
      return await command(open.commands)
    } catch (error) {
      // The server's refusals, and what the command's own code made of them, are not transport failures.
      if (isReplyError(error) || error instanceof TsflowError) throw error
      this.retire(open, (error as Error).message)
      if (this.context.destroyed) throw new DDictDestroyed(this.context.dict, what)
      if (this.lost !== undefined) throw this.unreachable(`${what}: the server was lost (${this.lost})`)
      if (open.timedOut) throw this.unreachable(`${what}: no answer within ${ms} ms (timeoutMs)`)
      throw this.unreachable(`${what}: ${(error as Error).message}`, error)
    } finally {
      this.pending.delete(id)
      // Idle now: the watchdog must not hold the process until its next tick.
      if (this.pending.size === 0) this.watchdog?.unref()
    }
  }

  private armWatchdog(): void {
    this.idleTicks = 0
    if (this.watchdog) {
      if (this.pending.size === 1) this.watchdog.ref()
      return
    }
    const ms = this.context.timeoutMs
    const period = Math.max(5, Math.min(1000, Math.floor(ms / 10)))
    this.watchdog = setInterval(() => {
      const oldest = this.pending.values().next()
      if (oldest.done) {
        // Idle: an unref'd watchdog keeps no process alive; a few idle ticks end it.
        this.watchdog!.unref()
        if (++this.idleTicks > 3) {
          clearInterval(this.watchdog)
          this.watchdog = undefined
        }
        return
      }
      if (performance.now() - oldest.value < ms) return
      const open = this.current
      if (open) {
        open.timedOut = true
        this.retire(open, 'timed out')
      }
      // Runs still waiting for a connection end with the connect's own bound.
      this.pending.clear()
    }, period)
  }

  /** The open client itself (the subscriber's SUBSCRIBE needs it), connected now if needed. */
  async raw(what: string): Promise<Client> {
    this.check(what)
    return (await this.client()).client
  }

  get isOpen(): boolean {
    return this.current !== undefined && !this.current.retired
  }

  /** Disconnects; later use fails (detach) unless `reopenable`. */
  async close(): Promise<void> {
    this.closed = true
    const open = this.current ?? (await this.connecting?.catch(() => undefined))
    this.current = undefined
    if (!open || open.retired) return
    open.retired = true
    if (!open.client.isOpen) return
    await bounded(open.client.close(), Math.min(this.context.timeoutMs, 5000), () => {}).catch(() => {})
    if (open.client.isOpen) open.client.destroy('closed (detach)')
  }
}
