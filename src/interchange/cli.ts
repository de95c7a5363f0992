import { join } from 'node:path'
import { UsageError } from '../errors.js'
import { encodeHandshake, INTERCHANGE_DEFAULTS, interchangeSpec } from '../protocol/interchange.js'
import { Logger, formatError, type LogLevel } from '../util/logger.js'
import { Interchange, type InterchangeOptions } from './interchange.js'
import { watchParentPipe } from '../transport/parent-watch.js'

/**
 * The command line of the interchange process (`tsflow-interchange`). The executor spawns it,
 * reads ONE line of JSON from its stdout -- {"clientPort":N,"workerPort":M} -- and connects.
 * After that line stdout stays quiet; logs go to DIR/interchange.log.
 */
export const USAGE = `usage: tsflow-interchange [options]

${interchangeSpec.usage()}
  --help

On start it prints {"clientPort":N,"workerPort":M} as one line on stdout, with
"metricsPort":P added when --metrics-port is given (Prometheus text at /metrics).
It exits when the client sends 'shutdown', goes silent for the heartbeat threshold,
or on SIGTERM/SIGINT; managers are told to shut down first.`

export { UsageError }

export interface CliSettings {
  options: InterchangeOptions
  logDir?: string
  logLevel: LogLevel
}

/** Decodes the interchange spec (src/protocol/interchange.ts); throws UsageError naming the flag. */
export function parseCommandLine(argv: readonly string[]): CliSettings | 'help' {
  const spec = interchangeSpec.decode(argv)
  if (spec === 'help') return 'help'
  const { logDir, logLevel, ...options } = spec
  return { options, ...(logDir !== undefined ? { logDir } : {}), logLevel: logLevel ?? INTERCHANGE_DEFAULTS.logLevel }
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
    io.stdout.write(encodeHandshake(ports))
    const reason = await interchange.done
    logger.info(`exiting: ${reason}`)
    return 0
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    logger.close()
  }
}
