/**
 * `tsflow endpoint <command>`: configure, start, stop, status, list, allow, deny, keys. Each
 * command is a flag table, a description (its --help) and a runner; the lifecycle lives in
 * endpoint-lifecycle.ts, the status query in endpoint-status.ts, file state in endpoint-state.ts.
 */
import { existsSync, readFileSync } from 'node:fs'
import { hostname, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigError, EndpointNotFound, UsageError } from '../errors.js'
import { DEFAULT_ENDPOINT_CONFIG, writeDefaultEndpointConfig } from '../endpoint/config.js'
import { addAllowedClient, ensureClientKeys, ensureEndpointKeys, isCurveKey, readAllowedClients, removeAllowedClient } from '../endpoint/keys.js'
import { clientKeyDir, ENDPOINT_DEFAULTS, endpointPaths, tsflowHome } from '../protocol/endpoint.js'
import { LOG_LEVELS, type LogLevel } from '../util/logger.js'
import { ExitCode, flagList, flagMs, flagSet, flagText, parseArgs, unknownCommand, usageOf, type ArgsSpec, type CliIo, type CommandFamily, type FlagSpec, type ParsedArgs } from './args.js'
import { startEndpoint, stopEndpoint } from './endpoint-lifecycle.js'
import { checkEndpointName, endpointNames, inspectEndpoint, type EndpointInspection } from './endpoint-state.js'
import { connectAddress, formatDuration, formatStatus, queryStatus, statusReport, table, type StatusReport } from './endpoint-status.js'

const HOME: FlagSpec = { name: 'home', value: 'DIR', help: 'the tsflow home directory  [$TSFLOW_HOME or ~/.tsflow]' }
const JSON_FLAG: FlagSpec = { name: 'json', help: 'print JSON (one object) instead of text' }

interface Context {
  io: CliIo
  home: string
  args: ParsedArgs
}

interface Subcommand {
  spec: ArgsSpec
  summary: string
  description: string
  run(context: Context): Promise<number>
}

const say = (io: CliIo, text: string) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
const warn = (io: CliIo, text: string) => io.stderr.write(`${text}\n`)

/** The endpoint named by the first positional, checked, and configured (or with files) here. */
function configuredEndpoint(context: Context, command: string) {
  const name = checkEndpointName(context.args.positionals[0]!, command)
  const paths = endpointPaths(name, context.home)
  if (!existsSync(paths.dir)) {
    const known = endpointNames(context.home)
    throw new EndpointNotFound(
      name,
      `not configured (no ${paths.dir}); run 'tsflow endpoint configure ${name}'${known.length ? ` (configured here: ${known.join(', ')})` : ''}`,
    )
  }
  return { name, paths }
}

/** `key=value` -> [key, value]; the value is JSON when it parses as JSON (numbers, true, [..]), else the text. */
function optionPair(text: string, flag = 'option'): [string, unknown] {
  const eq = text.indexOf('=')
  if (eq <= 0) throw new UsageError(`--${flag} expects KEY=VALUE (got '${text}'), e.g. --${flag} ${flag === 'option' ? 'maxBlocks=4' : 'maxWorkersPerNode=2'}`)
  const raw = text.slice(eq + 1)
  let value: unknown = raw
  try {
    value = JSON.parse(raw)
  } catch {
    // plain text, e.g. partition=debug
  }
  return [text.slice(0, eq), value]
}

/** Sets `a.b.c` in a plain object tree. */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let at = target
  for (const key of keys.slice(0, -1)) {
    if (typeof at[key] !== 'object' || at[key] === null) at[key] = {}
    at = at[key] as Record<string, unknown>
  }
  at[keys[keys.length - 1]!] = value
}

