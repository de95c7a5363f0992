/**
 * What the manager does with tasks between the interchange and its workers: queue them, cut the
 * queue into batches sized to the backlog (one task per batch when work trickles in, for
 * latency; up to `maxBatch` when thousands wait, for throughput), and collect results so that
 * everything finished in one event-loop turn goes back in one message.
 */
import { ExecutorError, ProtocolError, TaskCancelled, WalltimeExceeded, WorkerLost } from '../errors.js'
import type { FunctionEntry, ResultEnvelope, TaskEnvelope } from '../protocol/messages.js'
import { firstPartLength } from '../protocol/split.js'
import { HEAD_FIELDS, TaskKind, toResultTuple, type ResultWire, type TaskBatchHead } from '../protocol/task.js'
import type { FunctionDescriptor } from '../serialize/function-ref.js'
import { decode, encode } from '../serialize/codec.js'
import { encodeError } from '../serialize/errors.js'
import type { Logger } from '../util/logger.js'
import type { Batch, BatchFailure, QueuedTask, WorkerPool } from './pool.js'
import { QuickApps } from '../util/quick-apps.js'
import { TaskQueue } from './queue.js'
import type { PrefetchPolicy } from './prefetch.js'

/** Payload bytes a manager holds before it stops asking for more than one task per worker. */
const MAX_HELD_PAYLOAD_BYTES = 64 * 1024 * 1024

export interface SchedulerOptions {
  /** tasks held beyond one per worker (fixed or adaptive) */
  prefetch: PrefetchPolicy
  /** most tasks in one worker message */
  maxBatch: number
  /** extra time a bash app gets past its walltime to stop its own process group first */
  bashGraceMs: number
  /** names this manager in errors it creates */
  where: string
  /**
   * Looks at every failure before it is reported and may replace it: the manager turns a worker
   * lost or a shutdown at its block's end into BlockWalltimeReached.
   */
  explainFailure?: (taskId: number, error: unknown) => unknown
  /**
   * Looks at a worker's answer (an encoded result tuple) and may replace it: the manager turns a
   * bash app killed by the scheduler's signal at its block's end into BlockWalltimeReached.
   */
  explainAnswer?: (payload: Uint8Array) => Uint8Array
}

export class Scheduler {
  private readonly queue = new TaskQueue()
  private running = 0
  /** batches handed to the pool and not yet answered */
  private readonly inFlight = new Set<Batch>()
  /** payload bytes of tasks accepted and not yet answered */
  private heldBytes = 0
  /** when each batch went to the pool, to measure task length for adaptive prefetch */
  private readonly sentAt = new WeakMap<Batch, number>()
  /** indexes of a batch's tasks already answered by early results */
  private readonly answered = new WeakMap<Batch, Set<number>>()
  /** apps whose tasks may share a batch or wait behind a busy worker */
  private readonly quick = new QuickApps()
  private results: ResultEnvelope[] = []
  /** the function table as the interchange sent it: encoded descriptors, and their app names */
  private readonly fns = new Map<number, { bytes: Uint8Array; name: string }>()
  private turnScheduled = false
  private stopped = false

  constructor(
    private readonly pool: WorkerPool,
    private readonly options: SchedulerOptions,
    private readonly logger: Logger,
    /** called at the end of each turn in which work was dispatched or results arrived */
    private readonly onTurn: () => void,
  ) {}

  /** tasks accepted and not yet answered */
  get outstanding(): number {
    return this.queue.size + this.running
  }

  get hasResults(): boolean {
    return this.results.length > 0
  }

  /**
   * How many more tasks to ask for: one per worker plus the prefetch, minus what is held. With
   * one task per busy worker this is "idle workers + prefetch - queued"; counting every task
   * held keeps the bound when batches put many tasks on one worker.
   */
  capacity(): number {
    // Large payloads: stop prefetching once enough bytes wait here, so memory stays bounded.
    const prefetch = this.heldBytes >= MAX_HELD_PAYLOAD_BYTES ? 0 : this.options.prefetch.value
    return Math.max(0, this.pool.size + prefetch - this.outstanding)
  }

  accept(envelopes: readonly TaskEnvelope[], fns?: readonly FunctionEntry[]): void {
    if (fns) for (const [id, bytes] of fns) this.fns.set(id, { bytes: new Uint8Array(bytes), name: appNameOf(bytes) })
    for (const envelope of envelopes) {
      const task = this.toTask(envelope)
      if (!task) continue
      this.heldBytes += task.payload.byteLength
      this.queue.push(task)
    }
    this.scheduleTurn()
  }

  /** Queued tasks are answered TaskCancelled; a task running alone has its worker stopped. */
  cancel(ids: readonly number[]): void {
    const wanted = new Set(ids)
    for (const task of this.queue.removeWhere((queued) => wanted.has(queued.id))) {
      wanted.delete(task.id)
      this.fail(task, new TaskCancelled(task.id, task.appName))
    }
    for (const id of wanted) {
      if (!this.pool.cancelRunning(id)) this.logger.debug(`cancel of task #${id}: not queued here or not stoppable`)
    }
    this.scheduleTurn()
  }

