import { ProtocolError, VersionMismatch } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'
import type { EncodedError } from '../serialize/errors.js'
import type { ResourceSpec } from './resources.js'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from './version.js'
import type { EndpointClientMessage, EndpointToClient } from './endpoint.js'

/**
 * Every message of the high-throughput executor, between the executor (client), the
 * interchange and the managers. A message is one ZeroMQ multipart message: a msgpack header,
 * followed, for messages that carry tasks or results, by one frame per payload.
 *
 * Task arguments and results travel as opaque `payload` bytes: the interchange routes them
 * without decoding them, so its cost per task does not grow with argument size.
 *   - task payload   = encode(TaskArgsWire)  (protocol/task.ts; decoded only by the worker)
 *   - result payload = encode(ResultTupleWire) (protocol/task.ts; decoded only in the client)
 * Everything else about a task (id, try, kind, walltime, function) is in its envelope, once: the
 * function itself travels once per executor in a function table (`fns`, below), and envelopes
 * name it by id.
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

export { MAX_BATCH_PAYLOAD_BYTES } from './split.js'

/** A task as routed by the interchange: what it needs for scheduling, plus the opaque payload. */
export interface TaskEnvelope {
  id: number
  try: number
  /** the task's function: an id of the function table (FunctionEntry) sent before or with it */
  f: number
  /** TaskKind, so the manager schedules without decoding the payload */
  k: number
  /** walltime in seconds, likewise */
  wt?: number
  /** priority, higher first (default 0) */
  pri?: number
  res?: ResourceSpec
  /** encode(TaskArgsWire) */
  payload: Uint8Array
}

/** A result on its way back: `payload` is an encoded ResultTupleWire. */
export interface ResultEnvelope {
  id: number
  try: number
  payload: Uint8Array
}

/**
 * One function of the function table: its id (chosen by the client, stable for the executor's
 * life) and encode(FunctionDescriptor). Each hop sends an entry to the next once, with the first
 * message whose tasks use it; the interchange keeps the bytes without decoding them.
 */
export type FunctionEntry = [id: number, descriptor: Uint8Array]

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
  /** when the manager's block reaches its walltime (ms since epoch, interchange's clock); unset if unknown */
  endMs?: number
}

/**
 * What happened to a manager, as the interchange tells the client: `drained` (it finished a drain
 * and left) and `stopped` (it stopped for another reason it gave, or the interchange shut down)
 * are clean stops; `lost` names why (missed heartbeats, its block ended, registered again).
 */
export type ManagerEventWire = 'registered' | 'lost' | 'drained' | 'stopped' | 'refused'

/**
 * One resource sample of one running task, as managers take it from /proc (docs/monitoring.md
 * "Resource sampling and manager events"): CPU seconds and bytes count from the try's first
 * sample; RSS is the worker process's now (process-wide in thread mode).
 */
export type ResourceSampleWire = [id: number, tryNumber: number, cpuUserS: number, cpuSystemS: number, rssBytes: number, readBytes: number, writeBytes: number]
export const RESOURCE_SAMPLE_FIELDS = 7

// ---- client -> interchange
export type ClientMessage =
  | ({ t: 'client_hello'; clientId: string } & VersionStamp)
  | { t: 'submit'; tasks: TaskEnvelope[]; fns?: FunctionEntry[] }
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
  | { t: 'manager'; event: ManagerEventWire; info: ManagerInfo; reason?: string }
  /** one manager's resource samples of one interval, forwarded as they came (monitoring on only) */
  | { t: 'resources'; managerId: string; host: string; timeMs: number; samples: ResourceSampleWire[] }
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
      /** ms its block has left before its walltime, when known (a duration: node clocks may differ) */
      leftMs?: number
    } & Pick<ManagerInfo, 'managerId' | 'host' | 'blockId' | 'workers' | 'prefetch' | 'pid' | 'accelerators'> &
      VersionStamp)
  /** results, and how many more tasks the manager can take now */
  | { t: 'results'; results: ResultEnvelope[]; capacity: number }
  /** capacity changed without results (start, worker replaced, ...) */
  | { t: 'ready'; capacity: number }
  | { t: 'heartbeat'; outstanding: number }
  /** the manager finished draining and is exiting */
  | { t: 'drained' }
  /** the manager stops for another reason (a signal, a fatal error): its last message */
  | { t: 'stopping'; reason: string }
  /** samples of the tasks running at one sampling tick (ms since the epoch, the manager's clock) */
  | { t: 'resources'; timeMs: number; samples: ResourceSampleWire[] }

