/**
 * `tsflow <command> ...`: the dispatch over command families. A family (cli/endpoint.ts) owns its
 * own subcommands and usage; adding one (issue 12's `monitor`) is one entry in `COMMANDS`.
 */
import { UsageError } from '../errors.js'
import { TSFLOW_VERSION } from '../protocol/version.js'
import { ExitCode, unknownCommand, type CliIo, type CommandFamily } from './args.js'
import { endpointCommand } from './endpoint.js'
import { monitorCommand } from './monitor.js'

export const COMMANDS: readonly CommandFamily[] = [endpointCommand, monitorCommand]

export function usage(commands: readonly CommandFamily[] = COMMANDS): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2
  return [
    'Usage: tsflow <command> [arguments]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Options:',
    '  -h, --help     this text (`tsflow <command> --help` for a command\'s own)',
    '  -V, --version  the tsflow version',
    '',
    'Environment:',
    '  TSFLOW_HOME    where endpoints and the client key pair live  [~/.tsflow]',
    '',
  ].join('\n')
}

export async function runTsflow(argv: readonly string[], io: CliIo, commands: readonly CommandFamily[] = COMMANDS): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    // `tsflow` alone is a request for help that did not say so: usage on stderr, exit 2.
    ;(first === undefined ? io.stderr : io.stdout).write(usage(commands))
    return first === undefined ? ExitCode.usage : ExitCode.ok
  }
  if (first === '-V' || first === '--version') {
    io.stdout.write(`tsflow ${TSFLOW_VERSION}\n`)
    return ExitCode.ok
  }
  const command = commands.find((c) => c.name === first)
  if (!command) {
    const error = first.startsWith('-')
      ? new UsageError(`tsflow: unknown option '${first}'`)
      : unknownCommand('tsflow', first, commands.map((c) => c.name))
    io.stderr.write(`${error.message}\nRun tsflow --help for usage.\n`)
    return ExitCode.usage
  }
  return command.run(rest, io)
}
