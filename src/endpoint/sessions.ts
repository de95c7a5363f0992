/**
 * The bookkeeping of an endpoint's client sessions, free of sockets and timers (the front,
 * front.ts, feeds it messages and sends what it emits). A session is named by its client in
 * `ep_hello`; its task and function ids are its own, mapped here to the interchange's ids and
 * back. Each finished task's result (or failure) is retained until the client acknowledges it,
 * its time to live passes, or the session's byte cap pushes it out, so a client that comes back
 * (`ep_hello` with `resume`) is sent everything it has not acknowledged.
 *
 * Payloads are never decoded: envelopes are re-labelled in place and passed on.
 */
import { EndpointStopped, ProtocolError, TaskCancelled } from '../errors.js'
import type { EndpointStatus, EndpointToClient } from '../protocol/endpoint.js'
import type { DispatchNotice, FunctionEntry, ResultEnvelope, TaskEnvelope } from '../protocol/messages.js'
import { splitBatch } from '../protocol/split.js'
import { encodeError, type EncodedError } from '../serialize/errors.js'
import { silentLogger, type Logger } from '../util/logger.js'

export type Failure = { id: number; try: number; error: EncodedError }

/** A failure's share of a session's byte cap (its encoded error is not measured). */
const FAILURE_BYTES = 512

interface TaskRef {
  session: Session
  /** the session's id of the task */
  sid: number
  try: number
}

interface Retained {
  result: ResultEnvelope | undefined
  failure: Failure | undefined
  /** when it finished (the TTL counts from here) */
  at: number
  bytes: number
}

export class Session {
  /** the client's label for logs (host, pid), from its latest hello */
  client = ''
  /**
   * The routing key (latin1 routing id) of its latest connection, until the client leaves (`bye`)
   * or another connection takes the session over. Results go there even while the client is
   * silent: a busy client may answer late, and a dead connection's messages are dropped by the
   * socket (they stay retained for a resume).
   */
  routingKey: string | undefined
  lastSeen: number
  /** silent past the threshold (logged once; shown as not connected) */
  silent = false
  /** session task id -> interchange id of its current try */
  readonly outstanding = new Map<number, number>()
  /** session function id -> interchange function id */
  readonly fns = new Map<number, number>()
  /** finished and unacknowledged, oldest first */
  readonly retained = new Map<number, Retained>()
  retainedBytes = 0
  // what this turn routed to the session, sent by `flushOut`
  outResults: ResultEnvelope[] = []
  outFailures: Failure[] = []
  outDispatched: DispatchNotice | undefined
  queuedForFlush = false

  constructor(
    readonly name: string,
    now: number,
  ) {
    this.lastSeen = now
  }

  get connected(): boolean {
    return this.routingKey !== undefined && !this.silent
  }

  /** whether outcomes are sent to its connection as they come */
  get reachable(): boolean {
    return this.routingKey !== undefined
  }
}

export interface SessionsOptions {
  /** the endpoint's name, for errors and log lines */
  endpoint: string
  resultTtlMs: number
  maxRetainedBytesPerSession: number
  sessionIdleMs: number
  /** a connected client silent this long is taken as gone (its results are kept), ms */
  clientThresholdMs: number
  logger?: Logger
  clock?: () => number
}

/** What the sessions emit: a message for a connected session. */
export type SessionOutput = (session: Session, message: EndpointToClient) => void

export class Sessions {
  readonly byName = new Map<string, Session>()
  readonly byRoutingKey = new Map<string, Session>()
  /** interchange task id -> its owner */
  private readonly owners = new Map<number, TaskRef>()
  /** function descriptors by content -> interchange function id: sessions running the same function share it */
  private readonly fnIds = new Map<string, number>()
  private nextTaskId = 1
  private nextFnId = 1
  /** sessions with output routed this turn */
  private touched: Session[] = []
  private readonly log: Logger
  private readonly clock: () => number
  readonly totals = { tasksReceived: 0, resultsSent: 0, failures: 0 }

  constructor(
    private readonly options: SessionsOptions,
    private readonly out: SessionOutput,
  ) {
    this.log = options.logger ?? silentLogger
    this.clock = options.clock ?? Date.now
  }

  /** Tasks the interchange holds for sessions (queued or running). */
  get outstandingTasks(): number {
    return this.owners.size
  }

  // ---- client messages

