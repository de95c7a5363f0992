/**
 * `--mode threads`: workers are piscina threads in the manager process. Cheapest per task and
 * per start, but a task that crashes the whole process (a native fault, process.abort) takes
 * the manager with it, and per-worker environment variables are visible to JavaScript only.
 */
import { Piscina } from 'piscina'
import type { Logger } from '../util/logger.js'
import { settledWithin } from '../util/deferred.js'
import type { ThreadHello, ThreadPoolData, ThreadWork, ThreadWorkProgress, WorkerSetup } from '../protocol/worker.js'
import { decodeResults, workParts, type WorkAnswer } from '../worker/run.js'
import { deliverEarly, workOf, type Batch, type PoolEvents, type WorkerPool } from './pool.js'
import { threadExecArgv } from '../runtime/exec-argv.js'
import type { SampleTarget } from './sampler.js'

interface Run {
  n: number
  batch: Batch
  /** results received early, and the thread's answer while some of them are still on their way */
  early: number
  answer?: WorkAnswer
  controller?: AbortController
  timer?: NodeJS.Timeout
  /** why we aborted it, reported instead of piscina's AbortError */
  reason?: 'walltime' | 'cancel'
}

export class ThreadWorkerPool implements WorkerPool {
  readonly size: number
  private pool: Piscina | undefined
  private readonly slots: Int32Array
  private runs = 0
  /** batches handed to piscina and not yet delivered, by number (progress messages name them) */
  private readonly live = new Map<number, Run>()
  private nextRun = 0
  /** runs of a single task, which can be aborted without touching other tasks */
  private readonly single = new Map<number, Run>()
  private stopping = false
  /** threads that reported in; fewer than `size` means the first threads are still starting */
  private hellos = 0
  /** per rank, the batch its thread runs now plus one (threads write it); only while sampling */
  private readonly running: Int32Array | undefined
  /** per rank, its thread's kernel tid (from its hello); only while sampling */
  private readonly tids: (number | undefined)[]

  constructor(
    private readonly setups: WorkerSetup[],
    private readonly depth: number,
    private readonly where: string,
    private readonly events: PoolEvents,
    private readonly logger: Logger,
    /** the manager samples resources: threads say which batch they run and their tid */
    sampling = false,
  ) {
    this.size = setups.length
    this.slots = new Int32Array(new SharedArrayBuffer(4 * this.size))
    this.running = sampling ? new Int32Array(new SharedArrayBuffer(4 * this.size)) : undefined
    this.tids = new Array(this.size).fill(undefined)
  }

  start(): void {
    const workerData: ThreadPoolData = { slots: this.slots.buffer as SharedArrayBuffer, setups: this.setups }
    if (this.running) workerData.running = this.running.buffer as SharedArrayBuffer
    const pool = new Piscina({
      filename: new URL('../worker/thread.js', import.meta.url).href,
      minThreads: this.size,
      maxThreads: this.size,
      idleTimeout: Infinity,
      // Threads inherit loader flags (tsx, ts-node) so they can import TypeScript task modules.
      execArgv: threadExecArgv(process.execArgv),
      workerData,
    })
    // A dead thread's rank becomes free for the thread piscina starts in its place.
    pool.on('workerDestroy', (worker: { id: number }) => {
      for (let rank = 0; rank < this.slots.length; rank++) Atomics.compareExchange(this.slots, rank, worker.id, 0)
    })
    pool.on('message', (message: unknown) => {
      if (message !== null && typeof message === 'object' && ('tsflowEarly' in message || 'tsflowStarted' in message)) {
        this.onProgress(message as ThreadWorkProgress)
        return
      }
      const hello = message as Partial<ThreadHello> | null
      if (!hello?.tsflowThread) return
      this.hellos++
      if (hello.tid !== undefined && typeof hello.rank === 'number' && hello.rank >= 0) this.tids[hello.rank] = hello.tid
      if (hello.warning) this.logger.warn(`worker thread ${hello.threadId} (rank ${hello.rank}): ${hello.warning}`)
      else this.logger.debug(`worker thread ${hello.threadId} started as rank ${hello.rank}${hello.cpus ? ` on CPUs ${hello.cpus.join(',')}` : ''}`)
      this.events.changed()
    })
    // piscina emits 'error' for a thread that fails with no task on it; unhandled it would crash us.
    pool.on('error', (error: unknown) => {
      this.logger.error('worker thread failed', error)
      // A thread that dies before it is up makes piscina stop replacing threads for good; the
      // pool would then hold tasks forever, so the manager must go rather than hang.
      if (this.hellos < this.size && !this.stopping) {
        this.events.fatal(`worker threads fail to start: ${(error as Error)?.message ?? String(error)}`)
      }
    })
    this.pool = pool
  }

  idle(): number {
    return Math.max(0, this.size - this.runs)
  }

  room(): number {
    return !this.pool || this.stopping ? 0 : Math.max(0, this.size * this.depth - this.runs)
  }

