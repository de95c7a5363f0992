// `tsflow` and `tsflow endpoint` commands that need no running endpoint: usage, argument errors,
// configure, keys, allow/deny, list/status/stop of stopped endpoints, stale state files. Each
// runs the built CLI as a child process with its own TSFLOW_HOME.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { curveKeyPair } from 'zeromq'
import { endpointPaths, type EndpointState } from 'tsflow/protocol'
import { cliEnv, scratchHome, TSFLOW_BIN, tsflow } from './helpers.js'

t.test('tsflow --help, --version, unknown commands and options', async (t) => {
  const home = scratchHome(t)
  const help = await tsflow(home, ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: tsflow <command>/)
  t.match(help.stdout, /endpoint\s+configure, start, stop/)

  const bare = await tsflow(home, [])
  t.equal(bare.code, 2, 'no command: usage on stderr, exit 2')
  t.match(bare.stderr, /Usage: tsflow/)

  const version = await tsflow(home, ['--version'])
  t.equal(version.code, 0)
  t.match(version.stdout, /^tsflow \d+\.\d+\.\d+/)

  const typo = await tsflow(home, ['endpont', 'list'])
  t.equal(typo.code, 2)
  t.match(typo.stderr, /unknown command 'endpont' \(did you mean 'endpoint'\?\)/)

  const sub = await tsflow(home, ['endpoint', 'stat'])
  t.equal(sub.code, 2)
  t.match(sub.stderr, /unknown command 'stat' \(did you mean 'status'\?\)/, 'a prefix of one command wins over a nearer spelling')

  const endpointHelp = await tsflow(home, ['endpoint', '--help'])
  t.equal(endpointHelp.code, 0)
  for (const command of ['configure', 'start', 'stop', 'restart', 'status', 'list', 'allow', 'deny', 'keys']) {
    t.match(endpointHelp.stdout, new RegExp(`^  ${command} `, 'm'), `endpoint --help lists ${command}`)
  }

  const startHelp = await tsflow(home, ['endpoint', 'start', '--help'])
  t.equal(startHelp.code, 0)
  t.match(startHelp.stdout, /Usage: tsflow endpoint start <name> \[options\]/)
  t.match(startHelp.stdout, /--timeout MS/)

  const flag = await tsflow(home, ['endpoint', 'configure', 'ep', '--provder', 'local'])
  t.equal(flag.code, 2)
  t.match(flag.stderr, /unknown option --provder \(did you mean --provider\?\)/)

  const missing = await tsflow(home, ['endpoint', 'start'])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /tsflow endpoint start: missing <name>/)

  const extra = await tsflow(home, ['endpoint', 'stop', 'a', 'b'])
  t.equal(extra.code, 2)
  t.match(extra.stderr, /unexpected argument 'b'/)

  const noValue = await tsflow(home, ['endpoint', 'start', 'ep', '--timeout'])
  t.equal(noValue.code, 2)
  t.match(noValue.stderr, /--timeout expects a value/)
})

