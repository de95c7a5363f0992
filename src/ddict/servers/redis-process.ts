/**
 * One real `redis-server` of a dictionary, started by the shard host: its configuration (secrets
 * through stdin, never argv), a free port (retried when another process takes it first), the
 * wait until it answers AUTH + PING, and its stop (SHUTDOWN NOSAVE, then SIGKILL).
 *
 * No orphans: each server is a plain child of the shard host, so it stays in the host's process
 * group (a provider's cancel signals that whole group; Slurm ends the job's cgroup), and on Linux
 * it is started through `setpriv --pdeathsig KILL`, so the kernel kills it the moment the shard
 * host dies, even by SIGKILL, when nothing of the host can run any more.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdirSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { DDICT_KEYSPACE_EVENTS } from '../../protocol/ddict.js'
import { readTail } from '../../util/file-tail.js'
import { delay, settledWithin } from '../../util/deferred.js'
import { pingRedis, redisCommands, RespErrorReply } from './resp.js'


const PORT_ATTEMPTS = 5
const READY_TIMEOUT_MS = 30_000
const STOP_GRACE_MS = 3000

export interface RedisServerOptions {
  binary: string
  /** the address it listens on */
  bind: string
  password: string
  /** bytes, 0 = no limit */
  maxmemory: number
  /** its own directory (working dir and log) */
  dir: string
  /** a read replica of this server */
  replicaOf?: { host: string; port: number }
}

