/**
 * Everything a DDict process holds for one shard: the connection to its primary (every write,
 * and reads while the dictionary is not frozen), connections to its replicas (reads of a frozen
 * dictionary), and a subscriber for keyspace notifications (waitFor). Maps the server's refusals
 * to the DDict errors: OOM (noeviction at maxmemory) -> DDictFull with the shard's used and limit
 * bytes, our scripts' frozen reply -> DDictFrozen.
 */
import type { DDictShardInfo } from '../protocol/ddict.js'
import { DDictFrozen, DDictFull, DDictTimeout } from '../errors.js'
import { Connection, hostPort, isReplyError, type Commands, type LinkContext } from './connection.js'
import { FROZEN_REPLY } from './scripts.js'
import { isLocalHost } from './local.js'

/** How a waiter is told about its key: an event on it, or the subscriber's loss (with the cause). */
type Wake = (lost?: string) => void

const POLL_FIRST_MS = 5
const POLL_MAX_MS = 250

/**
 * Connections to a shard's primary per process. A key always uses the same one (its lane), so
 * the operations on one key keep their order; several lanes let the server send several large
 * replies at once (it writes at most 64 KB to one connection per turn of its event loop: one
 * connection capped 4 MB reads at about half of what four reach).
 */
export const LANES = 4

export class ShardLink {
  /** lane 0: also scans, admin commands, the frozen flag */
  readonly primary: Connection
  readonly lanes: Connection[]
  readonly replicas: Connection[]
  readonly address: string
  private subscriber: Connection | undefined
  private readonly channels = new Map<string, Set<Wake>>()
  /** false: the server sends no keyspace notifications (an existing deployment that refused CONFIG SET): waits poll */
  notifications = true

  constructor(
    readonly context: LinkContext,
    readonly info: DDictShardInfo,
  ) {
    this.lanes = Array.from({ length: LANES }, () => new Connection(context, info.index, info))
    this.primary = this.lanes[0]!
    this.address = hostPort(info)
    // A replica on this node first: a frozen dictionary's reads then stay on the node.
    const replicas = [...info.replicas].sort((a, b) => Number(isLocalHost(b.host)) - Number(isLocalHost(a.host)))
    this.replicas = replicas.map((replica) => new Connection(context, info.index, replica))
  }

  /** A primary command (or several sent together), with the server's refusals as DDict errors. */
  async call<T>(what: string, key: string, command: (commands: Commands) => Promise<T>, lane = 0): Promise<T> {
    try {
      return await this.lanes[lane]!.run(what, command)
    } catch (error) {
      throw await this.refusal(error, key, what)
    }
  }

  /** A read that may go to a replica (frozen dictionaries): the first replica that answers, else the primary. */
  async read<T>(what: string, key: string, fromReplica: boolean, command: (commands: Commands) => Promise<T>, lane = 0): Promise<T> {
    if (fromReplica) {
      for (const replica of this.replicas) {
        try {
          return await replica.run(what, command)
        } catch (error) {
          if (isReplyError(error) && !/LOADING|MASTERDOWN/.test((error as Error).message)) throw error
          // an unreachable or syncing replica: the next one, or the primary
        }
      }
    }
    return this.call(what, key, command, lane)
  }

  private async refusal(error: unknown, key: string, what: string): Promise<unknown> {
    if (!isReplyError(error)) return error
    const message = error.message
    if (message.startsWith(FROZEN_REPLY) || message.includes(FROZEN_REPLY)) return new DDictFrozen(this.context.dict, key, what)
    if (/^OOM|\bOOM command not allowed/.test(message)) {
      const { used, limit } = await this.memory().catch(() => ({ used: 0, limit: this.info.maxmemory }))
      return new DDictFull(this.context.dict, key, this.info.index, this.address, used, limit, { cause: error })
    }
    return error
  }