t.test('configure writes config.json, keys and an allow-list with the client key; refuses to overwrite without --force', async (t) => {
  const home = scratchHome(t)
  const paths = endpointPaths('ep1', home)
  const made = await tsflow(home, ['endpoint', 'configure', 'ep1', '--option', 'maxBlocks=2', '--option', 'workerInit=echo hi', '--client-port', '0'])
  t.equal(made.code, 0, made.stderr)
  const config = JSON.parse(readFileSync(paths.config, 'utf8'))
  t.equal(config.provider.type, 'local', 'the default provider kept')
  t.equal(config.provider.maxBlocks, 2, 'a JSON value parsed')
  t.equal(config.provider.workerInit, 'echo hi', 'a text value kept as text')

  const keys = await tsflow(home, ['endpoint', 'keys'])
  t.equal(keys.code, 0)
  const clientKey = keys.stdout.trim()
  t.match(clientKey, /^.{40}$/, 'keys prints only the 40-character key')
  t.equal(keys.stderr, '', 'the pair existed (configure made it): no creation note')
  t.ok(readFileSync(paths.allowedClients, 'utf8').includes(clientKey), "this user's client key is on the allow-list")
  t.match(made.stdout, new RegExp(`server public key\\s+${escape(readFileSync(join(paths.curveDir, 'server.public'), 'utf8').trim())}`))
  t.equal(statSync(join(home, 'client', 'client.secret')).mode & 0o777, 0o600, 'client secret key is 0600')
  t.equal(statSync(join(paths.curveDir, 'server.secret')).mode & 0o777, 0o600, 'server secret key is 0600')

  const again = await tsflow(home, ['endpoint', 'configure', 'ep1'])
  t.equal(again.code, 1)
  t.match(again.stderr, /config\.json exists: endpoint ep1 is already configured; .*--force/)
  t.equal(JSON.parse(readFileSync(paths.config, 'utf8')).provider.maxBlocks, 2, 'config untouched')

  const serverKey = readFileSync(join(paths.curveDir, 'server.public'), 'utf8')
  const forced = await tsflow(home, ['endpoint', 'configure', 'ep1', '--force', '--client-address', '0.0.0.0', '--client-port', '5599'])
  t.equal(forced.code, 0, forced.stderr)
  const replaced = JSON.parse(readFileSync(paths.config, 'utf8'))
  t.equal(replaced.clientAddress, '0.0.0.0')
  t.equal(replaced.clientPort, 5599)
  t.equal(replaced.provider.maxBlocks, 1, 'replaced by a default config')
  t.equal(readFileSync(join(paths.curveDir, 'server.public'), 'utf8'), serverKey, 'keys are kept across --force')
  t.equal(readFileSync(paths.allowedClients, 'utf8').split(clientKey).length - 1, 1, 'the client key is listed once')
})

t.test('configure refuses bad names and bad options, naming them, and writes nothing', async (t) => {
  const home = scratchHome(t)
  for (const name of ['bad name', '../up', '.hidden', 'x'.repeat(65)]) {
    const result = await tsflow(home, ['endpoint', 'configure', name])
    t.equal(result.code, 2, `'${name.slice(0, 20)}' refused`)
    t.match(result.stderr, /is not a valid endpoint name/)
  }
  const provider = await tsflow(home, ['endpoint', 'configure', 'ep', '--provider', 'slurmm'])
  t.equal(provider.code, 1)
  t.match(provider.stderr, /config\.json: provider\.type .*slurmm.*did you mean 'slurm'/)
  const option = await tsflow(home, ['endpoint', 'configure', 'ep', '--option', 'maxBlocks=-1'])
  t.equal(option.code, 1)
  t.match(option.stderr, /provider\.maxBlocks must be a positive integer/)
  const pair = await tsflow(home, ['endpoint', 'configure', 'ep', '--option', 'maxBlocks'])
  t.equal(pair.code, 2)
  t.match(pair.stderr, /--option expects KEY=VALUE/)
  const port = await tsflow(home, ['endpoint', 'configure', 'ep', '--client-port', '70000'])
  t.equal(port.code, 2)
  t.match(port.stderr, /--client-port must be a port number/)
  t.notOk(existsSync(endpointPaths('ep', home).config), 'no config.json written')
  const listed = await tsflow(home, ['endpoint', 'list'])
  t.match(listed.stdout, /no endpoints configured/)
})

t.test('keys makes the client pair on first use and prints the same key after', async (t) => {
  const home = scratchHome(t)
  const first = await tsflow(home, ['endpoint', 'keys'])
  t.equal(first.code, 0)
  t.match(first.stderr, /created a client key pair in /)
  const second = await tsflow(home, ['endpoint', 'keys'])
  t.equal(second.stdout, first.stdout, 'the same key')
  t.equal(second.stderr, '')
  t.equal(readFileSync(join(home, 'client', 'client.public'), 'utf8').trim(), first.stdout.trim())
})

