// An in-process EndpointServer (LocalProvider, real managers) and a raw CURVE DEALER speaking
// protocol/endpoint.ts to it. Shared by the endpoint tests; no tests of its own.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Test } from 'tap'
import { Dealer } from 'zeromq'

import { EndpointServer, addAllowedClient, ensureClientKeys } from 'tsflow/endpoint'
import { ENDPOINT_ACCEPTED, TaskKind, decodeMessage, encodeMessage, endpointPaths, stamp } from 'tsflow/protocol'
import type { EndpointState, EndpointToClient, FunctionEntry, TaskEnvelope } from 'tsflow/protocol'
import { encodeTaskEnvelope } from '../../dist/executors/htex/encode.js'
import { fromResultTuple } from '../../dist/protocol/task.js'
import { decode, encode } from '../../dist/serialize/codec.js'
import { decodeError } from '../../dist/serialize/errors.js'
import { waitFor } from '../helpers/wait.js'

export { waitFor }

export const FIXTURE = pathToFileURL(join(import.meta.dirname, '..', 'manager', 'fixtures', 'apps.ts')).href

export interface Started {
  server: EndpointServer
  state: EndpointState
  home: string
  paths: ReturnType<typeof endpointPaths>
  clientKeys: { publicKey: string; secretKey: string }
  log: () => string
}

/** A temporary TSFLOW_HOME (removed at teardown). */
export function tempHome(t: Test): string {
  const home = mkdtempSync(join(tmpdir(), 'tsflow-ep-'))
  t.teardown(() => rmSync(home, { recursive: true, force: true }))
  return home
}

/**
 * Starts an endpoint named `name` in a fresh home with one local block of `workers` workers, the
 * home's client key on its allow-list. The teardown stops it (before the home is removed).
 */
export async function startEndpoint(t: Test, config: Record<string, unknown> = {}, name = 'ep'): Promise<Started> {
  const home = tempHome(t)
  const paths = endpointPaths(name, home)
  const clientKeys = ensureClientKeys(home)
  addAllowedClient(paths, clientKeys.publicKey, 'test client')
  const server = new EndpointServer({
    name,
    home,
    config: {
      provider: { type: 'local', initBlocks: 1, minBlocks: 1, maxBlocks: 1 },
      workerMode: 'threads',
      maxWorkersPerNode: 2,
      heartbeatPeriodMs: 300,
      heartbeatThresholdMs: 3000,
      logLevel: 'debug',
      ...config,
    },
  })
  t.teardown(async () => {
    await server.stop('test teardown')
    if (process.env.TSFLOW_TEST_SHOW_LOG) t.comment(readFileSync(paths.log, 'utf8'))
  })
  const state = await server.start()
  return { server, state, home, paths, clientKeys, log: () => readFileSync(paths.log, 'utf8') }
}

export interface Outcome {
  ok: boolean
  value?: unknown
  error?: Error & { code?: string }
  try: number
}

/** Function table of the fixture exports used, as a session sends it (ids from 1). */
export class Functions {
  private readonly ids = new Map<string, number>()
  private readonly unsent: FunctionEntry[] = []
  id(name: string): number {
    let id = this.ids.get(name)
    if (id === undefined) {
      id = this.ids.size + 1
      this.ids.set(name, id)
      this.unsent.push([id, encode({ t: 'ref', module: FIXTURE, key: name, name })])
    }
    return id
  }
  take(): FunctionEntry[] | undefined {
    return this.unsent.length > 0 ? this.unsent.splice(0) : undefined
  }
}

/** A task envelope calling fixture export `name`, encoded as the HTEX client encodes it. */
export function fixtureTask(fns: Functions, id: number, name: string, args: unknown[] = [], tryNumber = 0): TaskEnvelope {
  const fn = { t: 'ref' as const, module: FIXTURE, key: name, name }
  return encodeTaskEnvelope({ id, try: tryNumber, appName: name, fn, kind: TaskKind.js, args, priority: 0 }, fns.id(name))
}

