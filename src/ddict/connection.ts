/**
 * One connection to one Redis server of a DDict (a shard's primary, one of its replicas, or the
 * shard's subscriber for `waitFor`), on node-redis loaded at first use (this module is reached from
 * runtime/execute.ts through the codec extension, where node-redis's ~100 ms load must not be
 * paid). Node-redis would reconnect forever and queue commands while offline; here a lost
 * connection is dropped (pending commands fail at once), the next command connects again, and
 * every connect and command is bounded by the dictionary's timeoutMs. So a killed or silent
 * server shows as DDictUnreachable naming the shard and its address within the bound, never a hang.
 * Sockets are unref'd: an idle connection does not keep a process or worker thread alive (a
 * pending command's timeout timer does, while it waits).
 */
import type { createClient } from 'redis'
import { DDictDestroyed, DDictUnreachable } from '../errors.js'

type Client = ReturnType<typeof createClient>

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
  let proto = error instanceof Error ? Object.getPrototypeOf(error) : null
  while (proto && proto !== Error.prototype) {
    if (proto.constructor?.name === 'ErrorReply') return true
    proto = Object.getPrototypeOf(proto)
  }
  return false
}

export class Connection {
  readonly label: string
  private current: Open | undefined
  private connecting: Promise<Open> | undefined
  private closed = false
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

  private check(what: string): void {
    if (this.context.destroyed) throw new DDictDestroyed(this.context.dict, what)
    if (this.closed) throw this.unreachable('its connection was closed (detach)')
  }

  /** The node-redis client, connected now if needed (bounded by timeoutMs). */
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
    const { createClient, RESP_TYPES } = await import('redis')
    const ms = this.context.timeoutMs
    const client: Client = createClient({
      socket: { host: this.address.host, port: this.address.port, connectTimeout: ms, reconnectStrategy: false },
      ...(this.context.password ? { password: this.context.password } : {}),
      disableOfflineQueue: true,
    })
    client.unref()
    const commands = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as Commands
    const open: Open = { client, commands, retired: false }
    client.on('error', (error: Error) => this.retire(open, error.message))
    client.on('end', () => this.retire(open, 'connection closed'))
    try {
      await bounded(client.connect(), ms, () => client.destroy())
    } catch (error) {
      this.retire(open, 'connect failed')
      if (error instanceof TimedOut) throw this.unreachable(`cannot connect: no answer within ${ms} ms (timeoutMs)`)
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
    const open = await this.client()
    const ms = this.context.timeoutMs
    try {
      return await bounded(command(open.commands), ms, () => this.retire(open, 'timed out'))
    } catch (error) {
      if (isReplyError(error)) throw error
      this.retire(open, (error as Error).message)
      if (this.context.destroyed) throw new DDictDestroyed(this.context.dict, what)
      if (error instanceof TimedOut) throw this.unreachable(`${what}: no answer within ${ms} ms (timeoutMs)`)
      throw this.unreachable(`${what}: ${(error as Error).message}`, error)
    }
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
    if (open.client.isOpen) open.client.destroy()
  }
}
