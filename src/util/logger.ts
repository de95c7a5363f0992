import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[]

/**
 * A plain line logger writing synchronously to one file per component. Synchronous writes keep
 * the last lines before a crash; the hot paths log nothing at the default level, so the cost
 * never shows in throughput.
 */
export class Logger {
  private fd: number | undefined
  private readonly rank: number

  constructor(
    readonly component: string,
    readonly level: LogLevel = 'info',
    path?: string,
  ) {
    this.rank = RANK[level]
    if (path) {
      mkdirSync(dirname(path), { recursive: true })
      this.fd = openSync(path, 'a')
    }
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] <= this.rank
  }

  error(message: string, error?: unknown): void {
    this.write('error', error === undefined ? message : `${message}: ${formatError(error)}`)
  }
  warn(message: string): void {
    this.write('warn', message)
  }
  info(message: string): void {
    if (this.rank >= RANK.info) this.write('info', message)
  }
  debug(message: string): void {
    if (this.rank >= RANK.debug) this.write('debug', message)
  }

  /** A logger for a sub-component writing to the same file. */
  child(component: string): Logger {
    const child = Object.create(this) as Logger
    Object.defineProperty(child, 'component', { value: `${this.component}.${component}` })
    return child
  }

  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd)
      this.fd = undefined
    }
  }

  private write(level: LogLevel, message: string): void {
    if (RANK[level] > this.rank || this.fd === undefined) return
    const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${this.component} ${message}\n`
    try {
      writeSync(this.fd, line)
    } catch {
      // A full disk must not fail the workflow.
    }
  }
}

export function formatError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`
  return String(error)
}

/** A logger that writes nothing, for executors used outside a kernel. */
export const silentLogger = new Logger('silent', 'error')
