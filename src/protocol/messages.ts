import { ProtocolError, VersionMismatch } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'
import type { EncodedError } from '../serialize/errors.js'
import type { ResourceSpec } from './resources.js'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from './version.js'

/**
 * Every message of the high-throughput executor, between the executor (client), the
 * interchange and the managers. A message is one ZeroMQ multipart message: a msgpack header,
 * followed, for messages that carry tasks or results, by one frame per payload.
 *
 * Task arguments and results travel as opaque `payload` bytes: the interchange routes them
 * without decoding them, so its cost per task does not grow with argument size.
 *   - task payload   = encode(TaskPayload)  (see below; decoded only on the manager)
 *   - result payload = encode(ResultWire)   (see protocol/task.ts; decoded only in the client)
 *
 * Socket layout: the interchange binds two ROUTER sockets, one for the client and one for
 * managers; the client and each manager connect a DEALER (a manager's routing id is its
 * manager id). Many tasks or results travel in one message in both directions.
 */

export interface VersionStamp {
  /** PROTOCOL_VERSION of the sender */
  proto: number
  /** tsflow package version of the sender */
  version: string
}

/**
 * Payload bytes one message should carry at most. Batching many small tasks per message is what
 * makes tsflow fast; batching many large ones only makes huge messages that every hop must copy
 * whole, so senders start a new message past this size (a single larger task still goes alone).
 */
export const MAX_BATCH_PAYLOAD_BYTES = 1 << 20

/** A task as routed by the interchange: what it needs for scheduling, plus the opaque payload. */
export interface TaskEnvelope {
  id: number
  try: number
  /** priority, higher first (default 0) */
  pri?: number
  res?: ResourceSpec
  /** TaskKind of the payload, so the manager can schedule without decoding it */
  k?: number
  /** walltime in seconds, likewise */
  wt?: number
  /** app name, for errors the manager raises about the task */
  app?: string
  payload: Uint8Array
}

/** A result on its way back: `payload` is an encoded ResultWire. */
export interface ResultEnvelope {
  id: number
  try: number
  payload: Uint8Array
}

/** What is inside a task envelope's payload. */
export interface TaskPayload {
  fn: import('../serialize/function-ref.js').FunctionDescriptor
  task: import('./task.js').TaskWire
}

/** Tasks handed to managers: ids[i] at try tries[i]. */
export interface DispatchNotice {
  ids: number[]
  tries: number[]
}

export interface ManagerInfo {
  managerId: string
  host: string
  blockId: string
  workers: number
  /** tasks the manager may hold beyond one per worker */
  prefetch: number
  pid: number
  /** ms since epoch */
  registeredAt: number
  lastHeartbeat: number
  outstanding: number
  draining: boolean
  /** accelerator ids the manager hands out, one per worker */
  accelerators?: string[]
}

// ---- client -> interchange
export type ClientMessage =
  | ({ t: 'client_hello'; clientId: string } & VersionStamp)
  | { t: 'submit'; tasks: TaskEnvelope[] }
  | { t: 'cancel'; ids: number[] }
  /** stop sending tasks to these blocks' managers; they exit when idle */
  | { t: 'drain'; blockIds: string[] }
  | { t: 'status'; req: number }
  | { t: 'heartbeat' }
  | { t: 'shutdown' }
  /** the provider saw this block end: its managers are gone, whatever their heartbeats say */
  | { t: 'block_ended'; blockId: string; reason: string }

// ---- interchange -> client
export type InterchangeToClient =
  | ({ t: 'ix_hello'; workerPort: number; clientPort: number } & VersionStamp)
  | { t: 'refused'; reason: string }
  /** results; `dispatched` names tasks handed to managers since the last notice (for 'running') */
  | { t: 'results'; results: ResultEnvelope[]; dispatched?: DispatchNotice }
  /** tasks that failed outside user code (manager lost, cancelled in queue, ...) */
  | { t: 'failed'; failures: { id: number; try: number; error: EncodedError }[] }
  | { t: 'manager'; event: 'registered' | 'lost' | 'drained' | 'refused'; info: ManagerInfo; reason?: string }
  /** tasks handed to managers, when no results message carried the notice within a few ms */
  | ({ t: 'dispatched' } & DispatchNotice)
  | { t: 'status_reply'; req: number; queued: number; managers: ManagerInfo[] }
  | { t: 'heartbeat' }

