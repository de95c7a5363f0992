/**
 * `--mode processes`: each worker is a child process (dist/worker/process.js) talking frames over
 * a socket pair on fd 3. A task that exits, aborts or is killed takes down only its own worker,
 * which is replaced; walltimes and cancellation are enforced with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode } from '../serialize/codec.js'
import { decodeError, type EncodedError } from '../serialize/errors.js'
import type { Logger } from '../util/logger.js'
import { CPUS_ENV, FrameKind, FrameReader, frameHeader, type WorkerHello, type WorkerSetup } from '../protocol/worker.js'
import { workChunks } from '../worker/run.js'
import { deliverAnswer, deliverEarly, workOf, type Batch, type PoolEvents, type WorkerPool } from './pool.js'
import type { SampleTarget } from './sampler.js'

const ENTRY = fileURLToPath(new URL('../worker/process.js', import.meta.url))
/** Consecutive workers dying before they are ready, after which the pool gives up. */
const MAX_START_FAILURES = 5

interface Child {
  setup: WorkerSetup
  proc: ChildProcess
  pipe: Socket
  ready: boolean
  /** batches sent and not answered, oldest (the running one) first */
  batches: Batch[]
  timer?: NodeJS.Timeout
  /** why we killed it, reported instead of a plain loss */
  killedFor?: 'walltime' | 'cancel' | 'stop'
  closed: Promise<void>
}

export interface ProcessPoolOptions {
  depth: number
  /** names the manager in WorkerLost messages */
  where: string
  /** if set, each worker's stdout and stderr go to <logDir>/worker-<managerId>-<rank>.log */
  logDir?: string
  managerId: string
}

export class ProcessWorkerPool implements WorkerPool {
  readonly size: number
  private readonly children: (Child | undefined)[]
  private startFailures = 0
  private stopping = false

  constructor(
    private readonly setups: WorkerSetup[],
    private readonly options: ProcessPoolOptions,
    private readonly events: PoolEvents,
    private readonly logger: Logger,
  ) {
    this.size = setups.length
    this.children = new Array(this.size).fill(undefined)
  }

  start(): void {
    for (const setup of this.setups) this.spawnWorker(setup)
  }

  idle(): number {
    return this.children.filter((child) => child?.ready && !child.killedFor && child.batches.length === 0).length
  }

  room(): number {
    if (this.stopping) return 0
    let room = 0
    for (const child of this.children) {
      if (!child?.ready || child.killedFor || child.batches.some((batch) => batch.alone)) continue
      room += Math.max(0, this.options.depth - child.batches.length)
    }
    return room
  }

  starting(): number {
    return this.children.filter((child) => !child || (!child.ready && !child.killedFor)).length
  }

  canTake(idleOnly: boolean): boolean {
    return this.pick(idleOnly) !== undefined
  }

  dispatch(batch: Batch, idleOnly: boolean): void {
    const child = this.pick(idleOnly || batch.alone)
    if (!child) throw new Error('dispatch without a worker that can take the batch (canTake was not checked)')
    // Small payloads are copied into one buffer (a write per payload cost more than copying them
    // once); a large one is written as received, since copying it cost more than its write.
    const chunks = workChunks(workOf(batch))
    let length = 0
    for (const chunk of chunks) length += chunk.byteLength
    // Corked, the header and chunks leave in one writev: one system call and one read for the worker.
    child.pipe.cork()
    child.pipe.write(frameHeader(FrameKind.work, length))
    for (const chunk of chunks) child.pipe.write(chunk)
    child.pipe.uncork()
    child.batches.push(batch)
    // The walltime clock starts when the worker says it calls the function (a `started` frame),
    // so a worker's start-up and its import of the app's module do not count.
  }

  cancelRunning(taskId: number): boolean {
    for (const child of this.children) {
      const running = child?.batches[0]
      if (child && running?.tasks.length === 1 && running.tasks[0]!.id === taskId) {
        this.kill(child, 'cancel')
        return true
      }
    }
    return false
  }

  async stop(graceMs: number): Promise<void> {
    this.stopping = true
    const live = this.children.filter((child): child is Child => child !== undefined)
    for (const child of live) {
      child.killedFor = 'stop'
      // Closing the pipe is the polite request; SIGTERM covers a worker busy in a long task.
      child.pipe.end()
      child.proc.kill('SIGTERM')
    }
    const timer = setTimeout(() => this.killNow(), graceMs)
    await Promise.all(live.map((child) => child.closed))
    clearTimeout(timer)
  }