const configure: Subcommand = {
  summary: 'create an endpoint: config.json, its keys, and an allow-list holding your client key',
  spec: {
    command: 'tsflow endpoint configure',
    positionals: ['name'],
    flags: [
      { name: 'provider', value: 'TYPE', help: "where blocks of workers run: local, slurm, pbspro, gridengine, kubernetes, ...  [local]" },
      { name: 'option', value: 'KEY=VALUE', repeat: true, help: 'a provider option (repeatable; dotted keys nest; JSON values): --option maxBlocks=4 --option partition=debug' },
      { name: 'set', value: 'KEY=VALUE', repeat: true, help: 'any other config.json field (repeatable; dotted keys nest; JSON values): --set maxWorkersPerNode=4' },
      { name: 'client-address', value: 'ADDR', help: `the address clients connect to (0.0.0.0 for other hosts)  [${ENDPOINT_DEFAULTS.clientAddress}]` },
      { name: 'client-port', value: 'PORT', help: 'the client port (0: any free port, reported by start)  [0]' },
      { name: 'force', help: 'replace an existing config.json (keys and allow-list are kept)' },
      HOME,
    ],
  },
  description: `
Creates $TSFLOW_HOME/endpoints/<name>/ with a default config.json (provider options on top), the
endpoint's CURVE key pairs, and allowed_clients holding this user's client public key, so clients
of the same user on any host that shares $TSFLOW_HOME work at once. Edit config.json for all
other options (docs/endpoints.md, "Configuration"). Keys are made once and kept: clients pin the
endpoint's public key.`,
  async run({ io, home, args }) {
    const name = checkEndpointName(args.positionals[0]!, 'tsflow endpoint configure')
    const paths = endpointPaths(name, home)
    if (existsSync(paths.config) && !flagSet(args, 'force')) {
      throw new ConfigError(paths.config, `exists: endpoint ${name} is already configured; edit that file, or pass --force to replace it with a default one`)
    }
    const overrides: Record<string, unknown> = {}
    const providerType = flagText(args, 'provider')
    const options = flagList(args, 'option')
    if (providerType !== undefined || options.length > 0) {
      const fallback = DEFAULT_ENDPOINT_CONFIG.provider as Record<string, unknown>
      const provider: Record<string, unknown> = providerType === undefined || providerType === fallback.type ? structuredClone(fallback) : { type: providerType }
      for (const text of options) {
        const [key, value] = optionPair(text)
        if (key === 'type') throw new UsageError(`--option type=...: set the provider type with --provider`)
        setPath(provider, key, value)
      }
      overrides.provider = provider
    }
    for (const text of flagList(args, 'set')) {
      const [key, value] = optionPair(text, 'set')
      if (key === 'provider' || key.startsWith('provider.')) throw new UsageError(`--set ${key}: set the provider with --provider and --option`)
      setPath(overrides, key, value)
    }
    const address = flagText(args, 'client-address')
    if (address !== undefined) overrides.clientAddress = address
    const portText = flagText(args, 'client-port')
    if (portText !== undefined) {
      const port = Number(portText)
      if (!/^\d+$/.test(portText) || port > 65535) throw new UsageError(`--client-port must be a port number 0-65535 (got '${portText}')`)
      overrides.clientPort = port
    }
    const running = inspectEndpoint(name, home, false).running
    writeDefaultEndpointConfig(paths, overrides)
    const keys = ensureEndpointKeys(paths)
    const client = ensureClientKeys(home)
    addAllowedClient(paths, client.publicKey, `${safeUser()}@${hostname()} (tsflow endpoint configure)`)
    say(io, `endpoint ${name} configured in ${paths.dir}`)
    say(io, `  config             ${paths.config}`)
    say(io, `  server public key  ${keys.server.publicKey}`)
    say(io, `  allowed clients    ${paths.allowedClients} (your key ${client.publicKey} is on it)`)
    if (running) say(io, `endpoint ${name} is running: the new config applies after 'tsflow endpoint restart ${name}'`)
    else say(io, `next: tsflow endpoint start ${name}`)
    return ExitCode.ok
  },
}

