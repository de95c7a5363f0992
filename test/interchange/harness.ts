// Shared pieces of the interchange tests: spawn the real interchange process, and play the
// client (executor) and managers with real zeromq Dealers. Not a test file itself (tap skips it:
// no tests).

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import type { Test } from 'tap'
import { Dealer } from 'zeromq'

import { ACCEPTED, decodeHandshake, decodeMessage, encodeMessage, interchangeSpec, stamp } from 'tsflow/protocol'
import type {
  AnyMessage,
  InterchangeSpec,
  InterchangeToClient,
  InterchangeToManager,
  ResultEnvelope,
  FunctionEntry,
  TaskEnvelope,
} from 'tsflow/protocol'
import type { EncodedError } from '../../dist/serialize/errors.js'
import type { ClientCurveKeys } from '../../dist/transport/curve.js'
import { applyCurve } from '../../dist/transport/curve.js'

const here = dirname(fileURLToPath(import.meta.url))
export const BIN = join(here, '..', '..', 'dist', 'bin', 'interchange.js')

import { waitFor } from '../helpers/wait.js'

export { waitFor }

/** `promise`, or a rejection naming `what` after `timeoutMs` (the timer never outlives the race). */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs))),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export function tempDir(t: Test, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tsflow-ix-${label}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface SpawnedInterchange {
  proc: ChildProcess
  clientPort: number
  workerPort: number
  logDir: string
  stderr: () => string
  /** resolves with the exit code (or signal name) */
  exited: Promise<number | string>
  exitedYet: () => boolean
  log: () => Promise<string>
}

/**
 * Spawns dist/bin/interchange.js on port 0 with a log dir; resolves once its one JSON line with
 * the ports arrived. The teardown (kill if still running) is registered before the spawn.
 */
export async function spawnInterchange(t: Test, spec: InterchangeSpec = {}): Promise<SpawnedInterchange> {
  const logDir = tempDir(t, 'log')
  let proc: ChildProcess | undefined
  t.teardown(async () => {
    // TSFLOW_TEST_SHOW_LOG=1 prints the interchange's log, for debugging a failing test.
    if (process.env.TSFLOW_TEST_SHOW_LOG) t.comment(readFileSync(join(logDir, 'interchange.log'), 'utf8'))
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((resolve) => proc!.once('exit', resolve))
      proc.kill('SIGKILL')
      await gone
    }
  })
  // The command line the HTEX client would build for this spec (interchangeSpec.encode).
  const argv = interchangeSpec.encode({ logDir, logLevel: 'debug', ...spec })
  proc = spawn(process.execPath, [...process.execArgv, BIN, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  let exitedYet = false
  const exited = new Promise<number | string>((resolve) =>
    proc!.once('exit', (code, signal) => {
      exitedYet = true
      resolve(code ?? signal ?? -1)
    }),
  )
  const lines = createInterface({ input: proc.stdout! })
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exited.then((code) => {
      throw new Error(`interchange exited (${code}) before printing its ports: ${stderr}`)
    }),
  ])
  const ports = decodeHandshake(first)
  return {
    proc,
    ...ports,
    logDir,
    stderr: () => stderr,
    exited,
    exitedYet: () => exitedYet,
    log: async () => {
      try {
        return readFileSync(join(logDir, 'interchange.log'), 'utf8')
      } catch {
        return ''
      }
    },
  }
}

/** A Dealer that decodes everything it receives into `inbox`. */
class Peer<In extends AnyMessage> {
  readonly socket: Dealer
  readonly inbox: In[] = []
  /** raw messages received (frames), to count batching */
  received = 0
  sent = 0
  private closed = false

  constructor(
    t: Test,
    endpoint: string,
    private readonly accepted: ReadonlySet<string>,
    options: { routingId?: string; curve?: ClientCurveKeys } = {},
  ) {
    this.socket = new Dealer({ linger: 0, sendHighWaterMark: 0, ...(options.routingId ? { routingId: options.routingId } : {}) })
    if (options.curve) applyCurve(this.socket, options.curve)
    t.teardown(() => this.close())
    this.socket.connect(endpoint)
    void this.loop()
  }

  // async: zeromq throws EBUSY synchronously while a send waits for a connection.
  async send(message: AnyMessage): Promise<void> {
    this.sent++
    await this.socket.send(encodeMessage(message))
  }

  async sendRaw(frames: Buffer | Buffer[]): Promise<void> {
    await this.socket.send(frames)
  }

  of<K extends In['t']>(kind: K): Extract<In, { t: K }>[] {
    return this.inbox.filter((m) => m.t === kind) as Extract<In, { t: K }>[]
  }

  async next<K extends In['t']>(kind: K, timeoutMs = 10_000): Promise<Extract<In, { t: K }>> {
    await waitFor(() => this.of(kind).length > 0, `a '${kind}' message`, timeoutMs)
    return this.of(kind)[0]!
  }

  close(): void {
    this.closed = true
    if (!this.socket.closed) this.socket.close()
  }