/** The redis-server binary: `given` (checked), else on PATH or where Debian puts it. Throws a sentence saying what to do. */
export function findRedisServer(given?: string): string {
  if (given !== undefined) {
    try {
      accessSync(given, constants.X_OK)
      return given
    } catch (error) {
      throw new Error(`the redis-server binary ${given} (option redisServer) cannot be executed: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    const path = join(dir, 'redis-server')
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // next
    }
  }
  throw new Error(`redis-server was not found on PATH (${process.env.PATH ?? ''}) nor in /usr/bin, /usr/sbin, /usr/local/bin; install it (Debian: apt-get install redis-server) or give the option redisServer`)
}

let pdeathsig: boolean | undefined
/** Whether `setpriv --pdeathsig` exists here (Linux util-linux >= 2.33). */
function hasPdeathsig(): boolean {
  if (pdeathsig === undefined) {
    if (process.platform !== 'linux') return (pdeathsig = false)
    const probe = spawnSync('setpriv', ['--help'], { encoding: 'utf8', timeout: 5000 })
    pdeathsig = probe.status === 0 && /--pdeathsig/.test(probe.stdout)
  }
  return pdeathsig
}

export const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '*'])

/** Where this host reaches a server bound to `bind`. */
export function localAddressFor(bind: string): string {
  if (bind === '::') return '::1'
  return WILDCARD_ADDRESSES.has(bind) ? '127.0.0.1' : bind
}

/** A port nothing listens on at `bind` right now (Redis cannot listen on port 0). */
export async function freePort(bind: string): Promise<number> {
  const server = createServer()
  server.listen(0, bind === '*' ? '0.0.0.0' : bind)
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  await new Promise((done) => server.close(done))
  return port
}

/** A string in redis.conf syntax: double quotes, anything but letters and digits as \xHH. */
function confString(text: string): string {
  return `"${[...Buffer.from(text, 'utf8')].map((byte) => (/[A-Za-z0-9_.\-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`)).join('')}"`
}

function configText(options: RedisServerOptions, logFile: string): string {
  const lines = [
    `requirepass ${confString(options.password)}`,
    `maxmemory ${options.maxmemory}`,
    'maxmemory-policy noeviction',
    'save ""',
    'appendonly no',
    `notify-keyspace-events ${DDICT_KEYSPACE_EVENTS}`,
    `dir ${confString(options.dir)}`,
    `logfile ${confString(logFile)}`,
    'daemonize no',
    // A replica's first sync should not wait 5 s for others to join it (the default delay).
    'repl-diskless-sync-delay 0',
    // Beyond loopback the password is what guards the server; protected mode would refuse remote clients.
    `protected-mode ${WILDCARD_ADDRESSES.has(options.bind) || !/^(127\.|::1$|localhost$)/.test(options.bind) ? 'no' : 'yes'}`,
  ]
  if (options.replicaOf) {
    lines.push(`replicaof ${options.replicaOf.host} ${options.replicaOf.port}`, `masterauth ${confString(options.password)}`, 'replica-read-only yes')
  }
  return lines.join('\n') + '\n'
}

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running redis-server. */
export class RedisProcess {
  /** set once it exited (by itself or through stop()) */
  exit: ExitInfo | undefined
  readonly exited: Promise<ExitInfo>
  private stopping: Promise<void> | undefined

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly options: RedisServerOptions,
    readonly logFile: string,
    private readonly output: () => string,
  ) {
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit ??= { code, signal }
        resolve(this.exit)
      }
      if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode)
      else {
        child.once('exit', done)
        // A spawn that failed (ENOENT, EACCES) emits 'error' and no 'exit'.
        child.once('error', () => done(127, null))
      }
    })
  }

  get pid(): number {
    return this.child.pid ?? 0
  }

  get label(): string {
    return `redis-server ${this.options.bind}:${this.port} (pid ${this.pid})`
  }

  /** The last lines of its log (or what it printed before its log was open). */
  logTail(lines = 8): string {
    return readTail(this.logFile, lines) || this.output().trim().split('\n').slice(-lines).join('\n')
  }

  /** How it ended, with its log tail, for `lost` and error reports. */
  describeExit(): string {
    const how = this.exit?.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit?.code}`
    const tail = this.logTail()
    return `${this.label} ${how}${tail ? `; last lines of its log (${this.logFile}):\n${tail}` : ''}`
  }

  /** SHUTDOWN NOSAVE, SIGKILL if it does not exit within the grace time. Safe to call twice. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      if (this.exit) return
      let asked = false
      try {
        await redisCommands(localAddressFor(this.options.bind), this.port, [['AUTH', this.options.password], ['SHUTDOWN', 'NOSAVE']], STOP_GRACE_MS, true)
        asked = true
      } catch {
        // not answering (still starting, hung, or not a Redis at all): nothing to save, SIGKILL now
      }
      if (!asked || !(await settledWithin(this.exited, STOP_GRACE_MS))) this.child.kill('SIGKILL')
      await settledWithin(this.exited, STOP_GRACE_MS)
    })())
  }
}

/**
 * Starts one redis-server on a free port of `options.bind` and resolves once it answers AUTH +
 * PING (a replica: once its link to the master is up). A port another process took in between
 * (the log says "Address already in use") is retried on another port. Rejects with the log tail.
 * `spawned` sees each process as soon as it exists.
 */
export async function startRedisServer(options: RedisServerOptions, spawned: (server: RedisProcess) => void = () => undefined, readyTimeoutMs = READY_TIMEOUT_MS): Promise<RedisProcess> {
  mkdirSync(options.dir, { recursive: true })
  const failures: string[] = []
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    const port = await freePort(options.bind)
    const logFile = join(options.dir, `redis-${port}.log`)
    const server = spawnServer(options, port, logFile)
    // Known to the caller at once, so a stop during the start reaches it too.
    spawned(server)
    const outcome = await ready(server, readyTimeoutMs)
    if (outcome === 'ready') return server
    await server.stop()
    failures.push(outcome)
    if (!/address already in use/i.test(outcome)) break
  }
  throw new Error(failures.join('\n'))
}

function spawnServer(options: RedisServerOptions, port: number, logFile: string): RedisProcess {
  // `-` reads the configuration from stdin (so the password never shows in /proc/<pid>/cmdline);
  // the port and address stay visible on the command line for `ps`.
  const args = ['-', '--port', String(port), '--bind', options.bind === '*' ? '0.0.0.0' : options.bind]
  const [command, argv] = hasPdeathsig() ? ['setpriv', ['--pdeathsig', 'KILL', options.binary, ...args]] : [options.binary, args]
  const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'], cwd: options.dir })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4096)
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  child.on('error', (error) => keep(Buffer.from(`\ncannot start ${options.binary}: ${error.message}\n`)))
  child.stdin!.on('error', () => undefined) // it may exit before reading its configuration
  child.stdin!.end(configText(options, logFile))
  return new RedisProcess(child, port, options, logFile, () => output)
}

async function ready(server: RedisProcess, timeoutMs: number): Promise<'ready' | string> {
  const deadline = Date.now() + timeoutMs
  const host = localAddressFor(server.options.bind)
  let linked = !server.options.replicaOf
  for (;;) {
    if (server.exit) return `${server.describeExit()}`
    const answered = await pingRedis(host, server.port, server.options.password, 1000)
    if (answered && !linked) {
      try {
        const [, info] = await redisCommands(host, server.port, [['AUTH', server.options.password], ['INFO', 'replication']], 1000)
        linked = typeof info === 'string' && /master_link_status:up/.test(info)
      } catch {
        // asked again below
      }
    }
    if (answered && linked) return 'ready'
    if (server.exit) return `${server.describeExit()}`
    if (Date.now() > deadline) {
      return `${server.label} did not ${answered ? 'link to its master' : 'answer AUTH + PING'} within ${timeoutMs} ms; last lines of its log (${server.logFile}):\n${server.logTail()}`
    }
    await delay(answered ? 50 : 15)
  }
}

export { RespErrorReply }