function safeUser(): string {
  try {
    return userInfo().username
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`
  }
}

const START_FLAGS: FlagSpec[] = [
  { name: 'timeout', value: 'MS', help: `how long to wait for it to listen  [${ENDPOINT_DEFAULTS.startTimeoutMs}]` },
  { name: 'log-level', value: 'LEVEL', help: `override config.json's logLevel: ${LOG_LEVELS.join(', ')}` },
  { name: 'typescript', help: 'run managers and workers with tsx, so apps defined in .ts files run by reference (~0.3 s more per process start)' },
  JSON_FLAG,
  HOME,
]

const start: Subcommand = {
  summary: 'start an endpoint as a background process',
  spec: { command: 'tsflow endpoint start', positionals: ['name'], flags: START_FLAGS },
  description: `
Starts the endpoint daemon detached from this terminal (its own session and process group; it
keeps running after this command, the shell and the terminal end), logging to endpoint.log, and
waits until it listens. Prints where clients connect, its public key and pid. If it is already
running, says so and exits 0 (start is idempotent). A daemon that cannot start is reported
with the end of its log, exit 1, and leaves no process behind.`,
  run: (context) => runStart(context, 'tsflow endpoint start'),
}

async function runStart({ io, home, args }: Context, command: string): Promise<number> {
  const { name } = configuredEndpoint({ io, home, args }, command)
  const level = flagText(args, 'log-level')
  if (level !== undefined && !(LOG_LEVELS as string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got '${level}')`)
  const timeoutMs = flagMs(args, 'timeout', ENDPOINT_DEFAULTS.startTimeoutMs)
  const result = await startEndpoint({ name, home, timeoutMs, ...(level ? { logLevel: level as LogLevel } : {}), typescript: flagSet(args, 'typescript'), env: io.env })
  const json = flagSet(args, 'json')
  if ('staleNote' in result && result.staleNote) warn(io, result.staleNote)
  if (result.kind === 'running') {
    const { pid, state } = result.inspection
    if (json) say(io, JSON.stringify({ name, started: false, running: true, pid, state }))
    else say(io, `endpoint ${name} is already running (pid ${pid}${state ? `, clients connect to ${connectAddress(state)}` : ''}); nothing to do`)
    return ExitCode.ok
  }
  if (result.kind === 'failed') {
    warn(io, result.message)
    warn(io, result.logTail ? `last lines of ${result.log}:\n${result.logTail.replace(/^/gm, '  ')}` : `(nothing in ${result.log})`)
    return result.interrupted ? ExitCode.interrupted : ExitCode.failed
  }
  const { state } = result
  if (json) {
    say(io, JSON.stringify({ name, started: true, running: true, pid: state.pid, state }))
    return ExitCode.ok
  }
  say(io, `endpoint ${name} started (pid ${state.pid})`)
  say(io, `  clients connect to  ${connectAddress(state)}`)
  say(io, `  server public key   ${state.serverPublicKey}`)
  say(io, `  log                 ${result.log}`)
  say(io, `use it: new EndpointExecutor({ endpoint: '${name}' }); stop it: tsflow endpoint stop ${name}`)
  return ExitCode.ok
}

const stop: Subcommand = {
  summary: 'stop a running endpoint (its queued and running tasks fail with EndpointStopped)',
  spec: {
    command: 'tsflow endpoint stop',
    positionals: ['name'],
    flags: [{ name: 'timeout', value: 'MS', help: `how long to wait after SIGTERM before SIGKILL of its process group  [${ENDPOINT_DEFAULTS.stopTimeoutMs}]` }, HOME],
  },
  description: `
Sends SIGTERM to the endpoint: it fails every queued and running task at its clients with
EndpointStopped, stops its managers and blocks, removes endpoint.json and exits. If it has not
exited after --timeout, its process group is killed (SIGKILL) and its files are removed: exit 1.
Stopping an endpoint that is not running says so and exits 0.`,
  run: (context) => runStop(context, 'tsflow endpoint stop', flagMs(context.args, 'timeout', ENDPOINT_DEFAULTS.stopTimeoutMs)),
}

async function runStop({ io, home, args }: Context, command: string, timeoutMs: number): Promise<number> {
  const { name } = configuredEndpoint({ io, home, args }, command)
  const result = await stopEndpoint(name, home, timeoutMs)
  if (result.kind === 'not-running') {
    if (result.staleNote) warn(io, result.staleNote)
    say(io, `endpoint ${name} is not running`)
    return ExitCode.ok
  }
  for (const note of result.notes) warn(io, note)
  say(io, `endpoint ${name} stopped (pid ${result.pid}${result.forced ? ', killed' : ''})`)
  return result.forced ? ExitCode.failed : ExitCode.ok
}

const restart: Subcommand = {
  summary: 'stop an endpoint if it runs, then start it (a new config.json applies)',
  spec: {
    command: 'tsflow endpoint restart',
    positionals: ['name'],
    flags: [{ name: 'stop-timeout', value: 'MS', help: `how long to wait after SIGTERM before SIGKILL  [${ENDPOINT_DEFAULTS.stopTimeoutMs}]` }, ...START_FLAGS],
  },
  description: `
Stops the endpoint as 'stop' does (its queued and running tasks fail with EndpointStopped at their
clients; connected clients reconnect to the new daemon and keep their sessions' other results),
then starts it as 'start' does. Exit status: start's.`,
  async run(context) {
    // A stop that had to kill still leaves the endpoint stopped: go on and start.
    await runStop(context, 'tsflow endpoint restart', flagMs(context.args, 'stop-timeout', ENDPOINT_DEFAULTS.stopTimeoutMs))
    return runStart(context, 'tsflow endpoint restart')
  },
}

const status: Subcommand = {
  summary: 'show whether an endpoint runs, and its managers, workers, tasks and sessions',
  spec: {
    command: 'tsflow endpoint status',
    positionals: ['name?'],
    flags: [{ name: 'timeout', value: 'MS', help: 'how long to wait for the endpoint to answer  [5000]' }, JSON_FLAG, HOME],
  },
  description: `
Shows whether the endpoint runs (pid, uptime, addresses, key, log) and, asking it over CURVE as a
client with your client key, its managers, workers, blocks, queued and running tasks and client
sessions. Without a name, every endpoint configured here. Exit status (with a name): 0 running,
1 running but it did not answer, 3 stopped.`,
  async run({ io, home, args }) {
    const timeoutMs = flagMs(args, 'timeout', 5_000)
    const json = flagSet(args, 'json')
    const one = args.positionals[0]
    const names = one !== undefined ? [configuredEndpoint({ io, home, args }, 'tsflow endpoint status').name] : endpointNames(home)
    const reports: StatusReport[] = []
    for (const name of names) {
      const inspection = inspectEndpoint(name, home)
      if (inspection.staleNote) warn(io, inspection.staleNote)
      reports.push(await reportOf(inspection, home, timeoutMs))
    }
    if (json) say(io, JSON.stringify(one !== undefined ? reports[0] : reports, null, 2))
    else if (reports.length === 0) say(io, `no endpoints configured in ${join(home, 'endpoints')}; create one with 'tsflow endpoint configure <name>'`)
    else say(io, reports.map((report) => formatStatus(report)).join('\n'))
    if (one === undefined) return ExitCode.ok
    const report = reports[0]!
    return !report.running ? ExitCode.notRunning : report.statusError ? ExitCode.failed : ExitCode.ok
  },
}

async function reportOf(inspection: EndpointInspection, home: string, timeoutMs: number): Promise<StatusReport> {
  if (!inspection.running || !inspection.state) return statusReport(inspection)
  try {
    return statusReport(inspection, await queryStatus(inspection.state, home, timeoutMs))
  } catch (error) {
    return statusReport(inspection, undefined, error as Error)
  }
}

const list: Subcommand = {
  summary: 'list the endpoints configured here, running or stopped',
  spec: { command: 'tsflow endpoint list', positionals: [], flags: [JSON_FLAG, HOME] },
  description: `Lists every endpoint under $TSFLOW_HOME/endpoints: running or stopped, pid, where clients connect, uptime, provider.`,
  async run({ io, home, args }) {
    const now = Date.now()
    const rows = endpointNames(home).map((name) => {
      const inspection = inspectEndpoint(name, home)
      if (inspection.staleNote) warn(io, inspection.staleNote)
      const state = inspection.state
      return {
        name,
        running: inspection.running,
        ...(inspection.startingBy ? { startingBy: inspection.startingBy } : {}),
        configured: inspection.configured,
        pid: inspection.running ? inspection.pid : undefined,
        address: state ? connectAddress(state) : undefined,
        uptimeMs: state ? now - state.startedAt : undefined,
        provider: providerOf(inspection.paths.config),
      }
    })
    if (flagSet(args, 'json')) {
      say(io, JSON.stringify(rows, null, 2))
      return ExitCode.ok
    }
    if (rows.length === 0) {
      say(io, `no endpoints configured in ${join(home, 'endpoints')}; create one with 'tsflow endpoint configure <name>'`)
      return ExitCode.ok
    }
    const cells = rows.map((r) => [
      r.name,
      r.running ? 'running' : r.startingBy ? 'starting' : r.configured ? 'stopped' : 'stopped (no config.json)',
      r.pid !== undefined ? String(r.pid) : '-',
      r.address ?? '-',
      r.uptimeMs !== undefined ? formatDuration(r.uptimeMs) : '-',
      r.provider ?? '-',
    ])
    say(io, table(['NAME', 'STATE', 'PID', 'ADDRESS', 'UPTIME', 'PROVIDER'], cells))
    return ExitCode.ok
  },
}

/** The provider type in a config.json, for `list` (no validation: a broken file still lists). */
function providerOf(file: string): string | undefined {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { provider?: { type?: unknown } }
    return typeof raw.provider?.type === 'string' ? raw.provider.type : undefined
  } catch {
    return undefined
  }
}

function keyArgument(args: ParsedArgs, command: string): string {
  const key = args.positionals[1]!.trim()
  if (!isCurveKey(key)) {
    throw new UsageError(`${command}: '${key}' is not a client public key (40 z85 characters, as 'tsflow endpoint keys' prints on the client's host)`)
  }
  return key
}

const allow: Subcommand = {
  summary: "admit a client's public key (from 'tsflow endpoint keys' on its host)",
  spec: {
    command: 'tsflow endpoint allow',
    positionals: ['name', 'public-key'],
    flags: [{ name: 'label', value: 'TEXT', help: 'a note kept beside the key (who it is)' }, HOME],
  },
  description: `Adds a client public key to the endpoint's allowed_clients. Clients with other keys are refused at the CURVE handshake (and logged).`,
  async run({ io, home, args }) {
    const { name, paths } = configuredEndpoint({ io, home, args }, 'tsflow endpoint allow')
    const key = keyArgument(args, 'tsflow endpoint allow')
    const label = flagText(args, 'label')
    const added = addAllowedClient(paths, key, label)
    say(io, added ? `endpoint ${name}: client key ${key} allowed (${paths.allowedClients})` : `endpoint ${name}: client key ${key} was already allowed`)
    return ExitCode.ok
  },
}

const deny: Subcommand = {
  summary: 'remove a client public key from the allow-list',
  spec: { command: 'tsflow endpoint deny', positionals: ['name', 'public-key'], flags: [HOME] },
  description: `Removes a client public key from the endpoint's allowed_clients; new connections with that key are refused. Removing a key that is not there says so and exits 0.`,
  async run({ io, home, args }) {
    const { name, paths } = configuredEndpoint({ io, home, args }, 'tsflow endpoint deny')
    const key = keyArgument(args, 'tsflow endpoint deny')
    const removed = removeAllowedClient(paths, key)
    if (removed) say(io, `endpoint ${name}: client key ${key} removed from ${paths.allowedClients} (${readAllowedClients(paths).length} left)`)
    else say(io, `endpoint ${name}: client key ${key} was not on the allow-list (${paths.allowedClients})`)
    return ExitCode.ok
  },
}

const keys: Subcommand = {
  summary: "print this user's client public key (made on first use)",
  spec: { command: 'tsflow endpoint keys', positionals: [], flags: [HOME] },
  description: `
Prints this user's client public key, creating the key pair in $TSFLOW_HOME/client/ (mode 0600)
on first use. Give it to an endpoint's owner: tsflow endpoint allow <name> <key>. Only the key
goes to stdout, so KEY=$(tsflow endpoint keys) works.`,
  async run({ io, home }) {
    const dir = clientKeyDir(home)
    const existed = existsSync(join(dir, 'client.public'))
    const pair = ensureClientKeys(home)
    if (!existed) warn(io, `created a client key pair in ${dir}`)
    say(io, pair.publicKey)
    return ExitCode.ok
  },
}

const SUBCOMMANDS: Record<string, Subcommand> = { configure, start, stop, restart, status, list, allow, deny, keys }

export function endpointUsage(): string {
  const names = Object.keys(SUBCOMMANDS)
  const width = Math.max(...names.map((n) => n.length)) + 2
  return [
    'Usage: tsflow endpoint <command> [arguments]',
    '',
    'A long-lived endpoint runs tasks for clients (new EndpointExecutor({ endpoint: name })).',
    '',
    'Commands:',
    ...names.map((name) => `  ${name.padEnd(width)}${SUBCOMMANDS[name]!.summary}`),
    '',
    "Run 'tsflow endpoint <command> --help' for a command's options; docs/endpoints.md has the guide.",
    '',
  ].join('\n')
}

async function runEndpointCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const [word, ...rest] = argv
  if (word === undefined || word === '-h' || word === '--help' || word === 'help') {
    ;(word === undefined ? io.stderr : io.stdout).write(endpointUsage())
    return word === undefined ? ExitCode.usage : ExitCode.ok
  }
  const command = SUBCOMMANDS[word]
  try {
    if (!command) throw unknownCommand('tsflow endpoint', word, Object.keys(SUBCOMMANDS))
    const args = parseArgs(rest, command.spec)
    if (args === 'help') {
      io.stdout.write(usageOf(command.spec, command.description))
      return ExitCode.ok
    }
    // Absolute: the daemon runs in the endpoint's directory, where a relative home means something else.
    const home = resolve(flagText(args, 'home') ?? tsflowHome(io.env))
    return await command.run({ io, home, args })
  } catch (error) {
    if (error instanceof UsageError) {
      warn(io, `${error.message}\nRun 'tsflow endpoint ${command ? `${word} ` : ''}--help' for usage.`)
      return ExitCode.usage
    }
    // Failures (config, keys, not found, files) are one line; TSFLOW_DEBUG=1 adds the stack.
    const text = error instanceof Error ? (io.env.TSFLOW_DEBUG ? (error.stack ?? error.message) : error.message) : String(error)
    warn(io, `tsflow endpoint ${word}: ${text}`)
    return ExitCode.failed
  }
}

export const endpointCommand: CommandFamily = {
  name: 'endpoint',
  summary: 'configure, start, stop and inspect endpoints (long-lived task servers for remote clients)',
  run: runEndpointCommand,
}