  protected onMessage(_message: In): void {}

  private async loop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[]
      try {
        frames = await this.socket.receive()
      } catch {
        return
      }
      this.received++
      const message = decodeMessage<In>(frames, this.accepted)
      this.inbox.push(message)
      this.onMessage(message)
    }
  }
}

export class FakeClient extends Peer<InterchangeToClient> {
  private beat: NodeJS.Timeout | undefined
  readonly results = new Map<number, ResultEnvelope>()
  readonly failures = new Map<number, { id: number; try: number; error: EncodedError }>()

  constructor(t: Test, port: number, options: { curve?: ClientCurveKeys; heartbeatMs?: number; address?: string } = {}) {
    super(t, `tcp://${options.address ?? '127.0.0.1'}:${port}`, ACCEPTED.clientFromInterchange, options)
    if (options.heartbeatMs) {
      this.beat = setInterval(() => void this.send({ t: 'heartbeat' }).catch(() => {}), options.heartbeatMs)
      t.teardown(() => this.stopHeartbeats())
    }
  }

  async hello(clientId = 'test-client', version = stamp()): Promise<void> {
    await this.send({ t: 'client_hello', clientId, ...version })
  }

  async submit(tasks: TaskEnvelope[]): Promise<void> {
    await this.send({ t: 'submit', tasks, fns: FNS })
  }

  stopHeartbeats(): void {
    clearInterval(this.beat)
  }

  protected override onMessage(message: InterchangeToClient): void {
    if (message.t === 'results') for (const r of message.results) this.results.set(r.id, r)
    if (message.t === 'failed') for (const f of message.failures) this.failures.set(f.id, f)
  }

  override close(): void {
    this.stopHeartbeats()
    super.close()
  }
}

export interface FakeManagerOptions {
  id: string
  workers: number
  prefetch?: number
  blockId?: string
  heartbeatMs?: number
  /** answer every task at once with its payload (default true) */
  echo?: boolean
  curve?: ClientCurveKeys
  version?: { proto: number; version: string }
}

export class FakeManager extends Peer<InterchangeToManager> {
  readonly tasks: TaskEnvelope[] = []
  /** largest number of tasks held at once (must never exceed workers + prefetch) */
  maxHeld = 0
  held = new Map<number, TaskEnvelope>()
  private beat: NodeJS.Timeout | undefined
  readonly capacity: number

  constructor(
    t: Test,
    port: number,
    readonly options: FakeManagerOptions,
  ) {
    super(t, `tcp://127.0.0.1:${port}`, ACCEPTED.managerFromInterchange, { routingId: options.id, curve: options.curve })
    this.capacity = options.workers + (options.prefetch ?? 0)
    if (options.heartbeatMs) this.startHeartbeats(options.heartbeatMs)
    t.teardown(() => this.stopHeartbeats())
  }

  async register(): Promise<void> {
    const o = this.options
    await this.send({
      t: 'register',
      managerId: o.id,
      host: 'test-host',
      blockId: o.blockId ?? 'block-0',
      workers: o.workers,
      prefetch: o.prefetch ?? 0,
      pid: process.pid,
      ...(o.version ?? stamp()),
    })
  }

  startHeartbeats(ms: number): void {
    this.beat = setInterval(() => void this.send({ t: 'heartbeat', outstanding: this.held.size }).catch(() => {}), ms)
  }

  stopHeartbeats(): void {
    clearInterval(this.beat)
  }

  /** Answers the held tasks (all, or those given) with their payloads as results. */
  async answer(ids?: number[]): Promise<void> {
    const done = (ids ?? [...this.held.keys()]).map((id) => this.held.get(id)!).filter(Boolean)
    for (const task of done) this.held.delete(task.id)
    const results = done.map((task) => ({ id: task.id, try: task.try, payload: task.payload }))
    await this.send({ t: 'results', results, capacity: this.capacity - this.held.size })
  }

  protected override onMessage(message: InterchangeToManager): void {
    if (message.t !== 'tasks') return
    for (const task of message.tasks) {
      this.tasks.push(task)
      this.held.set(task.id, task)
    }
    this.maxHeld = Math.max(this.maxHeld, this.held.size)
    if (this.options.echo ?? true) void this.answer().catch(() => {})
  }

  override close(): void {
    this.stopHeartbeats()
    super.close()
  }
}

/** The function table the fake client sends with every submit: makeTasks' tasks name function 0. */
export const FNS: FunctionEntry[] = [[0, Buffer.from('function 0')]]

export function makeTasks(from: number, count: number, pri?: (id: number) => number): TaskEnvelope[] {
  const tasks: TaskEnvelope[] = []
  for (let id = from; id < from + count; id++) {
    const task: TaskEnvelope = { id, try: 0, f: 0, k: 0, payload: Buffer.from(`payload-${id}`) }
    if (pri) task.pri = pri(id)
    tasks.push(task)
  }
  return tasks
}
