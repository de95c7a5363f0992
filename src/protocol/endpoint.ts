/**
 * The endpoint boundary (issue 10): a long-lived endpoint, started once with
 * `npx tsflow endpoint start <name>`, serves many clients (`EndpointExecutor`, `EndpointClient`)
 * that may run anywhere. This module is its one spec: the files of an endpoint's directory, the
 * daemon's command line, the state file it writes when ready, the client <-> endpoint messages,
 * and the defaults both sides use.
 *
 * Socket layout: the endpoint binds a ROUTER for clients (CURVE server; a ZAP allow-list of
 * client public keys: an unknown key is refused at the handshake and logged) and, like the HTEX
 * interchange, a ROUTER for its managers. A client connects a DEALER with its own key pair and the
 * endpoint's public key. Messages are framed by `encodeMessage` / `decodeMessage`
 * (protocol/messages.ts): `submit` and `results` carry their payloads as frames of their own.
 *
 * Sessions: a client names a session (random by default) in `ep_hello`. Task ids in `submit`,
 * `cancel`, `ack`, `results`, `failed` and `dispatched` are the session's own ids; the endpoint
 * maps them to its interchange's ids and back. The endpoint keeps each finished task's result
 * until the client acknowledges it (`ack`) or `resultTtlMs` passes, so a client that disconnects
 * and says `ep_hello` again with `resume: true` (the same process after a network loss, or a new
 * process naming the same session) is sent every result it has not acknowledged. Function ids
 * are per session too.
 *
 * The endpoint forwards result payloads without decoding them, so the [id, try, ...] tuple inside
 * a payload holds the endpoint's own interchange id: a client takes a result's task id and try
 * from its envelope (`results[i].id`, `results[i].try`), never from the decoded payload.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { integer } from '../util/schema.js'
import type { EncodedError } from '../serialize/errors.js'
import type { DispatchNotice, FunctionEntry, ManagerInfo, ResultEnvelope, TaskEnvelope, VersionStamp } from './messages.js'
import { asNumber, defineArgvSpec, nonEmptyString, type Field, type ValuesOf } from './spec.js'
import { logLevelField } from './interchange.js'

// ---- where endpoints live

/** `$TSFLOW_HOME`, default `~/.tsflow`: endpoints, the client key pair. */
export function tsflowHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.TSFLOW_HOME && env.TSFLOW_HOME.trim() ? env.TSFLOW_HOME : join(homedir(), '.tsflow')
}

/** Endpoint names: what may appear in a directory name and a log line. */
export const ENDPOINT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * The files of one endpoint, `$TSFLOW_HOME/endpoints/<name>/`:
 *   config.json       what it runs (endpoint/config.ts validates it, errors name `config.json: provider.type`)
 *   allowed_clients   client public keys (z85, one per line, `#` comments) the endpoint admits
 *   curve/            its key pair (server.public / server.secret) and its managers' pair (client.*)
 *   endpoint.json     written (atomically) once it listens, removed when it stops: EndpointState
 *   endpoint.pid      the daemon's pid while it runs
 *   endpoint.log      its log (appended), interchange, provider and strategy lines included
 *   runs/<start>/     per start: submit_scripts, manager logs
 */
export function endpointPaths(name: string, home = tsflowHome()) {
  const dir = join(home, 'endpoints', name)
  return {
    dir,
    config: join(dir, 'config.json'),
    allowedClients: join(dir, 'allowed_clients'),
    curveDir: join(dir, 'curve'),
    state: join(dir, 'endpoint.json'),
    pid: join(dir, 'endpoint.pid'),
    log: join(dir, 'endpoint.log'),
    runs: join(dir, 'runs'),
  }
}
export type EndpointPaths = ReturnType<typeof endpointPaths>

/**
 * The client's own key pair, `$TSFLOW_HOME/client/` (`client.public`, `client.secret`, mode
 * 0600), made on first use; `npx tsflow endpoint keys` prints the public key to put on an
 * endpoint's allow-list.
 */
export function clientKeyDir(home = tsflowHome()): string {
  return join(home, 'client')
}

/** What `endpoint.json` holds while the endpoint runs: everything a client on this host needs to connect. */
export interface EndpointState {
  name: string
  pid: number
  host: string
  /** address the client port is bound to (0.0.0.0 for remote clients) */
  clientAddress: string
  clientPort: number
  /** address and port managers connect to */
  workerAddress: string
  workerPort: number
  /** the endpoint's CURVE public key (z85), which clients must know */
  serverPublicKey: string
  /** ms since epoch */
  startedAt: number
  version: string
  proto: number
  log: string
  runDir: string
  /** the interchange's Prometheus endpoint, when config.json sets `metricsPort` */
  metricsUrl?: string
}

// ---- defaults

