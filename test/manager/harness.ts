// A tiny fake interchange (a real ZeroMQ ROUTER speaking the protocol) and helpers to run the
// real tsflow-manager against it. Shared by the manager tests; it has no tests of its own.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Test } from 'tap'
import { Router } from 'zeromq'

import { ACCEPTED, decodeMessage, encodeMessage } from '../../dist/protocol/messages.js'
import type { FunctionEntry, InterchangeToManager, ManagerMessage, ResultEnvelope, TaskEnvelope } from '../../dist/protocol/messages.js'
import { fromResultTuple, taskArgsWire } from '../../dist/protocol/task.js'
import { decode, encode } from '../../dist/serialize/codec.js'
import { decodeError } from '../../dist/serialize/errors.js'

const here = dirname(fileURLToPath(import.meta.url))
export const BIN = join(here, '..', '..', 'dist', 'bin', 'manager.js')
export const FIXTURE = pathToFileURL(join(here, 'fixtures', 'apps.ts')).href

/** Polls `check` every few ms; resolves when it holds, rejects after `ms`. */
export async function waitFor(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export interface Outcome {
  ok: boolean
  value?: unknown
  error?: Error & { code?: string; exitCode?: number | null; signal?: string | null }
}

export interface FakeOptions {
  /** reply to `register` with `refused` and this reason */
  refuse?: string
  /** the heartbeat settings sent in `registered` */
  heartbeatPeriodMs?: number
  heartbeatThreshold?: number
  /** answer every manager heartbeat (keeps a manager with a small threshold alive) */
  echoHeartbeats?: boolean
  curve?: { publicKey: string; secretKey: string }
}

export class FakeInterchange {
  readonly messages: ManagerMessage[] = []
  readonly outcomes = new Map<number, Outcome>()
  readonly capacities: number[] = []
  resultMessages = 0
  /** `registered` replies sent */
  registered = 0
  manager: Buffer | undefined
  private closed = false

  private constructor(
    private readonly router: Router,
    readonly endpoint: string,
    private readonly options: FakeOptions,
  ) {}

  static async start(t: Test, options: FakeOptions = {}): Promise<FakeInterchange> {
    const router = new Router({ linger: 0 })
    if (options.curve) {
      router.curveServer = true
      router.curveSecretKey = options.curve.secretKey
      router.curvePublicKey = options.curve.publicKey
    }
    await router.bind('tcp://127.0.0.1:*')
    const fake = new FakeInterchange(router, router.lastEndpoint!, options)
    t.teardown(() => fake.close())
    void fake.receive()
    return fake
  }

  get registers(): Extract<ManagerMessage, { t: 'register' }>[] {
    return this.messages.filter((m): m is Extract<ManagerMessage, { t: 'register' }> => m.t === 'register')
  }

  count(kind: ManagerMessage['t']): number {
    return this.messages.filter((m) => m.t === kind).length
  }

  async send(message: InterchangeToManager): Promise<void> {
    await this.sendRaw(encodeMessage(message))
  }

  /** Sends one message made of these frames (a header and any payload frames). */
  async sendRaw(frames: Uint8Array | Uint8Array[]): Promise<void> {
    if (!this.manager) throw new Error('no manager has registered yet')
    await this.router.send([this.manager, ...(frames instanceof Uint8Array ? [frames] : frames)])
  }

  /** Sends tasks made by task() with the function table entries they use, as the interchange does. */
  async sendTasks(tasks: TaskEnvelope[]): Promise<void> {
    const fns: FunctionEntry[] = [...new Set(tasks.map((task) => task.f))].map((f) => [f, functionTable[f]!])
    await this.send({ t: 'tasks', tasks, fns })
  }

  /** Waits until every id has an outcome and returns them in order. */
  async outcomesOf(ids: number[], ms = 30_000): Promise<Outcome[]> {
    await waitFor(() => ids.every((id) => this.outcomes.has(id)), `results of tasks ${ids.length > 5 ? `${ids[0]}..${ids.at(-1)}` : ids.join(', ')}`, ms)
    return ids.map((id) => this.outcomes.get(id)!)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.router.close()
  }

  private async receive(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.router) {
        const message = decodeMessage<ManagerMessage>(frames, ACCEPTED.interchangeFromManager)
        this.messages.push(message)
        await this.react(identity!, message)
      }
    } catch (error) {
      if (!this.closed) throw error
    }
  }

  private async react(identity: Buffer, message: ManagerMessage): Promise<void> {
    switch (message.t) {
      case 'register':
        this.manager = identity
        if (this.options.refuse) await this.send({ t: 'refused', reason: this.options.refuse })
        else {
          await this.send({
            t: 'registered',
            heartbeatPeriodMs: this.options.heartbeatPeriodMs ?? 30_000,
            heartbeatThreshold: this.options.heartbeatThreshold ?? 120_000,
          })
          this.registered++
        }
        break
      case 'results':
        this.resultMessages++
        this.capacities.push(message.capacity)
        for (const envelope of message.results) this.record(envelope)
        break
      case 'ready':
        this.capacities.push(message.capacity)
        break
      case 'heartbeat':
        if (this.options.echoHeartbeats) await this.send({ t: 'heartbeat' })
        break
      default:
        break
    }
  }

  private record(envelope: ResultEnvelope): void {
    const result = fromResultTuple(decode(envelope.payload))
    if (result.id !== envelope.id) throw new Error(`envelope #${envelope.id} carries the result of #${result.id}`)
    this.outcomes.set(envelope.id, result.ok ? { ok: true, value: result.value } : { ok: false, error: decodeError(result.error!) as Outcome['error'] })
  }
}

