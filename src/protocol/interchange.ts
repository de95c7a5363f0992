/**
 * The interchange boundary: what the HTEX client hands the interchange process it spawns
 * (`tsflow-interchange`), in the spirit of Parsl's `interchange_config`. One table: its
 * defaults, checks and flags; the client encodes with `interchangeSpec.encode`, the process
 * decodes with `interchangeSpec.decode`, tests use the same two.
 *
 * The heartbeat defaults live here once: the client, the interchange and the managers all
 * default to them (a manager follows the interchange's values, sent in `registered`).
 */
import { ConfigError } from '../errors.js'
import { integer, oneOf, string } from '../util/schema.js'
import { LOG_LEVELS, type LogLevel } from '../util/logger.js'
import { asNumber, defineArgvSpec, nonEmptyString, type Field, type ValuesOf } from './spec.js'

/** How often each side of a link sends a heartbeat, ms. */
export const DEFAULT_HEARTBEAT_PERIOD_MS = 2000
/** Silence after which a peer counts as gone, ms. */
export const DEFAULT_HEARTBEAT_THRESHOLD_MS = 10_000

/**
 * How the interchange picks the manager for queued tasks: 'packed' fills managers of blocks that
 * already have work first (idle blocks stay idle and can be released); 'spread' serves managers
 * round robin (work spreads over every block).
 */
export const MANAGER_SELECTORS = ['packed', 'spread'] as const
export type ManagerSelectorName = (typeof MANAGER_SELECTORS)[number]
export const DEFAULT_MANAGER_SELECTOR: ManagerSelectorName = 'packed'

/**
 * A task with a declared walltime is sent only to a manager whose block has at least its walltime
 * plus this margin left; a manager lost within this margin of its block's end (or later) was
 * taken by the walltime. ms.
 */
export const DEFAULT_WALLTIME_MARGIN_MS = 5000

export const walltimeMarginField: Field<number> = {
  flag: 'walltime-margin',
  arg: 'MS',
  check: integer(0, 86_400_000, 'a whole number of ms from 0 to 86400000'),
  parse: asNumber,
  help: `a task must end this long before its block [${DEFAULT_WALLTIME_MARGIN_MS}]`,
}

/** The two heartbeat fields, shared by every spec and by the HTEX options. */
export const heartbeatFields = {
  heartbeatPeriodMs: {
    flag: 'heartbeat-period',
    arg: 'MS',
    check: integer(10, 3_600_000, 'a whole number of ms from 10 to 3600000'),
    parse: asNumber,
    help: `heartbeat period                          [${DEFAULT_HEARTBEAT_PERIOD_MS}]`,
  } as Field<number>,
  heartbeatThresholdMs: {
    flag: 'heartbeat-threshold',
    arg: 'MS',
    check: integer(20, 86_400_000, 'a whole number of ms from 20 to 86400000'),
    parse: asNumber,
    help: `silence after which a peer is gone        [${DEFAULT_HEARTBEAT_THRESHOLD_MS}]`,
  } as Field<number>,
}

/** The threshold must exceed the period, or every peer would be declared lost between beats. */
export function checkHeartbeats(
  values: { heartbeatPeriodMs?: number | undefined; heartbeatThresholdMs?: number | undefined },
  at: (key: 'heartbeatThresholdMs') => string,
): void {
  const period = values.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS
  const threshold = values.heartbeatThresholdMs ?? DEFAULT_HEARTBEAT_THRESHOLD_MS
  if (threshold <= period) {
    throw new ConfigError(at('heartbeatThresholdMs'), `(${threshold} ms) must be longer than the heartbeat period (${period} ms); use at least twice the period`)
  }
}

const port: Field<number> = { flag: '', arg: 'N', check: integer(0, 65535, 'a port number from 0 to 65535 (0: chosen by the OS)'), parse: asNumber, help: '' }

export const logLevelField: Field<LogLevel> = {
  flag: 'log-level',
  arg: 'LEVEL',
  check: oneOf(...LOG_LEVELS) as (value: unknown, path: string) => LogLevel,
  help: `${LOG_LEVELS.join(' | ')}                [info]`,
}