t.test('allow and deny edit the allow-list; bad keys and unknown endpoints are refused', async (t) => {
  const home = scratchHome(t)
  t.equal((await tsflow(home, ['endpoint', 'configure', 'ep'])).code, 0)
  const { allowedClients } = endpointPaths('ep', home)
  const key = curveKeyPair().publicKey

  const allowed = await tsflow(home, ['endpoint', 'allow', 'ep', key, '--label', 'alice laptop'])
  t.equal(allowed.code, 0, allowed.stderr)
  t.match(allowed.stdout, /client key .* allowed/)
  t.match(readFileSync(allowedClients, 'utf8'), new RegExp(`^${escape(key)} # alice laptop$`, 'm'))
  const twice = await tsflow(home, ['endpoint', 'allow', 'ep', key])
  t.equal(twice.code, 0)
  t.match(twice.stdout, /was already allowed/)

  const denied = await tsflow(home, ['endpoint', 'deny', 'ep', key])
  t.equal(denied.code, 0)
  t.match(denied.stdout, /removed from .*\(1 left\)/, "this user's own key stays")
  t.notOk(readFileSync(allowedClients, 'utf8').includes(key))
  const again = await tsflow(home, ['endpoint', 'deny', 'ep', key])
  t.equal(again.code, 0)
  t.match(again.stdout, /was not on the allow-list/)

  const bad = await tsflow(home, ['endpoint', 'allow', 'ep', 'not-a-key'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /'not-a-key' is not a client public key/)
  const unknown = await tsflow(home, ['endpoint', 'allow', 'nope', key])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /endpoint nope: not configured .*tsflow endpoint configure nope.*configured here: ep/)
})

t.test('stopped endpoints: list, status (exit 3), stop says so, start of an unconfigured one', async (t) => {
  const home = scratchHome(t)
  t.equal((await tsflow(home, ['endpoint', 'configure', 'b'])).code, 0)
  t.equal((await tsflow(home, ['endpoint', 'configure', 'a', '--provider', 'slurm'])).code, 0)
  const list = await tsflow(home, ['endpoint', 'list'])
  t.equal(list.code, 0)
  t.match(list.stdout, /^NAME\s+STATE\s+PID\s+ADDRESS\s+UPTIME\s+PROVIDER\na\s+stopped\s+-\s+-\s+-\s+slurm\nb\s+stopped\s+-\s+-\s+-\s+local\n$/)
  const json = JSON.parse((await tsflow(home, ['endpoint', 'list', '--json'])).stdout)
  t.same(json.map((e: { name: string; running: boolean }) => [e.name, e.running]), [['a', false], ['b', false]])

  const status = await tsflow(home, ['endpoint', 'status', 'a'])
  t.equal(status.code, 3, 'status of a stopped endpoint exits 3')
  t.equal(status.stdout, 'endpoint a: stopped\n')
  const statusJson = JSON.parse((await tsflow(home, ['endpoint', 'status', 'a', '--json'])).stdout)
  t.match(statusJson, { name: 'a', running: false, configured: true })

  const stop = await tsflow(home, ['endpoint', 'stop', 'a'])
  t.equal(stop.code, 0)
  t.equal(stop.stdout, 'endpoint a is not running\n')

  const start = await tsflow(home, ['endpoint', 'start', 'zzz'])
  t.equal(start.code, 1)
  t.match(start.stderr, /endpoint zzz: not configured/)
})