/** A raw client: a CURVE DEALER speaking protocol/endpoint.ts, recording what arrives. */
export class RawClient {
  readonly socket: Dealer
  readonly messages: EndpointToClient[] = []
  /** outcomes by session task id (results and failures), in arrival order of each id */
  readonly outcomes = new Map<number, Outcome[]>()
  readonly fns = new Functions()
  readonly authFailures: string[] = []
  private req = 0
  private closed = false
  private beat: NodeJS.Timeout | undefined

  constructor(t: Test, port: number, keys: { publicKey: string; secretKey: string }, serverPublicKey: string, options: { linger?: number } = {}) {
    this.socket = new Dealer({ linger: options.linger ?? 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 })
    this.socket.curveServerKey = serverPublicKey
    this.socket.curvePublicKey = keys.publicKey
    this.socket.curveSecretKey = keys.secretKey
    this.socket.events.on('handshake:error:auth', (event) => this.authFailures.push(event.error.message))
    this.socket.connect(`tcp://127.0.0.1:${port}`)
    t.teardown(() => this.close())
    void this.receive()
  }

  async send(message: Record<string, unknown>): Promise<void> {
    await this.socket.send(encodeMessage(message as never))
  }

  async hello(session: string, resume = false): Promise<Extract<EndpointToClient, { t: 'ep_welcome' }>> {
    const from = this.messages.length
    await this.send({ t: 'ep_hello', session, client: `test-${process.pid}`, resume, ...stamp() })
    const reply = await this.next((m) => m.t === 'ep_welcome' || m.t === 'refused', from)
    if (reply.t === 'refused') throw new Error(`refused: ${reply.reason}`)
    // A live client says so (the endpoint's threshold is 3 s in these tests). Only after the
    // welcome: a heartbeat sent before ep_hello is refused, and on a loaded machine that refusal
    // could be taken for the hello's answer.
    this.beat ??= setInterval(() => void this.send({ t: 'heartbeat' }).catch(() => {}), 300)
    return reply as Extract<EndpointToClient, { t: 'ep_welcome' }>
  }

  async submit(tasks: TaskEnvelope[]): Promise<void> {
    const fns = this.fns.take()
    await this.send(fns ? { t: 'submit', tasks, fns } : { t: 'submit', tasks })
  }

  async ack(ids: number[]): Promise<void> {
    const tries = ids.map((id) => this.outcomes.get(id)!.at(-1)!.try)
    await this.send({ t: 'ack', ids, tries })
  }

  async status() {
    const req = ++this.req
    const from = this.messages.length
    await this.send({ t: 'status', req })
    const reply = await this.next((m) => m.t === 'ep_status' && m.req === req, from)
    return (reply as Extract<EndpointToClient, { t: 'ep_status' }>).status
  }

  /** The first message from index `from` on that satisfies `match`. */
  async next(match: (m: EndpointToClient) => boolean, from = 0, timeoutMs = 20_000): Promise<EndpointToClient> {
    let found: EndpointToClient | undefined
    await waitFor(() => (found = this.messages.slice(from).find(match)) !== undefined, 'a message from the endpoint', timeoutMs)
    return found!
  }

  /** How many outcomes arrived in all (duplicates counted). */
  get outcomeCount(): number {
    let n = 0
    for (const list of this.outcomes.values()) n += list.length
    return n
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.beat)
    this.socket.close()
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        const message = decodeMessage<EndpointToClient>(frames, ENDPOINT_ACCEPTED.clientFromEndpoint)
        this.messages.push(message)
        if (message.t === 'results') {
          for (const envelope of message.results) {
            const result = fromResultTuple(decode(envelope.payload))
            const outcome: Outcome = result.ok ? { ok: true, value: result.value, try: envelope.try } : { ok: false, error: decodeError(result.error!) as Outcome['error'], try: envelope.try }
            this.record(envelope.id, outcome)
          }
        } else if (message.t === 'failed') {
          for (const failure of message.failures) this.record(failure.id, { ok: false, error: decodeError(failure.error) as Outcome['error'], try: failure.try })
        }
      }
    } catch (error) {
      if (!this.closed) throw error
    }
  }

  private record(id: number, outcome: Outcome): void {
    const list = this.outcomes.get(id)
    if (list) list.push(outcome)
    else this.outcomes.set(id, [outcome])
  }
}