  killNow(): void {
    for (const child of this.children) {
      if (child && child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL')
    }
  }

  sampleTargets(out: SampleTarget[]): void {
    for (const child of this.children) {
      const running = child?.ready && !child.killedFor ? child.batches[0] : undefined
      if (running?.tasks.length !== 1 || child!.proc.pid === undefined) continue
      const task = running.tasks[0]!
      out.push({ taskId: task.id, tryNumber: task.try, proc: `/proc/${child!.proc.pid}` })
    }
  }

  /** An idle worker; failing that, unless `idleOnly`, one with room behind its current batch. */
  private pick(idleOnly: boolean): Child | undefined {
    if (this.stopping) return undefined
    let pipelined: Child | undefined
    for (const child of this.children) {
      if (!child?.ready || child.killedFor) continue
      if (child.batches.length === 0) return child
      if (!idleOnly && !pipelined && child.batches.length < this.options.depth && !child.batches.some((b) => b.alone)) pipelined = child
    }
    return pipelined
  }

  private kill(child: Child, why: 'walltime' | 'cancel'): void {
    if (child.killedFor) return
    child.killedFor = why
    child.proc.kill('SIGKILL')
  }

  private spawnWorker(setup: WorkerSetup): void {
    const env: NodeJS.ProcessEnv = { ...process.env, ...setup.env }
    if (setup.cpus) env[CPUS_ENV] = setup.cpus.join(',')
    else delete env[CPUS_ENV]
    let output: number | 'inherit' = 'inherit'
    if (this.options.logDir) {
      output = openSync(join(this.options.logDir, `worker-${this.options.managerId}-${setup.rank}.log`.replace(/[/\\]/g, '_')), 'a')
    }
    // execArgv: workers need the same loaders (tsx, ts-node) to import TypeScript task modules.
    const proc = spawn(process.execPath, [...process.execArgv, ENTRY], { env, stdio: ['ignore', output, output, 'pipe'] })
    if (typeof output === 'number') closeSync(output)
    const pipe = proc.stdio[3] as Socket
    let onClosed!: () => void
    const child: Child = { setup, proc, pipe, ready: false, batches: [], closed: new Promise((resolve) => (onClosed = resolve)) }
    this.children[setup.rank] = child
    const reader = new FrameReader((kind, body) => this.onFrame(child, kind, body))
    pipe.on('data', (chunk: Buffer) => reader.push(chunk))
    // EPIPE when a worker dies while we write to it; its 'close' reports the loss.
    pipe.on('error', () => undefined)
    proc.on('error', (error) => this.logger.error(`worker process ${setup.rank} could not be started`, error))
    // 'close' (not 'exit'): by then every frame the worker wrote has been read.
    proc.on('close', (code, signal) => {
      onClosed()
      this.onClose(child, code, signal)
    })
  }

  private onFrame(child: Child, kind: number, body: Buffer): void {
    if (kind === FrameKind.hello) {
      const hello = decode<WorkerHello>(body)
      child.ready = true
      this.startFailures = 0
      if (hello.warning) this.logger.warn(`worker process ${hello.rank} (pid ${hello.pid}): ${hello.warning}`)
      else this.logger.debug(`worker process ${hello.rank} ready (pid ${hello.pid}${hello.cpus ? `, CPUs ${hello.cpus.join(',')}` : ''})`)
      this.events.changed()
      return
    }
    if (kind === FrameKind.early || kind === FrameKind.started) {
      const running = child.batches[0]
      if (!running) return
      if (kind === FrameKind.early) deliverEarly(this.events, running, body)
      else if (running.walltimeMs !== undefined && !child.timer && !child.killedFor) {
        child.timer = setTimeout(() => this.kill(child, 'walltime'), running.walltimeMs)
      }
      return
    }
    const batch = child.batches.shift()
    if (!batch) {
      this.logger.error(`worker process ${child.setup.rank} answered a batch it was never sent; stopping it`)
      child.proc.kill('SIGKILL')
      return
    }
    if (child.timer) {
      clearTimeout(child.timer)
      child.timer = undefined
    }
    if (kind === FrameKind.results) {
      deliverAnswer(this.events, batch, body)
    } else {
      this.events.failed(batch, { why: 'error', error: decodeError(decode<EncodedError>(body)) })
    }
  }

  private onClose(child: Child, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.timer) clearTimeout(child.timer)
    if (this.children[child.setup.rank] === child) this.children[child.setup.rank] = undefined
    if (this.stopping) return
    const where = `worker process ${child.setup.rank} (pid ${child.proc.pid}) of ${this.options.where}`
    const [running, ...waiting] = child.batches
    if (running) {
      if (child.killedFor === 'walltime' || child.killedFor === 'cancel') this.events.failed(running, { why: child.killedFor })
      else this.events.failed(running, { why: 'lost', started: true, exitCode: code, signal, where })
    }
    for (const batch of waiting) this.events.failed(batch, { why: 'lost', started: false, exitCode: code, signal, where })
    if (!child.killedFor) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`
      this.logger.warn(`${where} ${how}${running ? '' : ' while idle'}; starting a replacement`)
    }
    if (!child.ready && ++this.startFailures >= MAX_START_FAILURES) {
      this.events.fatal(`${MAX_START_FAILURES} worker processes in a row exited before becoming ready (last: ${signal ?? `exit code ${code}`}); see the worker output`)
      return
    }
    // Back off a little when workers die on start, instead of respawning in a tight loop.
    const delay = child.ready ? 0 : 100 * this.startFailures
    setTimeout(() => {
      if (!this.stopping) this.spawnWorker(child.setup)
    }, delay)
  }
}