/** Encoded descriptors of the fixture functions task() has used, by function table id. */
const functionTable: Uint8Array[] = []
const functionIds = new Map<string, number>()

/** A task envelope calling the fixture export `name` with `args`, as the executor builds it. */
export function task(id: number, name: string, args: unknown[] = [], extra: { wt?: number; pri?: number; bash?: boolean } = {}): TaskEnvelope {
  let f = functionIds.get(name)
  if (f === undefined) {
    f = functionTable.push(encode({ t: 'ref', module: FIXTURE, key: name, name })) - 1
    functionIds.set(name, f)
  }
  const envelope: TaskEnvelope = { id, try: 0, f, k: extra.bash ? 1 : 0, payload: encode(taskArgsWire(args, undefined)) }
  if (extra.wt !== undefined) envelope.wt = extra.wt
  if (extra.pri !== undefined) envelope.pri = extra.pri
  return envelope
}

export interface ManagerProcess {
  child: ChildProcess
  id: string
  stderr: () => string
  exited: () => boolean
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

let counter = 0

/**
 * Starts the real manager (dist/bin/manager.js) under this process's loaders, so its workers can
 * import the TypeScript fixture. Registers the teardown before spawning: SIGTERM, then SIGKILL.
 */
export function spawnManager(t: Test, ix: { endpoint: string }, args: string[]): ManagerProcess {
  const id = `test-${process.pid}-${++counter}`
  const state: { child?: ChildProcess; done: boolean } = { done: false }
  t.teardown(async () => {
    const child = state.child
    if (!child || state.done) return
    child.kill('SIGTERM')
    const deadline = Date.now() + 5000
    while (!state.done && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    if (!state.done) child.kill('SIGKILL')
  })
  const child = spawn(process.execPath, [...process.execArgv, BIN, '--interchange', ix.endpoint, '--block-id', 'b0', '--manager-id', id, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  state.child = child
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdout!.resume()
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      state.done = true
      resolve({ code, signal })
    })
  })
  return { child, id, stderr: () => stderr, exited: () => state.done, exit }
}

/** Whether a process exists (and is not a zombie we could still reap). */
export function alive(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return !/^State:\s+Z/m.test(status)
  } catch {
    return false
  }
}

/** Cpus_allowed_list of a process's main thread, as a list of CPUs. */
export function cpusAllowed(pid: number): number[] {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const list = /^Cpus_allowed_list:\s*(.+)$/m.exec(status)![1]!.trim()
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number)
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i)
  })
}
