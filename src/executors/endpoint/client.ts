import { ConfigError, EndpointStopped } from '../../errors.js'
import { ensureClientKeys } from '../../endpoint/keys.js'
import type { EndpointStatus } from '../../protocol/endpoint.js'
import type { ResultEnvelope } from '../../protocol/messages.js'
import { fromResultTuple } from '../../protocol/task.js'
import { decode } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { deferred, type Deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import { EndpointLink, type Failure, type Welcome } from './link.js'
import { resolveEndpointOptions, resolveTarget } from './options.js'

export interface EndpointClientOptions {
  /** the endpoint's name or address tcp://host:port */
  endpoint: string
  /** the session to join: the one an earlier process's EndpointExecutor named */
  session: string
  /** the endpoint's public key (required with an address) */
  serverKey?: string
  /** TSFLOW_HOME */
  home?: string
  helloTimeoutMs?: number
  reconnectTimeoutMs?: number
  logger?: Logger
}

/** One task's outcome as collected: the session's id and try, and its value or decoded error. */
export interface CollectedResult {
  id: number
  try: number
  ok: boolean
  value?: unknown
  error?: Error
}

/**
 * A session-level client: joins a named session (resuming it) and collects the results of tasks
 * an earlier process submitted under it, the ones already finished (kept by the endpoint until
 * acknowledged) and the ones still outstanding as they finish.
 */
export class EndpointClient {
  private readonly pending = new Set<number>()
  /** (id, try) of every outcome collected: one resent after a resume is acknowledged again, not returned twice */
  private readonly seen = new Set<string>()
  private collected: CollectedResult[] = []
  private retainedLeft = 0
  /** waited for before a reconnect, not listed by the endpoint after it: resent as retained, or lost */
  private readonly missing = new Set<number>()
  private endpointName: string
  private waiter: Deferred<void> | undefined
  private lostError: Error | undefined

  private constructor(
    readonly session: string,
    private link: EndpointLink,
    endpoint: string,
  ) {
    this.endpointName = endpoint
  }

  /** Connects and resumes `session`; throws EndpointNotFound, EndpointUnreachable or EndpointRefused. */
  static async connect(options: EndpointClientOptions): Promise<EndpointClient> {
    const { logger, session, ...rest } = options ?? ({} as EndpointClientOptions)
    if (typeof session !== 'string' || !session) throw new ConfigError('session', 'is required: the session named by the process that submitted the tasks')
    const resolved = resolveEndpointOptions({ ...rest, session }, 'EndpointClient.connect()')
    const keys = ensureClientKeys(resolved.home)
    let client: EndpointClient | undefined
    const link = new EndpointLink(
      {
        target: () => resolveTarget(resolved),
        keys,
        session,
        resumeFirst: true,
        helloTimeoutMs: resolved.helloTimeoutMs,
        reconnectTimeoutMs: resolved.reconnectTimeoutMs,
        heartbeatPeriodMs: resolved.heartbeatPeriodMs,
        logger,
      },
      {
        busy: () => client === undefined || client.pending.size > 0 || client.retainedLeft > 0,
        welcomed: (welcome) => client?.resumed(welcome),
        results: (results) => client?.results(results),
        failed: (failures) => client?.failed(failures),
        dispatched: () => {},
        stopping: (reason) => client?.lost(new EndpointStopped(link.target?.name ?? resolved.endpoint, `stopping (${reason}); the session's outstanding tasks failed`)),
        unreachable: (error) => client?.lost(error),
      },
    )
    const welcome = await link.open()
    client = new EndpointClient(session, link, welcome.endpoint)
    client.retainedLeft = welcome.retained
    for (const id of welcome.outstanding) client.pending.add(id)
    return client
  }

  /** The session's tasks not finished yet (as of the welcome, less those collected since). */
  get outstanding(): number[] {
    return [...this.pending]
  }

  /**
   * Every result of the session not acknowledged yet, and those of outstanding tasks as they
   * finish; resolves once none is outstanding, or after `timeoutMs` with what arrived (see
   * `outstanding` for the rest). Each result is acknowledged, so the endpoint forgets it, and
   * returned once. Rejects if the endpoint stops or stays unreachable past reconnectTimeoutMs.
   */
  async collect(options: { timeoutMs?: number } = {}): Promise<CollectedResult[]> {
    const timeoutMs = options.timeoutMs ?? Infinity
    if (!this.done()) {
      this.waiter = deferred<void>()
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => this.waiter?.resolve(), timeoutMs) : undefined
      try {
        await this.waiter.promise
      } finally {
        clearTimeout(timer)
        this.waiter = undefined
      }
    }
    const out = this.collected
    this.collected = []
    if (out.length === 0 && this.lostError) throw this.lostError
    return out
  }

  status(timeoutMs?: number): Promise<EndpointStatus> {
    return this.link.status(timeoutMs)
  }

  /** Leaves; with `forget` the endpoint cancels the session's queued tasks and drops its retained results. */
  async close(options: { forget?: boolean } = {}): Promise<void> {
    await this.link.close(options.forget ?? false)
  }

  /**
   * After a reconnect: what the endpoint lists is outstanding, and `retained` results follow.
   * A task waited for that it neither lists nor resends is gone from it (it restarted, or
   * dropped the result past resultTtlMs): reported failed once the resent results are in.
   */
  private resumed(welcome: Welcome): void {
    const outstanding = new Set(welcome.outstanding)
    for (const id of this.pending) if (!outstanding.has(id)) this.missing.add(id)
    this.pending.clear()
    for (const id of outstanding) {
      this.pending.add(id)
      this.missing.delete(id)
    }
    this.retainedLeft = welcome.retained
    this.endpointName = welcome.endpoint
    this.settle()
  }

  private reportMissing(): void {
    if (this.retainedLeft > 0 || this.missing.size === 0) return
    for (const id of this.missing) {
      const error = new EndpointStopped(
        this.endpointName,
        `no longer holds task #${id} of session ${this.session} (it was restarted, or the result was dropped after resultTtlMs): the task's outcome is lost; submit it again`,
      )
      this.collected.push({ id, try: 0, ok: false, error })
    }
    this.missing.clear()
  }

  private done(): boolean {
    return (this.pending.size === 0 && this.retainedLeft <= 0) || this.lostError !== undefined
  }

  private settle(): void {
    this.reportMissing()
    if (this.done()) this.waiter?.resolve()
  }

  private results(results: ResultEnvelope[]): void {
    for (const envelope of results) {
      this.link.ack(envelope.id, envelope.try)
      this.take(envelope.id)
      if (!this.first(envelope.id, envelope.try)) continue
      try {
        const result = fromResultTuple(decode(envelope.payload))
        this.collected.push(
          result.ok ? { id: envelope.id, try: envelope.try, ok: true, value: result.value } : { id: envelope.id, try: envelope.try, ok: false, error: decodeError(result.error!) },
        )
      } catch (error) {
        this.collected.push({ id: envelope.id, try: envelope.try, ok: false, error: error as Error })
      }
    }
    this.settle()
  }

  private failed(failures: Failure[]): void {
    for (const failure of failures) {
      this.link.ack(failure.id, failure.try)
      this.take(failure.id)
      if (!this.first(failure.id, failure.try)) continue
      let error: Error
      try {
        error = decodeError(failure.error)
      } catch (decodeFailure) {
        error = new Error(`task ${failure.id} failed with an error that could not be decoded: ${(decodeFailure as Error).message}`)
      }
      this.collected.push({ id: failure.id, try: failure.try, ok: false, error })
    }
    this.settle()
  }

  private first(id: number, tryNumber: number): boolean {
    const key = `${id}:${tryNumber}`
    if (this.seen.has(key)) return false
    this.seen.add(key)
    return true
  }

  /**
   * One outcome arrived: an outstanding task finished, or a retained outcome was resent (counted
   * even when seen before: its ack was lost with the connection, and collect waits for the count).
   */
  private take(id: number): void {
    if (this.pending.delete(id)) return
    this.missing.delete(id)
    this.retainedLeft--
  }

  private lost(error: Error): void {
    this.lostError = error
    this.pending.clear()
    this.settle()
  }
}