// ---- manager -> interchange
export type ManagerMessage =
  | ({
      t: 'register'
      /** tasks it takes now; default workers + prefetch (prefetch is then the most it will ask) */
      capacity?: number
    } & Pick<ManagerInfo, 'managerId' | 'host' | 'blockId' | 'workers' | 'prefetch' | 'pid' | 'accelerators'> &
      VersionStamp)
  /** results, and how many more tasks the manager can take now */
  | { t: 'results'; results: ResultEnvelope[]; capacity: number }
  /** capacity changed without results (start, worker replaced, ...) */
  | { t: 'ready'; capacity: number }
  | { t: 'heartbeat'; outstanding: number }
  /** the manager finished draining and is exiting */
  | { t: 'drained' }

// ---- interchange -> manager
export type InterchangeToManager =
  | { t: 'registered'; heartbeatPeriodMs: number; heartbeatThreshold: number }
  | { t: 'refused'; reason: string }
  | { t: 'tasks'; tasks: TaskEnvelope[] }
  | { t: 'cancel'; ids: number[] }
  | { t: 'drain' }
  | { t: 'heartbeat' }
  | { t: 'shutdown' }

export type AnyMessage = ClientMessage | InterchangeToClient | ManagerMessage | InterchangeToManager

/** The message kinds each receiver accepts; anything else is a protocol error. */
export const ACCEPTED = {
  interchangeFromClient: new Set<string>(['client_hello', 'submit', 'cancel', 'drain', 'status', 'heartbeat', 'shutdown', 'block_ended']),
  clientFromInterchange: new Set<string>(['ix_hello', 'refused', 'results', 'failed', 'manager', 'dispatched', 'status_reply', 'heartbeat']),
  interchangeFromManager: new Set<string>(['register', 'results', 'ready', 'heartbeat', 'drained']),
  managerFromInterchange: new Set<string>(['registered', 'refused', 'tasks', 'cancel', 'drain', 'heartbeat', 'shutdown']),
} as const

export function stamp(): VersionStamp {
  return { proto: PROTOCOL_VERSION, version: TSFLOW_VERSION }
}

/** The envelope list a message kind carries, whose payloads travel as frames of their own. */
function envelopeKey(kind: string): 'tasks' | 'results' | undefined {
  return kind === 'submit' || kind === 'tasks' ? 'tasks' : kind === 'results' ? 'results' : undefined
}

/**
 * Encodes a message as ZeroMQ frames: a msgpack header, then one frame per task or result
 * payload, in envelope order. Payload bytes are never copied into a bigger message: ZeroMQ
 * sends (and receives) frames zero-copy, and the interchange forwards them untouched.
 */
export function encodeMessage(message: AnyMessage): Uint8Array[] {
  const key = envelopeKey(message.t)
  const envelopes = key ? ((message as Record<string, unknown>)[key] as (TaskEnvelope | ResultEnvelope)[]) : undefined
  if (!key || !envelopes || envelopes.length === 0) return [encode(message)]
  const frames: Uint8Array[] = new Array(envelopes.length + 1)
  const stripped = new Array(envelopes.length)
  for (let i = 0; i < envelopes.length; i++) {
    const { payload, ...rest } = envelopes[i]!
    stripped[i] = rest
    frames[i + 1] = payload
  }
  frames[0] = encode({ ...message, [key]: stripped })
  return frames
}

/**
 * Decodes one message from its frames (a header and its payload frames) and checks it is a
 * message `accepted` allows, with the fields its kind needs. Throws ProtocolError naming what was
 * wrong; callers log and drop such messages.
 */
export function decodeMessage<M extends AnyMessage>(frames: Uint8Array | readonly Uint8Array[], accepted: ReadonlySet<string>): M {
  const list = frames instanceof Uint8Array ? [frames] : frames
  const header = list[0]
  if (!header) throw new ProtocolError('empty message (no frames)')
  let message: unknown
  try {
    message = decode(header)
  } catch (error) {
    throw new ProtocolError(`undecodable frame of ${header.length} bytes`, { cause: error })
  }
  if (typeof message !== 'object' || message === null || typeof (message as { t?: unknown }).t !== 'string') {
    throw new ProtocolError(`frame of ${header.length} bytes is not a tsflow message (no 't' field)`)
  }
  const kind = (message as { t: string }).t
  if (!accepted.has(kind)) throw new ProtocolError(`unexpected message kind '${kind}'`)
  const key = envelopeKey(kind)
  const items = key ? (message as Record<string, unknown>)[key] : undefined
  if (key && Array.isArray(items)) {
    if (items.length !== list.length - 1) {
      throw new ProtocolError(`malformed '${kind}' message: it lists ${items.length} ${key} but carries ${list.length - 1} payload frames`)
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as Record<string, unknown> | null
      if (typeof item === 'object' && item !== null) item.payload = list[i + 1]
    }
  } else if (list.length > 1) {
    throw new ProtocolError(`malformed '${kind}' message: ${list.length - 1} unexpected extra frames`)
  }
  const problem = shapeProblem(kind, message as Record<string, unknown>, accepted)
  if (problem) throw new ProtocolError(`malformed '${kind}' message: ${problem}`)
  return message as M
}