  starting(): number {
    // piscina starts threads itself and queues runs until they are up; none to wait for here.
    return 0
  }

  canTake(idleOnly: boolean): boolean {
    if (!this.pool || this.stopping) return false
    // With fewer runs than threads, piscina has an idle thread and starts the run at once.
    return idleOnly ? this.runs < this.size : this.runs < this.size * this.depth
  }

  dispatch(batch: Batch): void {
    const run: Run = { n: this.nextRun++, batch, early: 0 }
    // One buffer of its own, transferred: payloads are views into larger received frames, which
    // a structured clone would copy whole for each of them.
    const buffer = workParts(workOf(batch))
    const work: ThreadWork = { n: run.n, work: buffer }
    const options: { signal?: AbortSignal; transferList?: ArrayBuffer[] } = { transferList: [buffer.buffer as ArrayBuffer] }
    if (batch.tasks.length === 1) {
      run.controller = new AbortController()
      options.signal = run.controller.signal
      this.single.set(batch.tasks[0]!.id, run)
    }
    // The walltime clock starts when the thread calls the function (onProgress).
    this.runs++
    this.live.set(run.n, run)
    this.pool!.run(work, options).then(
      (answer: Uint8Array) => {
        if (!this.finish(run)) return
        let answers: WorkAnswer
        try {
          answers = decodeResults(answer)
        } catch (error) {
          this.live.delete(run.n)
          this.events.failed(batch, { why: 'error', error: error as Error })
          return
        }
        // Early results travel on another port and may arrive after this answer: wait for them.
        if (run.early < holes(answers)) run.answer = answers
        else this.deliver(run, answers)
      },
      (error: unknown) => {
        this.live.delete(run.n)
        if (!this.finish(run)) return
        if (run.reason) this.events.failed(batch, { why: run.reason })
        else this.events.failed(batch, { why: 'lost', started: true, exitCode: exitCodeOf(error), signal: null, where: this.where })
      },
    )
  }

  cancelRunning(taskId: number): boolean {
    const run = this.single.get(taskId)
    if (!run) return false
    this.abort(run, 'cancel')
    return true
  }

  async stop(graceMs: number): Promise<void> {
    this.stopping = true
    const pool = this.pool
    this.pool = undefined
    if (pool) await settledWithin(pool.destroy(), graceMs)
  }

  killNow(): void {
    // Threads end with the process; nothing outlives it.
  }

  sampleTargets(out: SampleTarget[]): void {
    const running = this.running
    if (!running) return
    for (let rank = 0; rank < this.size; rank++) {
      const marked = Atomics.load(running, rank)
      const tid = this.tids[rank]
      const run = marked > 0 && tid !== undefined ? this.live.get(marked - 1) : undefined
      if (run?.batch.tasks.length !== 1) continue
      const task = run.batch.tasks[0]!
      out.push({ taskId: task.id, tryNumber: task.try, proc: `/proc/${process.pid}/task/${tid}` })
    }
  }

  private onProgress(message: ThreadWorkProgress): void {
    if ('tsflowStarted' in message) {
      const run = this.live.get(message.tsflowStarted)
      if (run && run.batch.walltimeMs !== undefined && !run.timer && run.answer === undefined) {
        run.timer = setTimeout(() => this.abort(run, 'walltime'), run.batch.walltimeMs)
      }
      return
    }
    const run = this.live.get(message.tsflowEarly)
    if (!run) return
    const count = deliverEarly(this.events, run.batch, message.bytes)
    // An unreadable message (count 0) leaves its tasks to fail as unanswered with the batch.
    run.early += count === 0 ? Infinity : count
    if (run.answer && run.early >= holes(run.answer)) this.deliver(run, run.answer)
  }

  private deliver(run: Run, answer: WorkAnswer): void {
    this.live.delete(run.n)
    this.events.done(run.batch, answer.answers, answer.slowestMs)
  }

  private abort(run: Run, reason: 'walltime' | 'cancel'): void {
    run.reason ??= reason
    run.controller?.abort()
  }

  /** Bookkeeping when a run settles; false if the pool is stopping and nobody wants the outcome. */
  private finish(run: Run): boolean {
    this.runs--
    if (run.timer) clearTimeout(run.timer)
    const only = run.batch.tasks[0]
    if (run.batch.tasks.length === 1 && only && this.single.get(only.id) === run) this.single.delete(only.id)
    return !this.stopping
  }
}

/** Tasks answered early, i.e. left out of the final answer. */
function holes(answer: WorkAnswer): number {
  let count = 0
  for (const entry of answer.answers) if (entry === null) count++
  return count
}

/** piscina reports a thread that exited mid-task as "worker exited with code: N". */
function exitCodeOf(error: unknown): number | null {
  const match = /exited with code:? (-?\d+)/i.exec(String((error as Error)?.message ?? ''))
  return match ? Number(match[1]) : null
}
