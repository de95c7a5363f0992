/**
 * `tsflow monitor [runDir|db] [--port N] [--host ADDR]`: serves the monitoring dashboard
 * (docs/monitoring.md "Dashboard") until SIGINT or SIGTERM. Finds the database from what it is
 * given: a database file, a runinfo directory, a numbered run directory inside one, or a project
 * directory holding runinfo/; by default ./runinfo/monitoring.db.
 */
import { existsSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { UsageError } from '../errors.js'
import { NO_DB_HINT } from '../monitoring/dashboard/db.js'
import { ExitCode, flagText, parseArgs, usageOf, type ArgsSpec, type CliIo, type CommandFamily } from './args.js'

const SPEC: ArgsSpec = {
  command: 'tsflow monitor',
  flags: [
    { name: 'port', value: 'N', help: 'the port to listen on; 0 picks a free one  [0]' },
    { name: 'host', value: 'ADDR', help: 'the address to listen on (0.0.0.0 for every interface)  [127.0.0.1]' },
  ],
  positionals: ['runDir|db?'],
}

const DESCRIPTION = `
Serves the monitoring dashboard of the workflows recorded in a monitoring database (runs with
\`monitoring: { enabled: true }\`): workflows, tasks, Gantt chart, states over time, per-app
durations, blocks and managers, resource use, live while a workflow runs. Prints the URL to open;
stops on Ctrl-C or SIGTERM.

The argument is the database file, or a directory: a runinfo directory (runinfo/monitoring.db), a
run directory inside it (runinfo/000), or a project directory holding runinfo/.
Default: ./runinfo/monitoring.db. The JSON API, /api/events and /metrics are in docs/monitoring.md.
`

/** The database named by the argument, or a UsageError naming what was looked for and what to do. */
export function findMonitoringDb(argument: string | undefined, cwd = process.cwd()): string {
  if (argument === undefined) {
    const path = resolve(cwd, 'runinfo', 'monitoring.db')
    if (!existsSync(path)) throw new UsageError(`no monitoring database at ${path}; ${NO_DB_HINT}, or run tsflow monitor <runDir|db>`)
    return path
  }
  const path = resolve(cwd, argument)
  if (!existsSync(path)) throw new UsageError(`${path} does not exist; name a monitoring database (monitoring.db) or a run directory`)
  if (!statSync(path).isDirectory()) return path
  const candidates = [join(path, 'monitoring.db'), join(path, 'runinfo', 'monitoring.db'), join(dirname(path), 'monitoring.db')]
  const found = candidates.find((candidate) => existsSync(candidate) && statSync(candidate).isFile())
  if (!found) throw new UsageError(`no monitoring database in ${path} (looked for ${candidates.join(', ')}); ${NO_DB_HINT}`)
  return found
}

function portOf(text: string | undefined): number {
  if (text === undefined) return 0
  const port = Number(text)
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`--port must be a whole number from 0 to 65535 (got '${text}')`)
  return port
}

async function runMonitor(argv: readonly string[], io: CliIo): Promise<number> {
  let db: string
  let port: number
  let host: string
  try {
    const args = parseArgs(argv, SPEC)
    if (args === 'help') {
      io.stdout.write(usageOf(SPEC, DESCRIPTION))
      return ExitCode.ok
    }
    port = portOf(flagText(args, 'port'))
    host = flagText(args, 'host') ?? '127.0.0.1'
    db = findMonitoringDb(args.positionals[0])
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr.write(`${error.message}\nRun 'tsflow monitor --help' for usage.\n`)
    return ExitCode.usage
  }
  // Loaded here: `tsflow endpoint ...` never loads better-sqlite3.
  const { startDashboard } = await import('../monitoring/dashboard/server.js')
  let dashboard: Awaited<ReturnType<typeof startDashboard>>
  try {
    dashboard = await startDashboard({ db, port, host })
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    const text =
      e.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use; choose another --port (0 picks a free one)`
      : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' ? `cannot listen on --host ${host} (${e.code}); use an address of this machine, e.g. 127.0.0.1`
      : e.code === 'EACCES' ? `not allowed to listen on port ${port}; use a port above 1023 or 0`
      : e.message
    io.stderr.write(`tsflow monitor: ${text}\n`)
    return error instanceof UsageError || e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EACCES' ? ExitCode.usage : ExitCode.failed
  }
  io.stdout.write(`tsflow monitor: ${dashboard.url}\n`)
  io.stdout.write(`serving ${db}; Ctrl-C stops\n`)
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  await dashboard.close()
  return ExitCode.ok
}

export const monitorCommand: CommandFamily = {
  name: 'monitor',
  summary: 'serve the monitoring dashboard of a run directory or monitoring database (web page, JSON API, /metrics)',
  run: runMonitor,
}