/** Throws VersionMismatch unless the stamp matches this process. */
export function checkVersion(peer: string, theirs: VersionStamp): void {
  if (theirs.proto !== PROTOCOL_VERSION || theirs.version !== TSFLOW_VERSION) {
    throw new VersionMismatch(peer, { protocol: theirs.proto, version: theirs.version }, { protocol: PROTOCOL_VERSION, version: TSFLOW_VERSION })
  }
}

type FieldType = 'string' | 'number' | 'array' | 'object' | 'numbers'

// Required fields per message kind. `results` and `heartbeat` need more when a manager sends them.
const REQUIRED: Record<string, [string, FieldType][]> = {
  client_hello: [['clientId', 'string'], ['proto', 'number'], ['version', 'string']],
  register: [['managerId', 'string'], ['host', 'string'], ['blockId', 'string'], ['workers', 'number'], ['prefetch', 'number'], ['pid', 'number'], ['proto', 'number'], ['version', 'string']],
  ix_hello: [['proto', 'number'], ['version', 'string'], ['workerPort', 'number'], ['clientPort', 'number']],
  refused: [['reason', 'string']],
  submit: [['tasks', 'array']],
  tasks: [['tasks', 'array']],
  results: [['results', 'array']],
  cancel: [['ids', 'numbers']],
  ready: [['capacity', 'number']],
  failed: [['failures', 'array']],
  status: [['req', 'number']],
  block_ended: [['blockId', 'string'], ['reason', 'string']],
  status_reply: [['req', 'number'], ['queued', 'number'], ['managers', 'array']],
  manager: [['event', 'string'], ['info', 'object']],
  dispatched: [['ids', 'numbers'], ['tries', 'numbers']],
  registered: [['heartbeatPeriodMs', 'number'], ['heartbeatThreshold', 'number']],
}
const FROM_MANAGER: Record<string, [string, FieldType][]> = {
  results: [['capacity', 'number']],
  heartbeat: [['outstanding', 'number']],
}

function fieldProblem(m: Record<string, unknown>, field: string, type: FieldType): string | undefined {
  const value = m[field]
  switch (type) {
    case 'array':
      return Array.isArray(value) ? undefined : `field '${field}' must be an array`
    case 'numbers':
      return Array.isArray(value) && value.every((item) => typeof item === 'number') ? undefined : `field '${field}' must be an array of numbers`
    case 'object':
      return typeof value === 'object' && value !== null ? undefined : `field '${field}' must be an object`
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) ? undefined : `field '${field}' must be a number`
    default:
      return typeof value === type ? undefined : `field '${field}' must be a ${type}`
  }
}

function shapeProblem(kind: string, m: Record<string, unknown>, accepted: ReadonlySet<string>): string | undefined {
  const required = [...(REQUIRED[kind] ?? []), ...(accepted === ACCEPTED.interchangeFromManager ? (FROM_MANAGER[kind] ?? []) : [])]
  for (const [field, type] of required) {
    const problem = fieldProblem(m, field, type)
    if (problem) return problem
  }
  if (kind === 'drain' && m.blockIds !== undefined) return fieldProblem(m, 'blockIds', 'array')
  if (kind === 'submit' || kind === 'tasks') return envelopesProblem(m.tasks as unknown[])
  if (kind === 'results') return envelopesProblem(m.results as unknown[])
  if (kind === 'failed') {
    for (const [i, failure] of (m.failures as unknown[]).entries()) {
      const f = failure as Record<string, unknown> | null
      if (typeof f !== 'object' || f === null || typeof f.id !== 'number' || typeof f.try !== 'number' || typeof f.error !== 'object' || f.error === null) {
        return `failure ${i} needs numeric id and try and an error object`
      }
    }
  }
  return undefined
}

function envelopesProblem(items: unknown[]): string | undefined {
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Record<string, unknown> | null
    if (typeof item !== 'object' || item === null) return `entry ${i} is not an object`
    if (typeof item.id !== 'number' || typeof item.try !== 'number') return `entry ${i} has no numeric id/try`
    if (!(item.payload instanceof Uint8Array)) return `entry ${i} has no payload bytes`
  }
  return undefined
}
