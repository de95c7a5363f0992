import { ConfigError, EndpointStopped } from '../../errors.js'
import { ensureClientKeys } from '../../endpoint/keys.js'
import type { EndpointStatus } from '../../protocol/endpoint.js'
import type { ResultEnvelope } from '../../protocol/messages.js'
import { fromResultTuple } from '../../protocol/task.js'
import { decode } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { deferred, type Deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import { EndpointLink, type Failure } from './link.js'
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
  private waiter: Deferred<void> | undefined
  private lostError: Error | undefined

  private constructor(
    readonly session: string,
    private link: EndpointLink,
  ) {}

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
        welcomed: (welcome) => {
          if (!client) return
          // After a reconnect: what the endpoint still holds is outstanding, the rest is resent.
          client.retainedLeft = welcome.retained
          for (const id of welcome.outstanding) client.pending.add(id)
        },
        results: (results) => client?.results(results),
        failed: (failures) => client?.failed(failures),
        dispatched: () => {},
        stopping: (reason) => client?.lost(new EndpointStopped(link.target?.name ?? resolved.endpoint, `stopping (${reason}); the session's outstanding tasks failed`)),
        unreachable: (error) => client?.lost(error),
      },
    )
    const welcome = await link.open()
    client = new EndpointClient(session, link)
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

  private done(): boolean {
    return (this.pending.size === 0 && this.retainedLeft <= 0) || this.lostError !== undefined
  }

  private settle(): void {
    if (this.done()) this.waiter?.resolve()
  }

  private results(results: ResultEnvelope[]): void {
    for (const envelope of results) {
      this.link.ack(envelope.id, envelope.try)
      if (!this.first(envelope.id, envelope.try)) continue
      this.take(envelope.id)
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
      if (!this.first(failure.id, failure.try)) continue
      this.take(failure.id)
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

  /** One result arrived: an outstanding task finished, or a retained result was resent. */
  private take(id: number): void {
    if (this.pending.delete(id)) return
    this.retainedLeft--
  }

  private lost(error: Error): void {
    this.lostError = error
    this.pending.clear()
    this.settle()
  }
}
