// A tiny fake interchange (a real ZeroMQ ROUTER speaking the protocol) and helpers to run the
// real tsflow-manager against it. Shared by the manager tests; it has no tests of its own.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Test } from 'tap'
import { Router } from 'zeromq'

import { ACCEPTED, DEFAULT_HEARTBEAT_PERIOD_MS, DEFAULT_HEARTBEAT_THRESHOLD_MS, TaskKind, decodeMessage, encodeMessage, managerSpec } from 'tsflow/protocol'
import type { FunctionEntry, InterchangeToManager, ManagerMessage, ManagerSpec, ResultEnvelope, TaskEnvelope } from 'tsflow/protocol'
import { fromResultTuple } from '../../dist/protocol/task.js'
import { encodeTaskEnvelope } from '../../dist/executors/htex/encode.js'
import { decode, encode } from '../../dist/serialize/codec.js'
import { decodeError } from '../../dist/serialize/errors.js'
import { waitFor } from '../helpers/wait.js'

export { waitFor }

const here = dirname(fileURLToPath(import.meta.url))
export const BIN = join(here, '..', '..', 'dist', 'bin', 'manager.js')
export const FIXTURE = pathToFileURL(join(here, 'fixtures', 'apps.ts')).href

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
            heartbeatPeriodMs: this.options.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS,
            heartbeatThreshold: this.options.heartbeatThreshold ?? DEFAULT_HEARTBEAT_THRESHOLD_MS,
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

/**
 * A task envelope calling the fixture export `name` with `args`, encoded exactly as the HTEX
 * client encodes it (function id, kind and walltime on the envelope, so the manager schedules it
 * without opening the payload, as in production).
 */
export function task(id: number, name: string, args: unknown[] = [], extra: { wt?: number; pri?: number; bash?: boolean } = {}): TaskEnvelope {
  const fn = { t: 'ref' as const, module: FIXTURE, key: name, name }
  let f = functionIds.get(name)
  if (f === undefined) {
    f = functionTable.push(encode(fn)) - 1
    functionIds.set(name, f)
  }
  return encodeTaskEnvelope(
    {
      id,
      try: 0,
      appName: name,
      fn,
      kind: extra.bash ? TaskKind.bash : TaskKind.js,
      args,
      priority: extra.pri ?? 0,
      ...(extra.wt !== undefined ? { walltime: extra.wt } : {}),
    },
    f,
  )
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
 * import the TypeScript fixture, with the command line the HTEX client would build for `spec`
 * (managerSpec.encode). Worker threads unless the spec says otherwise: the tests were written
 * for them and they start fastest. Registers the teardown before spawning: SIGTERM, then SIGKILL.
 */
export function spawnManager(t: Test, ix: { endpoint: string }, spec: ManagerSpec = {}): ManagerProcess {
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
  const argv = managerSpec.encode({ interchange: ix.endpoint, blockId: 'b0', managerId: id, workerMode: 'threads', ...spec })
  const child = spawn(process.execPath, [...process.execArgv, BIN, ...argv], {
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