// ---- interchange -> manager
export type InterchangeToManager =
  | { t: 'registered'; heartbeatPeriodMs: number; heartbeatThreshold: number }
  | { t: 'refused'; reason: string }
  | { t: 'tasks'; tasks: TaskEnvelope[]; fns?: FunctionEntry[] }
  | { t: 'cancel'; ids: number[] }
  | { t: 'drain' }
  | { t: 'heartbeat' }
  | { t: 'shutdown' }

export type AnyMessage = ClientMessage | InterchangeToClient | ManagerMessage | InterchangeToManager | EndpointClientMessage | EndpointToClient

/** The message kinds each receiver accepts; anything else is a protocol error. */
export const ACCEPTED = {
  interchangeFromClient: new Set<string>(['client_hello', 'submit', 'cancel', 'drain', 'status', 'heartbeat', 'shutdown', 'block_ended']),
  clientFromInterchange: new Set<string>(['ix_hello', 'refused', 'results', 'failed', 'manager', 'resources', 'dispatched', 'status_reply', 'heartbeat']),
  interchangeFromManager: new Set<string>(['register', 'results', 'ready', 'heartbeat', 'drained', 'stopping', 'resources']),
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
 * Payloads below this size share frames with their neighbours: one copy into a joint frame costs
 * far less than a ZeroMQ frame per task at every hop. Larger payloads travel as frames of their
 * own, never copied into a bigger message.
 */
const JOINT_PAYLOAD_BYTES = 16 * 1024

/**
 * Encodes a message as ZeroMQ frames: a msgpack header, then the task or result payloads in
 * envelope order, small ones joined into shared frames and large ones alone. Each envelope in the
 * header carries its payload's length `n`; a payload never spans two frames. ZeroMQ sends (and
 * receives) frames zero-copy, and the interchange forwards payloads without decoding them.
 */
export function encodeMessage(message: AnyMessage): Uint8Array[] {
  const key = envelopeKey(message.t)
  const envelopes = key ? ((message as Record<string, unknown>)[key] as (TaskEnvelope | ResultEnvelope)[]) : undefined
  if (!key || !envelopes || envelopes.length === 0) return [encode(message)]
  const frames: Uint8Array[] = [new Uint8Array(0)]
  const stripped = new Array(envelopes.length)
  let joint: Uint8Array[] = []
  let jointBytes = 0
  for (let i = 0; i < envelopes.length; i++) {
    const envelope = envelopes[i]!
    const payload = envelope.payload
    const n = payload.byteLength
    stripped[i] = key === 'tasks' ? taskHeader(envelope as TaskEnvelope, n) : { id: envelope.id, try: envelope.try, n }
    if (n < JOINT_PAYLOAD_BYTES) {
      joint.push(payload)
      jointBytes += n
      continue
    }
    if (joint.length > 0) frames.push(Buffer.concat(joint, jointBytes))
    joint = []
    jointBytes = 0
    frames.push(payload)
  }
  if (joint.length > 0) frames.push(joint.length === 1 ? joint[0]! : Buffer.concat(joint, jointBytes))
  frames[0] = encode({ ...message, [key]: stripped })
  return frames
}

/** A task envelope without its payload, as the header lists it (a literal: spreads cost ~50x more). */
function taskHeader(task: TaskEnvelope, n: number): Record<string, unknown> {
  const header: Record<string, unknown> = { id: task.id, try: task.try, f: task.f, k: task.k, n }
  if (task.wt !== undefined) header.wt = task.wt
  if (task.pri !== undefined) header.pri = task.pri
  if (task.res !== undefined) header.res = task.res
  return header
}

/**
 * Decodes one message from its frames (a header and its payload frames) and checks it is a
 * message `accepted` allows, with the fields its kind needs. Throws ProtocolError naming what was
 * wrong; callers log and drop such messages. Payloads are views into the received frames.
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
  if (key && Array.isArray(items) && items.length > 0) {
    const problem = attachPayloads(items, list)
    if (problem) throw new ProtocolError(`malformed '${kind}' message: ${problem}`)
  } else if (list.length > 1) {
    throw new ProtocolError(`malformed '${kind}' message: ${list.length - 1} unexpected extra frames`)
  }
  const problem = shapeProblem(kind, message as Record<string, unknown>, accepted)
  if (problem) throw new ProtocolError(`malformed '${kind}' message: ${problem}`)
  return message as M
}

/** Gives each envelope its payload (a view) from the frames after the header; says what does not add up. */
function attachPayloads(items: unknown[], frames: readonly Uint8Array[]): string | undefined {
  let frame = 1
  let offset = 0
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Record<string, unknown> | null
    if (typeof item !== 'object' || item === null) return `entry ${i} is not an object`
    const n = item.n
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) return `entry ${i} has no payload length 'n'`
    while (frame < frames.length - 1 && offset === frames[frame]!.byteLength) {
      frame++
      offset = 0
    }
    const bytes = frames[frame]
    if (!bytes || offset + n > bytes.byteLength) return `its ${items.length} entries need more payload bytes than its ${frames.length - 1} frames carry`
    item.payload = bytes.subarray(offset, offset + n)
    offset += n
  }
  if (frame !== frames.length - 1 || offset !== frames[frame]!.byteLength) return `its ${frames.length - 1} payload frames carry bytes beyond its ${items.length} entries`
  return undefined
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
  resources: [['timeMs', 'number'], ['samples', 'array']],
  dispatched: [['ids', 'numbers'], ['tries', 'numbers']],
  registered: [['heartbeatPeriodMs', 'number'], ['heartbeatThreshold', 'number']],
  // endpoint <-> client (protocol/endpoint.ts)
  ep_hello: [['session', 'string'], ['client', 'string'], ['proto', 'number'], ['version', 'string']],
  ep_welcome: [['endpoint', 'string'], ['session', 'string'], ['outstanding', 'numbers'], ['retained', 'number'], ['proto', 'number'], ['version', 'string']],
  ack: [['ids', 'numbers'], ['tries', 'numbers']],
  ep_status: [['req', 'number'], ['status', 'object']],
  stopping: [['reason', 'string']],
}
const FROM_MANAGER: Record<string, [string, FieldType][]> = {
  results: [['capacity', 'number']],
  heartbeat: [['outstanding', 'number']],
}
const TO_CLIENT: Record<string, [string, FieldType][]> = {
  resources: [['managerId', 'string'], ['host', 'string']],
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
  const extra = accepted === ACCEPTED.interchangeFromManager ? FROM_MANAGER[kind] : accepted === ACCEPTED.clientFromInterchange ? TO_CLIENT[kind] : undefined
  const required = [...(REQUIRED[kind] ?? []), ...(extra ?? [])]
  for (const [field, type] of required) {
    const problem = fieldProblem(m, field, type)
    if (problem) return problem
  }
  if (kind === 'drain' && m.blockIds !== undefined) return fieldProblem(m, 'blockIds', 'array')
  if (kind === 'submit' || kind === 'tasks') return functionsProblem(m.fns) ?? envelopesProblem(m.tasks as unknown[], true)
  if (kind === 'results') return envelopesProblem(m.results as unknown[])
  if (kind === 'resources') {
    for (const [i, row] of (m.samples as unknown[]).entries()) {
      if (!Array.isArray(row) || row.length !== RESOURCE_SAMPLE_FIELDS || !row.every((n) => typeof n === 'number' && Number.isFinite(n))) {
        return `sample ${i} is not ${RESOURCE_SAMPLE_FIELDS} finite numbers`
      }
    }
  }
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

function functionsProblem(fns: unknown): string | undefined {
  if (fns === undefined) return undefined
  if (!Array.isArray(fns)) return "field 'fns' must be an array"
  for (const [i, entry] of fns.entries()) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'number' || !(entry[1] instanceof Uint8Array)) return `function table entry ${i} is not [id, bytes]`
  }
  return undefined
}

function envelopesProblem(items: unknown[], tasks = false): string | undefined {
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as Record<string, unknown> | null
    if (typeof item !== 'object' || item === null) return `entry ${i} is not an object`
    if (typeof item.id !== 'number' || typeof item.try !== 'number') return `entry ${i} has no numeric id/try`
    if (tasks && (typeof item.f !== 'number' || typeof item.k !== 'number')) return `task entry ${i} has no numeric function id 'f' and kind 'k'`
    if (!(item.payload instanceof Uint8Array)) return `entry ${i} has no payload bytes`
  }
  return undefined
}