  /** Takes up to `max` results (and about MAX_BATCH_PAYLOAD_BYTES of them) for one message. */
  takeResults(max: number): ResultEnvelope[] {
    const count = firstPartLength(this.results, (result) => result.payload.byteLength, max)
    if (count === this.results.length) {
      const all = this.results
      this.results = []
      return all
    }
    return this.results.splice(0, count)
  }

  /**
   * Stops scheduling. With `errorFor`, every task held (queued or running) is answered with that
   * error now, so the client learns why at once instead of after a heartbeat timeout; later
   * answers from workers are then ignored.
   */
  stop(errorFor?: (task: QueuedTask, running: boolean) => Error): void {
    this.stopped = true
    const queued = this.queue.drain()
    if (!errorFor) return
    for (const task of queued) this.fail(task, errorFor(task, false))
    for (const batch of this.inFlight) for (const task of this.unanswered(batch)) this.fail(task, errorFor(task, true))
    this.inFlight.clear()
  }

  // ---- pool events

  /** Results of some of a batch's tasks, sent while the rest of the batch still runs. */
  partial(batch: Batch, indexes: readonly number[], answers: readonly Uint8Array[]): void {
    if (!this.inFlight.has(batch)) return
    let answered = this.answered.get(batch)
    if (!answered) this.answered.set(batch, (answered = new Set()))
    indexes.forEach((index, i) => {
      const task = batch.tasks[index]
      const payload = answers[i]
      if (!task || !payload || answered.has(index)) return
      answered.add(index)
      this.running--
      this.heldBytes -= task.payload.byteLength
      this.results.push({ id: task.id, try: task.try, payload: this.options.explainAnswer ? this.options.explainAnswer(payload) : payload })
    })
    this.scheduleTurn()
  }

  done(batch: Batch, answers: readonly (Uint8Array | null)[], slowestMs: number): void {
    this.quick.observe(batch.tasks, slowestMs)
    const sentAt = this.sentAt.get(batch)
    if (sentAt !== undefined) this.options.prefetch.observe(batch.tasks.length, performance.now() - sentAt)
    const answered = this.answered.get(batch)
    if (!this.settle(batch)) return
    batch.tasks.forEach((task, i) => {
      if (answered?.has(i)) return
      const payload = answers[i]
      if (payload) {
        this.heldBytes -= task.payload.byteLength
        this.results.push({ id: task.id, try: task.try, payload: this.options.explainAnswer ? this.options.explainAnswer(payload) : payload })
      }
      else this.fail(task, new ExecutorError(this.options.where, `a worker returned no result for task #${task.id}`))
    })
    this.scheduleTurn()
  }

  failed(batch: Batch, failure: BatchFailure): void {
    // Tasks already answered by early results keep their answer.
    const tasks = this.unanswered(batch)
    if (!this.settle(batch) || this.stopped) return
    switch (failure.why) {
      case 'walltime':
        for (const task of tasks) this.fail(task, new WalltimeExceeded(task.id, task.appName, task.walltime ?? 0))
        break
      case 'cancel':
        for (const task of tasks) this.fail(task, new TaskCancelled(task.id, task.appName))
        break
      case 'error':
        for (const task of tasks) this.fail(task, failure.error)
        break
      case 'lost':
        if (tasks.length > 0) this.lost(tasks.length === batch.tasks.length ? batch : { ...batch, tasks }, failure)
        break
    }
    this.scheduleTurn()
  }

  changed(): void {
    this.scheduleTurn()
  }

  /** False for a batch already answered for (by stop()). */
  private settle(batch: Batch): boolean {
    if (!this.inFlight.delete(batch)) return false
    this.running -= batch.tasks.length - (this.answered.get(batch)?.size ?? 0)
    return true
  }

  /** The tasks of a batch not answered by early results. */
  private unanswered(batch: Batch): QueuedTask[] {
    const answered = this.answered.get(batch)
    return answered ? batch.tasks.filter((_, i) => !answered.has(i)) : batch.tasks
  }

  private lost(batch: Batch, failure: Extract<BatchFailure, { why: 'lost' }>): void {
    if (!failure.started) {
      // Never started: nothing happened to these tasks; they simply go elsewhere.
      this.queue.pushFront(batch.tasks)
      return
    }
    if (batch.tasks.length === 1) {
      const task = batch.tasks[0]!
      this.fail(task, new WorkerLost(task.id, failure.where, failure.exitCode, failure.signal))
      return
    }
    // Which task of the batch killed the worker is unknown (their results travel together), so
    // each is run again alone: the culprit fails on its own and the others complete.
    const how = failure.signal ? `signal ${failure.signal}` : `exit code ${failure.exitCode}`
    this.logger.warn(`${failure.where} died (${how}) running ${batch.tasks.length} tasks; running each alone to find the one responsible`)
    this.queue.pushFront(batch.tasks.map((task) => ({ ...task, isolated: true })))
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return
    this.turnScheduled = true
    // At the end of this event-loop turn, so that everything that arrived in it travels together.
    setImmediate(() => {
      this.turnScheduled = false
      if (!this.stopped) this.dispatchReady()
      this.onTurn()
    })
  }

