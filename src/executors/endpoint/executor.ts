import { nanoid } from 'nanoid'
import { EndpointStopped, ExecutorError, SerializationError, ShutdownError, TaskCancelled } from '../../errors.js'
import { ensureClientKeys } from '../../endpoint/keys.js'
import type { EndpointStatus } from '../../protocol/endpoint.js'
import type { FunctionEntry, ResultEnvelope, TaskEnvelope } from '../../protocol/messages.js'
import { splitBatch } from '../../protocol/split.js'
import { fromResultTuple } from '../../protocol/task.js'
import { decode } from '../../serialize/codec.js'
import { decodeError } from '../../serialize/errors.js'
import { settledWithin, deferred } from '../../util/deferred.js'
import type { Logger } from '../../util/logger.js'
import type { Executor, ExecutorHost, ExecutorTask, TaskOutcome } from '../base.js'
import { deliverOutcome } from '../report.js'
import { FunctionTable, encodeTaskEnvelope } from '../htex/encode.js'
import { EndpointLink, type Failure, type Welcome } from './link.js'
import { resolveEndpointOptions, resolveTarget, type EndpointExecutorOptions, type ResolvedEndpointOptions } from './options.js'

/** One task as the session knows it: its own id (one per try), the kernel's task, whether it left. */
interface SessionTask {
  sid: number
  task: ExecutorTask
  /** sent on the current connection (or an earlier one); unsent ones go with the next flush */
  sent: boolean
}

/**
 * An executor whose tasks run on a running endpoint (`npx tsflow endpoint start <name>`), by name
 * or address: tasks leave in batches per turn of the event loop, results come back as from HTEX.
 * Each try of a task gets its own session id; a lost endpoint is reconnected with `resume`, and
 * tasks it never received are sent again, so no task waits forever and none runs twice for one try.
 */
export class EndpointExecutor implements Executor {
  readonly type = 'endpoint'
  readonly label: string
  private readonly raw: EndpointExecutorOptions
  private options: ResolvedEndpointOptions | undefined
  private path: string
  private host: ExecutorHost | undefined
  private logger: Logger | undefined
  private link: EndpointLink | undefined
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new'
  /** the session's id of every task sent or about to be, by session id */
  private readonly bySid = new Map<number, SessionTask>()
  /** session id of each kernel task id (its current try) */
  private readonly sidOf = new Map<number, number>()
  private nextSid = 1
  /** the first session id of this process: ids in [sidBase, nextSid) are ours */
  private sidBase = 1
  private buffer: SessionTask[] = []
  private flushScheduled = false
  private readonly functions = new FunctionTable()
  /** every function entry sent, to send again after a reconnect (the endpoint may have restarted) */
  private readonly sentFunctions = new Map<number, Uint8Array>()
  private resendFunctions = new Set<number>()
  /** the session's name */
  session = ''

  constructor(options: EndpointExecutorOptions) {
    this.raw = options
    this.label = typeof options?.label === 'string' && options.label ? options.label : 'endpoint'
    this.path = this.label
  }

  validate(path: string): void {
    this.path = path
    this.options = resolveEndpointOptions(this.raw, path)
  }

  get outstanding(): number {
    return this.bySid.size
  }

  describe(): Record<string, unknown> {
    const o = this.options ?? resolveEndpointOptions(this.raw, this.label)
    return { type: this.type, label: this.label, endpoint: o.endpoint, session: this.session || o.session, address: this.link?.target?.address, maxBatchSize: o.maxBatchSize }
  }

  async start(host: ExecutorHost): Promise<void> {
    if (this.phase !== 'new') throw new ExecutorError(this.label, 'start() was called twice')
    if (!this.options) this.validate(this.label)
    const options = this.options!
    this.host = host
    this.logger = host.logger
    this.session = options.session ?? nanoid()
    const keys = ensureClientKeys(options.home)
    this.link = new EndpointLink(
      {
        target: () => resolveTarget(options),
        keys,
        session: this.session,
        resumeFirst: options.session !== undefined,
        helloTimeoutMs: options.helloTimeoutMs,
        reconnectTimeoutMs: options.reconnectTimeoutMs,
        heartbeatPeriodMs: options.heartbeatPeriodMs,
        logger: host.logger,
      },
      {
        busy: () => this.bySid.size > 0 || this.phase !== 'running',
        welcomed: (welcome, first) => this.welcomed(welcome, first),
        results: (results) => this.results(results),
        failed: (failures) => this.failed(failures),
        dispatched: (ids, tries) => this.dispatched(ids, tries),
        stopping: (reason) => this.failAll(new EndpointStopped(this.link?.target?.name ?? options.endpoint, `stopping (${reason}); its tasks were not run`)),
        unreachable: (error) => this.failAll(error),
      },
    )
    const welcome = await this.link.open()
    // A named session may hold tasks of an earlier process: ids above theirs never collide with them.
    // Time-based, so a finished task of that process (no longer listed) is not reused either.
    if (options.session !== undefined) this.nextSid = this.sidBase = Math.max(Date.now() * 1000, ...welcome.outstanding.map((id) => id + 1))
    this.phase = 'running'
    host.logger.info(`connected to endpoint ${this.link.target?.name} at ${this.link.target?.address}, session ${this.session}`)
  }