  /**
   * A hello on the connection `routingKey`. Returns the session, or a reason to refuse. A new
   * name makes a session; an existing one is taken over with `resume` (or when it holds nothing),
   * its unacknowledged results sent again after the welcome (the caller sends the welcome first:
   * see `welcome`).
   */
  hello(routingKey: string, name: string, client: string, resume: boolean): Session | { refused: string } {
    const now = this.clock()
    let session = this.byName.get(name)
    if (session && session.routingKey !== routingKey && !resume && (session.outstanding.size > 0 || session.retained.size > 0)) {
      return {
        refused:
          `session ${name} exists (${session.outstanding.size} tasks outstanding, ${session.retained.size} results retained${session.connected ? `, connected from ${session.client}` : ''}); ` +
          `say ep_hello with resume: true to take it over, or choose another session name`,
      }
    }
    const resumed = session !== undefined
    if (!session) this.byName.set(name, (session = new Session(name, now)))
    // The same connection may hold one session only; a connection replaced by another is unbound.
    const previous = this.byRoutingKey.get(routingKey)
    if (previous && previous !== session) this.unbind(previous)
    if (session.routingKey !== undefined && session.routingKey !== routingKey) this.unbind(session)
    session.routingKey = routingKey
    session.client = client
    session.lastSeen = now
    session.silent = false
    this.byRoutingKey.set(routingKey, session)
    this.log.info(
      `session ${name}: client ${client} ${resumed ? `resumed it (${session.outstanding.size} tasks outstanding, ${session.retained.size} results retained)` : 'opened it'}`,
    )
    return session
  }

  /** The welcome of `session`, then everything it has not acknowledged, sent again. */
  welcome(session: Session, base: Omit<Extract<EndpointToClient, { t: 'ep_welcome' }>, 'session' | 'outstanding' | 'retained'>): void {
    this.out(session, { ...base, session: session.name, outstanding: [...session.outstanding.keys()], retained: session.retained.size })
    if (session.retained.size === 0) return
    const results: ResultEnvelope[] = []
    const failures: Failure[] = []
    for (const entry of session.retained.values()) {
      if (entry.result) results.push(entry.result)
      else if (entry.failure) failures.push(entry.failure)
    }
    for (const part of splitBatch(results, (result) => result.payload.byteLength)) this.out(session, { t: 'results', results: part })
    if (failures.length > 0) this.out(session, { t: 'failed', failures })
  }

  /** Any message from a session's connection: it is alive. */
  seen(session: Session): void {
    session.lastSeen = this.clock()
    if (session.silent) {
      session.silent = false
      this.log.info(`session ${session.name}: client ${session.client} is heard from again`)
    }
  }