export const interchangeSpec = defineArgvSpec(
  'tsflow-interchange',
  {
    clientAddress: { flag: 'client-address', arg: 'ADDR', check: nonEmptyString, help: 'address of the client (executor) port     [127.0.0.1]' } as Field<string>,
    clientPort: { ...port, flag: 'client-port', help: 'port for the client; 0 = chosen by the OS [0]' },
    workerAddress: { flag: 'worker-address', arg: 'ADDR', check: nonEmptyString, help: 'address of the manager port               [127.0.0.1]' } as Field<string>,
    workerPort: { ...port, flag: 'worker-port', help: 'port for managers; 0 = chosen by the OS   [0]' },
    curveDir: { flag: 'curve-dir', arg: 'DIR', check: nonEmptyString, help: 'CURVE key directory: encrypt and admit only the client key' } as Field<string>,
    ...heartbeatFields,
    logDir: { flag: 'log-dir', arg: 'DIR', check: nonEmptyString, help: 'write DIR/interchange.log                 [no log]' } as Field<string>,
    logLevel: logLevelField,
    runId: { flag: 'run-id', arg: 'ID', check: string, help: 'run id, for log lines' } as Field<string>,
    managerSelector: {
      flag: 'manager-selector',
      arg: MANAGER_SELECTORS.join('|'),
      check: oneOf(...MANAGER_SELECTORS) as (value: unknown, path: string) => ManagerSelectorName,
      help: `which manager gets tasks first            [${DEFAULT_MANAGER_SELECTOR}]`,
    } as Field<ManagerSelectorName>,
    walltimeMarginMs: walltimeMarginField,
    metricsPort: { ...port, flag: 'metrics-port', help: 'Prometheus /metrics port; 0 = a free port [off]' },
    metricsAddress: { flag: 'metrics-address', arg: 'ADDR', check: nonEmptyString, help: 'address of the metrics port               [127.0.0.1]' } as Field<string>,
  },
  checkHeartbeats,
)

/** What the interchange process is started with; every field is optional (defaults above). */
export type InterchangeSpec = ValuesOf<typeof interchangeSpec.fields>

export const INTERCHANGE_DEFAULTS = {
  clientAddress: '127.0.0.1',
  clientPort: 0,
  workerAddress: '127.0.0.1',
  workerPort: 0,
  heartbeatPeriodMs: DEFAULT_HEARTBEAT_PERIOD_MS,
  heartbeatThresholdMs: DEFAULT_HEARTBEAT_THRESHOLD_MS,
  logLevel: 'info' as LogLevel,
  managerSelector: DEFAULT_MANAGER_SELECTOR,
  walltimeMarginMs: DEFAULT_WALLTIME_MARGIN_MS,
} as const

/** The one line of JSON the interchange prints on stdout once its ports are bound. */
export interface InterchangeHandshake {
  clientPort: number
  workerPort: number
  /** the Prometheus metrics port, present when `metricsPort` was given */
  metricsPort?: number
}

export function decodeHandshake(line: string): InterchangeHandshake {
  const ports = JSON.parse(line) as InterchangeHandshake
  if (!Number.isInteger(ports.clientPort) || !Number.isInteger(ports.workerPort)) throw new Error('no ports in the handshake line')
  if (ports.metricsPort !== undefined && !Number.isInteger(ports.metricsPort)) throw new Error('a metrics port that is not a port in the handshake line')
  return { clientPort: ports.clientPort, workerPort: ports.workerPort, ...(ports.metricsPort !== undefined ? { metricsPort: ports.metricsPort } : {}) }
}

export function encodeHandshake(ports: InterchangeHandshake): string {
  const metrics = ports.metricsPort !== undefined ? { metricsPort: ports.metricsPort } : {}
  return `${JSON.stringify({ clientPort: ports.clientPort, workerPort: ports.workerPort, ...metrics })}\n`
}