  submit(task: ExecutorTask): void {
    if (this.phase !== 'running') {
      this.host?.taskDone(task.id, task.try, { ok: false, error: new ShutdownError(`executor ${this.label} is not running; task #${task.id} was not sent`) })
      return
    }
    const entry: SessionTask = { sid: this.nextSid++, task, sent: false }
    const previous = this.sidOf.get(task.id)
    if (previous !== undefined) this.bySid.delete(previous)
    this.bySid.set(entry.sid, entry)
    this.sidOf.set(task.id, entry.sid)
    this.buffer.push(entry)
    this.link!.demand()
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // Tasks submitted in one turn of the event loop travel in one message.
      queueMicrotask(() => this.flush())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    if (!this.link?.connected) return // sent after the next welcome
    const entries = this.buffer
    this.buffer = []
    this.sendEntries(entries)
  }

  private sendEntries(entries: SessionTask[]): void {
    const envelopes: TaskEnvelope[] = []
    for (const entry of entries) {
      if (this.bySid.get(entry.sid) !== entry) continue // reported meanwhile
      try {
        const envelope = encodeTaskEnvelope(entry.task, this.functions.idOf(entry.task.fn))
        envelope.id = entry.sid // the session's id on the wire, not the kernel's
        envelopes.push(envelope)
      } catch (error) {
        const { task } = entry
        this.report(entry.sid, {
          ok: false,
          error: new SerializationError(`the arguments of task #${task.id} (${task.appName}) cannot be sent to endpoint ${this.options!.endpoint}: ${(error as Error).message}`, { cause: error }),
        })
        continue
      }
      entry.sent = true
    }
    for (const part of splitBatch(envelopes, (envelope) => envelope.payload.byteLength, this.options!.maxBatchSize)) {
      const fns = this.functionsFor(part)
      if (!this.link!.send(fns ? { t: 'submit', tasks: part, fns } : { t: 'submit', tasks: part })) {
        // Lost meanwhile: these go again after the welcome.
        for (const envelope of part) {
          const entry = this.bySid.get(envelope.id)
          if (entry) entry.sent = false
        }
      }
    }
  }

  /** Function entries `part` needs that this connection has not carried yet. */
  private functionsFor(part: TaskEnvelope[]): FunctionEntry[] | undefined {
    const fns = this.functions.takeUnsent(part) ?? []
    for (const [id, bytes] of fns) this.sentFunctions.set(id, bytes)
    if (this.resendFunctions.size > 0) {
      for (const envelope of part) {
        if (this.resendFunctions.delete(envelope.f)) fns.push([envelope.f, this.sentFunctions.get(envelope.f)!])
      }
    }
    return fns.length > 0 ? fns : undefined
  }

  /**
   * After a welcome: tasks the endpoint lists as outstanding are in its hands; those it does not,
   * sent earlier and not reported, were lost on the way or finished (their results are resent
   * first, `welcome.retained` of them): once those arrived, the rest go again.
   */
  private welcomed(welcome: Welcome, first: boolean): void {
    if (first) return
    this.resendFunctions = new Set(this.sentFunctions.keys())
    const outstanding = new Set(welcome.outstanding)
    const resend = () => {
      if (!this.link?.connected) return
      const lost = [...this.bySid.values()].filter((entry) => entry.sent && !outstanding.has(entry.sid))
      if (lost.length > 0) this.logger?.warn(`endpoint ${this.link.target?.name}: sending ${lost.length} tasks again that it did not have after the reconnect`)
      const waiting = this.buffer
      this.buffer = []
      this.sendEntries([...lost, ...waiting])
    }
    if (welcome.retained === 0) return resend()
    this.awaitRetained = { left: welcome.retained, then: resend }
    // Should some be dropped meanwhile (their time to live passed), do not wait for them forever.
    setTimeout(() => this.retainedArrived(Infinity), 2000).unref()
  }

  private awaitRetained: { left: number; then: () => void } | undefined