  /** used_memory and maxmemory from INFO memory. */
  async memory(): Promise<{ used: number; limit: number; keys?: number }> {
    const text = String(await this.primary.run('INFO memory', (c) => c.sendCommand(['INFO', 'memory'])))
    const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? 0)
    return { used: field('used_memory'), limit: field('maxmemory') }
  }

  // ---- waits on keyspace notifications

  private async subscribe(channel: string, wake: Wake): Promise<void> {
    let set = this.channels.get(channel)
    if (set) {
      set.add(wake)
      return
    }
    set = new Set([wake])
    this.channels.set(channel, set)
    if (!this.subscriber) {
      const subscriber = new Connection(this.context, this.info.index, this.info)
      subscriber.onLost = (cause) => {
        // Every waiter re-checks (and sees the shard's state through its own read).
        if (this.subscriber === subscriber) this.subscriber = undefined
        const waiting = [...this.channels.values()].flatMap((s) => [...s])
        this.channels.clear()
        for (const w of waiting) w(cause)
      }
      this.subscriber = subscriber
    }
    const subscriber = this.subscriber
    try {
      const client = await subscriber.raw('subscribe')
      await subscriber.run('subscribe', () => client.subscribe(channel, () => this.channels.get(channel)?.forEach((w) => w())))
    } catch (error) {
      set.delete(wake)
      if (set.size === 0) this.channels.delete(channel)
      throw error
    }
  }

  private unsubscribe(channel: string, wake: Wake): void {
    const set = this.channels.get(channel)
    if (!set) return
    set.delete(wake)
    if (set.size > 0) return
    this.channels.delete(channel)
    const subscriber = this.subscriber
    subscriber
      ?.raw('unsubscribe')
      .then((client) => (client.isOpen ? client.unsubscribe(channel) : undefined))
      .catch(() => {})
  }

  /**
   * Waits until `check` finds the value (not undefined): subscribes to the notifications of
   * `redisKey` first, then checks, so a write between the two is never missed; re-checks on
   * every event of the key. Without notifications, polls with backoff. DDictTimeout names the key.
   */
  async waitUntil<T>(redisKey: string, keyLabel: string, timeoutMs: number, what: string, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs
    let wake: Wake = () => {}
    let pending = false
    let lost: string | undefined
    const signal = () =>
      new Promise<void>((resolve) => {
        wake = (cause) => {
          if (cause !== undefined) lost = cause
          pending = true
          resolve()
        }
        if (pending) resolve()
      })
    const channel = `__keyspace@0__:${redisKey}`
    const subscribed = this.notifications
    let next = signal()
    const listener: Wake = (cause) => wake(cause)
    if (subscribed) await this.subscribe(channel, listener)
    let pollMs = POLL_FIRST_MS
    try {
      for (;;) {
        pending = false
        const found = await check()
        if (found !== undefined) return found
        if (lost !== undefined) {
          // The subscriber is gone: subscribe again (through a fresh connection) and re-check.
          lost = undefined
          next = signal()
          await this.subscribe(channel, listener)
          continue
        }
        const left = deadline - Date.now()
        if (left <= 0) throw new DDictTimeout(this.context.dict, keyLabel, timeoutMs, what)
        let timer: NodeJS.Timeout | undefined
        const delay = subscribed ? left : Math.min(left, pollMs)
        await Promise.race([next, new Promise<void>((resolve) => (timer = setTimeout(resolve, delay)))])
        clearTimeout(timer)
        pollMs = Math.min(POLL_MAX_MS, pollMs * 2)
        next = signal()
      }
    } finally {
      if (subscribed) this.unsubscribe(channel, listener)
    }
  }

  /**
   * A server of this shard was reported lost by its shard host: calls to it fail now instead of
   * waiting for a timeout. The report names the server (`the Redis server host:port`): the
   * primary, or one of the replicas (then frozen reads go to the others or the primary).
   */
  markLost(message: string): void {
    const address = /the Redis server (\S+)/.exec(message)?.[1]
    if (address === undefined || address === this.address) {
      for (const lane of this.lanes) lane.markLost(message)
      this.subscriber?.markLost(message)
      return
    }
    this.replicas.find((replica) => replica.label === address)?.markLost(message)
  }

  async close(): Promise<void> {
    await Promise.all([...this.lanes.map((l) => l.close()), ...this.replicas.map((r) => r.close()), this.subscriber?.close()])
    this.channels.clear()
  }
}
