import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LOG_LEVELS, Logger, formatError, type LogLevel } from '../util/logger.js'
import { Interchange, type InterchangeOptions } from './interchange.js'
import { watchParentPipe } from '../transport/parent-watch.js'

/**
 * The command line of the interchange process (`tsflow-interchange`). The executor spawns it,
 * reads ONE line of JSON from its stdout -- {"clientPort":N,"workerPort":M} -- and connects.
 * After that line stdout stays quiet; logs go to DIR/interchange.log.
 */
export const USAGE = `usage: tsflow-interchange [options]

  --client-address ADDR        address of the client (executor) port     [127.0.0.1]
  --client-port N              port for the client; 0 = chosen by the OS [0]
  --worker-address ADDR        address of the manager port               [127.0.0.1]
  --worker-port N              port for managers; 0 = chosen by the OS   [0]
  --curve-dir DIR              CURVE key directory: encrypt and admit only the client key
  --heartbeat-period MS        heartbeat period                          [2000]
  --heartbeat-threshold MS     silence after which a peer is gone        [10000]
  --log-dir DIR                write DIR/interchange.log                 [no log]
  --log-level LEVEL            error | warn | info | debug               [info]
  --run-id ID                  run id, for log lines
  --help

On start it prints {"clientPort":N,"workerPort":M} as one line on stdout.
It exits when the client sends 'shutdown', goes silent for the heartbeat threshold,
or on SIGTERM/SIGINT; managers are told to shut down first.`

export class UsageError extends Error {}

export interface CliSettings {
  options: InterchangeOptions
  logDir?: string
  logLevel: LogLevel
}

export function parseCommandLine(argv: readonly string[]): CliSettings | 'help' {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'client-address': { type: 'string' },
        'client-port': { type: 'string' },
        'worker-address': { type: 'string' },
        'worker-port': { type: 'string' },
        'curve-dir': { type: 'string' },
        'heartbeat-period': { type: 'string' },
        'heartbeat-threshold': { type: 'string' },
        'log-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'run-id': { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  if (values.help) return 'help'
  const text = (name: string): string | undefined => {
    const value = values[name]
    if (value === '') throw new UsageError(`--${name} must not be empty`)
    return typeof value === 'string' ? value : undefined
  }
  const int = (name: string, min: number, max: number): number | undefined => {
    const raw = text(name)
    if (raw === undefined) return undefined
    const value = Number(raw)
    if (!/^\d+$/.test(raw) || value < min || value > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got '${raw}')`)
    return value
  }
  const logLevel = (text('log-level') ?? 'info') as LogLevel
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got '${logLevel}')`)
  const options: InterchangeOptions = {
    clientAddress: text('client-address'),
    clientPort: int('client-port', 0, 65535),
    workerAddress: text('worker-address'),
    workerPort: int('worker-port', 0, 65535),
    curveDir: text('curve-dir'),
    heartbeatPeriodMs: int('heartbeat-period', 1, 3_600_000),
    heartbeatThresholdMs: int('heartbeat-threshold', 1, 86_400_000),
    runId: text('run-id'),
  }
  const period = options.heartbeatPeriodMs ?? 2000
  const threshold = options.heartbeatThresholdMs ?? 10_000
  if (threshold <= period) {
    throw new UsageError(`--heartbeat-threshold (${threshold} ms) must be longer than --heartbeat-period (${period} ms)`)
  }
  return { options, logDir: text('log-dir'), logLevel }
}

/**
 * Runs the interchange until it stops. Returns the exit code; never calls process.exit, so the
 * bin decides (and a test can call this in-process).
 */
export async function runInterchangeCli(
  argv: readonly string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  let settings: CliSettings | 'help'
  try {
    settings = parseCommandLine(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr.write(`tsflow-interchange: ${error.message}\n\n${USAGE}\n`)
    return 2
  }
  if (settings === 'help') {
    io.stdout.write(`${USAGE}\n`)
    return 0
  }
  const logger = new Logger('interchange', settings.logLevel, settings.logDir ? join(settings.logDir, 'interchange.log') : undefined)
  const interchange = new Interchange({ ...settings.options, logger, clientLivenessByPipe: watchParentPipe((why) => void interchange.stop(why)) })
  const onSignal = (signal: NodeJS.Signals) => void interchange.stop(`received ${signal}`)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    let ports
    try {
      ports = await interchange.start()
    } catch (error) {
      logger.error('could not start', error)
      io.stderr.write(`tsflow-interchange: could not start: ${formatError(error)}\n`)
      return 1
    }
    // The handshake with the spawning executor: exactly one JSON line.
    io.stdout.write(`${JSON.stringify(ports)}\n`)
    const reason = await interchange.done
    logger.info(`exiting: ${reason}`)
    return 0
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    logger.close()
  }
}