  private retainedArrived(count: number): void {
    const waiting = this.awaitRetained
    if (!waiting) return
    waiting.left -= count
    if (waiting.left > 0) return
    this.awaitRetained = undefined
    waiting.then()
  }

  private results(results: ResultEnvelope[]): void {
    for (const envelope of results) {
      if (!this.ours(envelope.id)) continue // an earlier process's (a named session): left for a collector
      this.link!.ack(envelope.id, envelope.try)
      if (this.bySid.get(envelope.id)?.task.try !== envelope.try) continue // resent after a resume: reported already
      let outcome: TaskOutcome
      try {
        const result = fromResultTuple(decode(envelope.payload))
        outcome = result.ok ? { ok: true, value: result.value } : { ok: false, error: decodeError(result.error!) }
      } catch (error) {
        outcome = { ok: false, error: error as Error }
      }
      this.report(envelope.id, outcome)
    }
    this.retainedArrived(results.length)
  }

  private failed(failures: Failure[]): void {
    for (const failure of failures) {
      if (!this.ours(failure.id)) continue
      this.link!.ack(failure.id, failure.try)
      if (this.bySid.get(failure.id)?.task.try !== failure.try) continue
      let error: Error
      try {
        error = decodeError(failure.error)
      } catch (decodeFailure) {
        error = new ExecutorError(this.label, `task #${this.bySid.get(failure.id)!.task.id} failed with an error that could not be decoded: ${(decodeFailure as Error).message}`)
      }
      this.report(failure.id, { ok: false, error })
    }
    this.retainedArrived(failures.length)
  }

  /** Session ids this process gave out (every one, reported or not: a resent duplicate is acked, not kept). */
  private ours(sid: number): boolean {
    return sid >= this.sidBase && sid < this.nextSid
  }

  private dispatched(ids: number[], tries: number[]): void {
    for (let i = 0; i < ids.length; i++) {
      const entry = this.bySid.get(ids[i]!)
      if (entry && entry.task.try === tries[i]) this.host?.taskRunning(entry.task.id, entry.task.try)
    }
  }

  cancel(taskId: number): boolean {
    const sid = this.sidOf.get(taskId)
    const entry = sid === undefined ? undefined : this.bySid.get(sid)
    if (!entry) return false
    if (!entry.sent) {
      this.report(entry.sid, { ok: false, error: new TaskCancelled(entry.task.id, entry.task.appName) })
      return true
    }
    // Queued at the endpoint: it answers with a TaskCancelled failure. Running: best effort.
    this.link?.send({ t: 'cancel', ids: [entry.sid] })
    return false
  }

  /** The endpoint's managers, workers, queued and running tasks, sessions. */
  status(timeoutMs?: number): Promise<EndpointStatus> {
    if (!this.link) throw new ExecutorError(this.label, 'status() before start()')
    return this.link.status(timeoutMs)
  }

  private failAll(error: Error): void {
    this.buffer = []
    for (const entry of [...this.bySid.values()]) this.report(entry.sid, { ok: false, error })
  }

  private report(sid: number, outcome: TaskOutcome): void {
    const entry = this.bySid.get(sid)
    if (!entry) return
    this.bySid.delete(sid)
    if (this.sidOf.get(entry.task.id) === sid) this.sidOf.delete(entry.task.id)
    if (this.bySid.size === 0) this.link?.release()
    if (this.host) deliverOutcome(this.host, this.label, entry.task, outcome)
  }

  /**
   * Waits up to `deadlineMs` for outstanding tasks, then says `bye` (without forgetting unless
   * `forgetOnShutdown`): what is still running finishes at the endpoint, and
   * `EndpointClient.connect({ session })` collects it.
   */
  async shutdown(deadlineMs: number): Promise<void> {
    if (this.phase === 'stopping' || this.phase === 'stopped') return
    const wasRunning = this.phase === 'running'
    this.phase = 'stopping'
    if (wasRunning && this.bySid.size > 0) {
      const idle = deferred<void>()
      const check = setInterval(() => this.bySid.size === 0 && idle.resolve(), 20)
      await settledWithin(idle.promise, deadlineMs)
      clearInterval(check)
    }
    await this.link?.close(this.options?.forgetOnShutdown ?? false)
    const left = this.bySid.size
    for (const entry of [...this.bySid.values()]) {
      this.report(entry.sid, {
        ok: false,
        error: new ShutdownError(`executor ${this.label} shut down while task #${entry.task.id} was outstanding (it may still finish at the endpoint; collect it with session '${this.session}')`),
      })
    }
    this.phase = 'stopped'
    this.logger?.info(`shut down${left > 0 ? ` (${left} tasks left at the endpoint under session ${this.session})` : ''}`)
  }
}