  /**
   * A `submit`: re-labels the tasks and function entries in place with interchange ids and
   * returns what the interchange should get (undefined if nothing). Tasks naming a function the
   * session never sent fail (routed to the session).
   */
  submit(session: Session, tasks: TaskEnvelope[], fns: FunctionEntry[] | undefined): { tasks: TaskEnvelope[]; fns?: FunctionEntry[] } | undefined {
    let newFns: FunctionEntry[] | undefined
    if (fns) {
      for (const entry of fns) {
        const bytes = entry[1]
        const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
        let id = this.fnIds.get(key)
        if (id === undefined) {
          id = this.nextFnId++
          this.fnIds.set(key, id)
          // A copy: the received bytes may be a view into the whole message.
          ;(newFns ??= []).push([id, new Uint8Array(bytes)])
        }
        session.fns.set(entry[0], id)
      }
    }
    let kept = 0
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[i]!
      const sid = task.id
      const f = session.fns.get(task.f)
      if (f === undefined) {
        const error = new ProtocolError(`task #${sid} of session ${session.name} names function ${task.f}, which the session never sent`)
        this.finish(session, undefined, { id: sid, try: task.try, error: encodeError(error) })
        continue
      }
      // A new try of a task whose earlier try finished unacknowledged: the old outcome is stale.
      const stale = session.retained.get(sid)
      if (stale) this.dropRetained(session, sid, stale)
      const id = this.nextTaskId++
      this.owners.set(id, { session, sid, try: task.try })
      session.outstanding.set(sid, id)
      task.id = id
      task.f = f
      tasks[kept++] = task
    }
    tasks.length = kept
    this.totals.tasksReceived += kept
    this.flushOut()
    if (kept === 0 && !newFns) return undefined
    return newFns ? { tasks, fns: newFns } : { tasks }
  }

  /**
   * A `cancel`: tasks still queued are removed (`removeQueued` takes them out of the interchange's
   * queue) and fail with TaskCancelled naming the session's id; the interchange ids of the others
   * are returned, for the interchange to forward to their managers.
   */
  cancel(session: Session, sids: readonly number[], removeQueued: (id: number) => boolean): number[] {
    const forward: number[] = []
    for (const sid of sids) {
      const id = session.outstanding.get(sid)
      if (id === undefined) continue
      if (removeQueued(id)) {
        const ref = this.owners.get(id)!
        this.owners.delete(id)
        session.outstanding.delete(sid)
        const error = new TaskCancelled(sid, 'app name unknown to the endpoint', `cancelled while queued in endpoint ${this.options.endpoint}`)
        this.finish(session, undefined, { id: sid, try: ref.try, error: encodeError(error) })
      } else {
        forward.push(id)
      }
    }
    this.flushOut()
    return forward
  }

  /** An `ack`: the client has these outcomes; they are forgotten. */
  ack(session: Session, ids: readonly number[], tries: readonly number[]): void {
    for (let i = 0; i < ids.length; i++) {
      const entry = session.retained.get(ids[i]!)
      if (!entry) continue
      const tryNumber = entry.result?.try ?? entry.failure!.try
      if (tries[i] === undefined || tries[i]! >= tryNumber) this.dropRetained(session, ids[i]!, entry)
    }
  }

  /**
   * A `bye`: the connection leaves. With `forget` the session goes too: its retained outcomes are
   * dropped and its outstanding tasks' interchange ids returned, to be cancelled.
   */
  bye(session: Session, forget: boolean): number[] {
    this.unbind(session)
    if (!forget) {
      this.log.info(`session ${session.name}: client ${session.client} left; ${session.outstanding.size} tasks outstanding, results kept`)
      return []
    }
    const ids = [...session.outstanding.values()]
    for (const id of ids) this.owners.delete(id)
    this.byName.delete(session.name)
    this.log.info(`session ${session.name}: client ${session.client} left for good; ${ids.length} outstanding tasks cancelled, ${session.retained.size} retained results dropped`)
    return ids
  }

  // ---- interchange output

  /** Results from the interchange: each goes to its session (retained until acked). */
  results(results: readonly ResultEnvelope[], dispatched?: DispatchNotice): void {
    if (dispatched) this.dispatched(dispatched, false)
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!
      const ref = this.settle(result.id)
      if (!ref) {
        if (this.log.enabled('debug')) this.log.debug(`result of interchange task ${result.id} has no session (forgotten or stopped); dropped`)
        continue
      }
      result.id = ref.sid
      this.finish(ref.session, result, undefined)
    }
    this.flushOut()
  }

  /** Failures from the interchange (manager lost, cancelled, ...). */
  failed(failures: readonly Failure[]): void {
    for (const failure of failures) {
      const ref = this.settle(failure.id)
      if (!ref) continue
      failure.id = ref.sid
      this.finish(ref.session, undefined, failure)
    }
    this.flushOut()
  }

  /** The session task interchange task `id` stands for, no longer outstanding (undefined: no session holds it). */
  private settle(id: number): TaskRef | undefined {
    const ref = this.owners.get(id)
    if (!ref) return undefined
    this.owners.delete(id)
    if (ref.session.outstanding.get(ref.sid) === id) ref.session.outstanding.delete(ref.sid)
    return ref
  }

  /** Tasks handed to managers: each session hears of its own (with its next results, or alone). */
  dispatched(notice: DispatchNotice, flush = true): void {
    for (let i = 0; i < notice.ids.length; i++) {
      const ref = this.owners.get(notice.ids[i]!)
      if (!ref || !ref.session.reachable) continue
      const session = ref.session
      const out = (session.outDispatched ??= { ids: [], tries: [] })
      out.ids.push(ref.sid)
      out.tries.push(ref.try)
      this.touch(session)
    }
    if (flush) this.flushOut()
  }

  /**
   * Every outstanding task of every session fails with the error `make` gives (the endpoint
   * stops; no block can start): sent to connected sessions, retained for the others. Returns the
   * interchange ids, for the caller to take out of the interchange.
   */
  failAll(make: (sid: number, session: Session, id: number) => Error): number[] {
    const ids: number[] = []
    for (const [id, ref] of this.owners) {
      ref.session.outstanding.delete(ref.sid)
      this.finish(ref.session, undefined, { id: ref.sid, try: ref.try, error: encodeError(make(ref.sid, ref.session, id)) })
      ids.push(id)
    }
    this.owners.clear()
    this.flushOut()
    return ids
  }

  /** The endpoint stops: every outstanding task fails with EndpointStopped naming the endpoint, the task and whether it was queued or running. */
  stopAll(reason: string, where: (id: number) => 'queued' | 'running'): number[] {
    return this.failAll(
      (sid, session, id) =>
        new EndpointStopped(
          this.options.endpoint,
          `task #${sid} of session ${session.name} was ${where(id)} when the endpoint stopped (${reason}); submit it again once the endpoint runs`,
        ),
    )
  }

  // ---- time

  /** Expires retained outcomes past their TTL, connections silent past the threshold, idle sessions. */
  sweep(now = this.clock()): void {
    const ttl = this.options.resultTtlMs
    for (const session of this.byName.values()) {
      let expired = 0
      for (const [sid, entry] of session.retained) {
        if (now - entry.at < ttl) break // oldest first: the rest are younger
        this.dropRetained(session, sid, entry)
        expired++
      }
      if (expired > 0) {
        this.log.warn(`session ${session.name}: ${expired} results unacknowledged for ${Math.round(ttl / 1000)} s (resultTtlMs) dropped`)
      }
      if (session.connected && now - session.lastSeen > this.options.clientThresholdMs) {
        session.silent = true
        this.log.warn(
          `session ${session.name}: client ${session.client} silent for ${Math.round(now - session.lastSeen)} ms ` +
            `(threshold ${this.options.clientThresholdMs} ms); its results are kept for a resume`,
        )
      }
      if (!session.connected && session.outstanding.size === 0 && session.retained.size === 0 && now - session.lastSeen > this.options.sessionIdleMs) {
        this.unbind(session)
        this.byName.delete(session.name)
        this.log.info(`session ${session.name}: idle and empty for ${Math.round((now - session.lastSeen) / 1000)} s; forgotten`)
      }
    }
  }

  /** Connected sessions, for heartbeats. */
  *connected(): Iterable<Session> {
    for (const session of this.byRoutingKey.values()) yield session
  }

  status(): EndpointStatus['sessions'] {
    return [...this.byName.values()].map((session) => ({
      session: session.name,
      client: session.client,
      connected: session.connected,
      outstanding: session.outstanding.size,
      retained: session.retained.size,
      lastSeen: session.lastSeen,
    }))
  }

  // ---- inside

  /** A finished task: retained until acked (within the cap), and routed to the session if connected. */
  private finish(session: Session, result: ResultEnvelope | undefined, failure: Failure | undefined): void {
    const sid = result ? result.id : failure!.id
    const bytes = result ? result.payload.byteLength : FAILURE_BYTES
    const old = session.retained.get(sid)
    if (old) this.dropRetained(session, sid, old)
    session.retained.set(sid, { result, failure, at: this.clock(), bytes })
    session.retainedBytes += bytes
    if (session.retainedBytes > this.options.maxRetainedBytesPerSession) this.trim(session)
    if (result) this.totals.resultsSent++
    else this.totals.failures++
    if (!session.reachable) return
    if (result) session.outResults.push(result)
    else session.outFailures.push(failure!)
    this.touch(session)
  }

  private trim(session: Session): void {
    const cap = this.options.maxRetainedBytesPerSession
    let dropped = 0
    let first: number | undefined
    let last: number | undefined
    for (const [sid, entry] of session.retained) {
      if (session.retainedBytes <= cap || session.retained.size === 1) break
      this.dropRetained(session, sid, entry)
      first ??= sid
      last = sid
      dropped++
    }
    if (dropped > 0) {
      this.log.warn(
        `session ${session.name}: ${dropped} unacknowledged results dropped (oldest first, tasks #${first}..#${last}): ` +
          `over maxRetainedBytesPerSession (${cap} bytes); a client that resumes will not get them`,
      )
    }
  }

  private dropRetained(session: Session, sid: number, entry: Retained): void {
    session.retained.delete(sid)
    session.retainedBytes -= entry.bytes
  }

  private touch(session: Session): void {
    if (session.queuedForFlush) return
    session.queuedForFlush = true
    this.touched.push(session)
  }

  /** Sends each touched session what was routed to it, one message per kind. */
  private flushOut(): void {
    if (this.touched.length === 0) return
    const touched = this.touched
    this.touched = []
    for (const session of touched) {
      session.queuedForFlush = false
      const results = session.outResults
      const failures = session.outFailures
      const dispatched = session.outDispatched
      session.outDispatched = undefined
      if (!session.reachable) {
        if (results.length > 0) session.outResults = []
        if (failures.length > 0) session.outFailures = []
        continue
      }
      if (results.length > 0) {
        session.outResults = []
        let first = true
        for (const part of splitBatch(results, (result) => result.payload.byteLength)) {
          this.out(session, first && dispatched ? { t: 'results', results: part, dispatched } : { t: 'results', results: part })
          first = false
        }
      } else if (dispatched) {
        this.out(session, { t: 'dispatched', ids: dispatched.ids, tries: dispatched.tries })
      }
      if (failures.length > 0) {
        session.outFailures = []
        this.out(session, { t: 'failed', failures })
      }
    }
  }

  private unbind(session: Session): void {
    if (session.routingKey !== undefined && this.byRoutingKey.get(session.routingKey) === session) this.byRoutingKey.delete(session.routingKey)
    session.routingKey = undefined
  }
}