export const ENDPOINT_DEFAULTS = {
  /** how long a finished task's result waits for its client's ack, ms (1 h) */
  resultTtlMs: 3_600_000,
  /** the most unacknowledged result bytes kept per session; past it the oldest are dropped (logged) */
  maxRetainedBytesPerSession: 1024 * 1024 * 1024,
  /** a session with no connected client and nothing outstanding or retained is forgotten after this, ms */
  sessionIdleMs: 3_600_000,
  /** how long a client keeps reconnecting while tasks are outstanding before failing them, ms */
  reconnectTimeoutMs: 60_000,
  /** how long a client waits for `ep_welcome`, ms */
  helloTimeoutMs: 10_000,
  /** how long `tsflow endpoint start` waits for endpoint.json, ms */
  startTimeoutMs: 30_000,
  /** how long `tsflow endpoint stop` waits for a clean stop before SIGKILL, ms */
  stopTimeoutMs: 15_000,
  clientAddress: '127.0.0.1',
  clientPort: 0,
} as const

// ---- the daemon's command line (`tsflow-endpoint`, spawned detached by `tsflow endpoint start`)

export const endpointDaemonSpec = defineArgvSpec('tsflow-endpoint', {
  name: { flag: 'name', arg: 'NAME', check: nonEmptyString, help: 'the endpoint name (its directory under $TSFLOW_HOME/endpoints)' } as Field<string>,
  home: { flag: 'home', arg: 'DIR', check: nonEmptyString, help: 'TSFLOW_HOME                                [~/.tsflow]' } as Field<string>,
  logLevel: logLevelField,
  readyFd: {
    flag: 'ready-fd',
    arg: 'FD',
    check: integer(0, 1024, 'a file descriptor number'),
    parse: asNumber,
    help: 'write one line (EndpointState JSON or {"error": ...}) here when ready, then close it',
  } as Field<number>,
})
export type EndpointDaemonSpec = ValuesOf<typeof endpointDaemonSpec.fields>

// ---- messages

/** What `status` reports: managers, workers, queued and running tasks, sessions. */
export interface EndpointStatus {
  name: string
  pid: number
  version: string
  startedAt: number
  /** tasks waiting in the interchange for a worker */
  queued: number
  /** tasks handed to managers and not finished */
  running: number
  managers: ManagerInfo[]
  /** total workers of connected managers */
  workers: number
  blocks: { blockId: string; state: string; jobId?: string }[]
  sessions: { session: string; client: string; connected: boolean; outstanding: number; retained: number; lastSeen: number }[]
  totals: { tasksReceived: number; resultsSent: number; failures: number; managersLost: number }
}

// client -> endpoint
export type EndpointClientMessage =
  /** opens (or, with resume, resumes) a session; `client` is a label for logs (host, pid) */
  | ({ t: 'ep_hello'; session: string; client: string; resume?: boolean } & VersionStamp)
  /** ids are the session's own; `fns` as in messages.ts, ids per session */
  | { t: 'submit'; tasks: TaskEnvelope[]; fns?: FunctionEntry[] }
  | { t: 'cancel'; ids: number[] }
  /** results (and failures) received: the endpoint forgets them */
  | { t: 'ack'; ids: number[]; tries: number[] }
  | { t: 'status'; req: number }
  | { t: 'heartbeat' }
  /** the client leaves for good: `forget` cancels its queued tasks and drops retained results */
  | { t: 'bye'; forget: boolean }

// endpoint -> client
export type EndpointToClient =
  | ({
      t: 'ep_welcome'
      endpoint: string
      session: string
      /** the session's tasks not yet finished (after resume: those the client may still wait for) */
      outstanding: number[]
      /** finished and unacknowledged results about to be resent */
      retained: number
      heartbeatPeriodMs: number
      heartbeatThresholdMs: number
      resultTtlMs: number
    } & VersionStamp)
  | { t: 'refused'; reason: string }
  | { t: 'results'; results: ResultEnvelope[]; dispatched?: DispatchNotice }
  | { t: 'failed'; failures: { id: number; try: number; error: EncodedError }[] }
  | ({ t: 'dispatched' } & DispatchNotice)
  | { t: 'ep_status'; req: number; status: EndpointStatus }
  | { t: 'heartbeat' }
  /** the endpoint is stopping; queued and running tasks of the session arrive as `failed` (EndpointStopped) first */
  | { t: 'stopping'; reason: string }

export const ENDPOINT_ACCEPTED = {
  endpointFromClient: new Set<string>(['ep_hello', 'submit', 'cancel', 'ack', 'status', 'heartbeat', 'bye']),
  clientFromEndpoint: new Set<string>(['ep_welcome', 'refused', 'results', 'failed', 'dispatched', 'ep_status', 'heartbeat', 'stopping']),
} as const