t.test('stale endpoint.json and endpoint.pid (dead pid, or a pid reused by another program) are cleaned with a note', async (t) => {
  const home = scratchHome(t)
  t.equal((await tsflow(home, ['endpoint', 'configure', 'ep'])).code, 0)
  const paths = endpointPaths('ep', home)

  // A pid that certainly is dead: a process that ran and was reaped.
  const child = spawn(process.execPath, ['-e', '0'])
  const deadPid = child.pid!
  await new Promise((resolve) => child.on('exit', resolve))
  const stale = (pid: number): EndpointState => ({
    name: 'ep', pid, host: 'h', clientAddress: '127.0.0.1', clientPort: 1, workerAddress: '127.0.0.1', workerPort: 2,
    serverPublicKey: 'x'.repeat(40), startedAt: Date.now(), version: '0', proto: 0, log: paths.log, runDir: paths.runs,
  })
  const writeStale = (pid: number) => {
    writeFileSync(paths.state, JSON.stringify(stale(pid)))
    writeFileSync(paths.pid, `${pid}\n`)
  }

  for (const command of [['list'], ['status', 'ep'], ['stop', 'ep']]) {
    writeStale(deadPid)
    const result = await tsflow(home, ['endpoint', ...command])
    t.match(result.stderr, new RegExp(`endpoint ep: removed stale endpoint\\.json and endpoint\\.pid of pid ${deadPid}, which is no longer running`), `${command[0]} notes the stale files`)
    t.notOk(existsSync(paths.state), `${command[0]} removed endpoint.json`)
    t.notOk(existsSync(paths.pid), `${command[0]} removed endpoint.pid`)
    t.match(result.stdout, /stopped|not running/)
  }

  // A live pid that is not an endpoint daemon (the pid was reused): stale too, and never signalled.
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => sleeper.kill('SIGKILL'))
  writeStale(sleeper.pid!)
  const stop = await tsflow(home, ['endpoint', 'stop', 'ep'])
  t.equal(stop.code, 0)
  t.match(stop.stderr, /removed stale endpoint\.json/)
  t.equal(sleeper.exitCode, null, 'the unrelated process was not signalled')
  t.equal(sleeper.signalCode, null)
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

t.test('a start in progress (the start lock held by a live process) shows as starting; another start waits, then gives up naming it', async (t) => {
  const home = scratchHome(t)
  t.equal((await tsflow(home, ['endpoint', 'configure', 'ep'])).code, 0)
  const paths = endpointPaths('ep', home)
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => holder.kill('SIGKILL'))
  writeFileSync(join(paths.dir, 'endpoint.starting'), `${holder.pid}\n`)
  t.match((await tsflow(home, ['endpoint', 'list'])).stdout, /^ep\s+starting\s+-/m)
  const status = await tsflow(home, ['endpoint', 'status', 'ep'])
  t.equal(status.code, 3)
  t.equal(status.stdout, `endpoint ep: starting (by 'tsflow endpoint start', pid ${holder.pid})\n`)
  const start = await tsflow(home, ['endpoint', 'start', 'ep', '--timeout', '500'])
  t.equal(start.code, 1)
  t.match(start.stderr, new RegExp(`being started by another 'tsflow endpoint start' \\(pid ${holder.pid}\\), still after 500 ms; remove .*endpoint\\.starting`))

  // A holder that died: its lock is taken over (the start then fails on this endpoint's config, on purpose).
  holder.kill('SIGKILL')
  await new Promise((resolve) => holder.on('exit', resolve))
  writeFileSync(paths.config, '{ "provider": { "type": "local" }, "strategy": "nope" }')
  const takeover = await tsflow(home, ['endpoint', 'start', 'ep'])
  t.equal(takeover.code, 1)
  t.match(takeover.stderr, /failed to start: .*config\.json: strategy/)
  t.notOk(existsSync(join(paths.dir, 'endpoint.starting')), 'the lock is released')
})

t.test('a reader that closes early (| head -1) is not a crash: the command exits 0 without a stack', async (t) => {
  const home = scratchHome(t)
  await tsflow(home, ['endpoint', 'configure', 'piped'])
  // The read end is closed before the command writes: its output meets EPIPE.
  const child = spawn(process.execPath, [TSFLOW_BIN, 'endpoint', 'list'], { env: cliEnv(home), stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.destroy()
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)))
  t.equal(code, 0, `exit 0 (stderr: ${stderr})`)
  t.notMatch(stderr, /EPIPE|Unhandled/, 'no unhandled error printed')
})