  private dispatchReady(): void {
    // The backlog is shared among the batch slots free now, so a burst of 1,000 tasks on two
    // workers becomes four batches of 250, not a long tail of ever smaller ones.
    let room = this.pool.room()
    for (let head = this.queue.peek(); head && room > 0; head = this.queue.peek()) {
      // A task not known to be quick is handed over only to a worker that starts it at once, so
      // nothing waits behind it while another worker is free (and it waits behind nothing).
      const alone = mustRunAlone(head) || !this.quick.isQuick(head.appName)
      // Queue work behind a busy worker only when there is more of it than idle and starting
      // workers; otherwise a task could wait behind another while a worker sits free.
      const idleOnly = alone || this.queue.size <= this.pool.idle() + this.pool.starting()
      if (!this.pool.canTake(idleOnly)) return
      room--
      if (alone) {
        this.queue.shift()
        this.send({ tasks: [head], head: this.headOf([head]), alone: true, ...this.walltimeOf(head) }, true)
        continue
      }
      const size = idleOnly ? 1 : Math.min(this.options.maxBatch, Math.ceil(this.queue.size / (room + 1)))
      const tasks: QueuedTask[] = []
      for (
        let next = this.queue.peek();
        next && tasks.length < size && !mustRunAlone(next) && this.quick.isQuick(next.appName);
        next = this.queue.peek()
      ) {
        tasks.push(this.queue.shift()!)
      }
      // Large payloads: the same byte cap as every other hop; the rest waits for the next batch.
      const fits = firstPartLength(tasks, (task) => task.payload.byteLength)
      if (fits < tasks.length) this.queue.pushFront(tasks.splice(fits))
      this.send({ tasks, head: this.headOf(tasks), alone: false }, idleOnly)
    }
  }

  private send(batch: Batch, idleOnly: boolean): void {
    this.sentAt.set(batch, performance.now())
    this.running += batch.tasks.length
    this.inFlight.add(batch)
    this.pool.dispatch(batch, idleOnly)
  }

  private walltimeOf(task: QueuedTask): { walltimeMs?: number } {
    if (task.walltime === undefined) return {}
    return { walltimeMs: task.walltime * 1000 + (task.bash ? this.options.bashGraceMs : 0) }
  }

  /** The TaskBatchHead of a batch: the function table entries it uses, and each task's fields. */
  private headOf(tasks: readonly QueuedTask[]): Uint8Array {
    const head: TaskBatchHead = { fnIds: [], fns: [], tasks: new Array(tasks.length * HEAD_FIELDS) }
    for (let i = 0; i < tasks.length; i++) {
      const task = tasks[i]!
      let index = head.fnIds.indexOf(task.fn)
      if (index < 0) {
        index = head.fnIds.push(task.fn) - 1
        head.fns.push(this.fns.get(task.fn)!.bytes)
      }
      const at = i * HEAD_FIELDS
      head.tasks[at] = task.id
      head.tasks[at + 1] = task.try
      head.tasks[at + 2] = index
      head.tasks[at + 3] = task.kind
      head.tasks[at + 4] = task.walltime ?? 0
    }
    return encode(head)
  }

  /** The envelope says all the manager needs: the payload is never decoded on this busy thread. */
  private toTask(envelope: TaskEnvelope): QueuedTask | undefined {
    const fn = typeof envelope.f === 'number' ? this.fns.get(envelope.f) : undefined
    if (!fn || typeof envelope.k !== 'number') {
      this.fail({ id: envelope.id, try: envelope.try }, new ProtocolError(`task #${envelope.id} names function ${String(envelope.f)} (kind ${String(envelope.k)}), which the interchange never sent this manager`))
      return undefined
    }
    const wt = envelope.wt
    return {
      id: envelope.id,
      try: envelope.try,
      priority: typeof envelope.pri === 'number' ? envelope.pri : 0,
      payload: envelope.payload,
      fn: envelope.f,
      kind: envelope.k,
      appName: fn.name,
      walltime: typeof wt === 'number' && wt > 0 ? wt : undefined,
      bash: envelope.k === TaskKind.bash,
      isolated: false,
    }
  }

  private fail(task: { id: number; try: number; payload?: Uint8Array }, error: unknown): void {
    if (task.payload) this.heldBytes -= task.payload.byteLength
    if (this.options.explainFailure) error = this.options.explainFailure(task.id, error)
    const result: ResultWire = { id: task.id, try: task.try, ok: false, error: encodeError(error) }
    this.results.push({ id: task.id, try: task.try, payload: encode(toResultTuple(result)) })
  }
}

function mustRunAlone(task: QueuedTask): boolean {
  return task.walltime !== undefined || task.isolated
}

/** The app name in an encoded FunctionDescriptor, for the manager's own error messages. */
function appNameOf(bytes: Uint8Array): string {
  try {
    const name = decode<FunctionDescriptor>(bytes).name
    return typeof name === 'string' ? name : 'unknown app'
  } catch {
    return 'unknown app'
  }
}
