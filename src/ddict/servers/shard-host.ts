/**
 * The shard host (`tsflow-ddict-shards`, one per node of a dictionary; protocol/ddict.ts's
 * `ddictShardsSpec`): connects to the creator's report listener first, starts `--count` Redis
 * servers (+ `--replicas` read replicas each), writes ONE report line (`ready` or `error`), then
 * watches. It stops its servers, removes their directories and exits when:
 *   - the report connection closes (the creator destroyed the dictionary, or died: no orphans),
 *   - it reads `{"kind":"stop"}`,
 *   - it gets SIGTERM, SIGINT or SIGHUP,
 *   - one of its servers exits on its own: then it first writes `{"kind":"lost"}` and exits 1.
 * Connecting before starting means a creator that dies at any moment is noticed, and for a
 * wildcard bind the connection's local address is the address this node is reached at.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { deferred, settledWithin } from '../../util/deferred.js'
import type { LogLevel } from '../../util/logger.js'
import { DDICT_DEFAULTS, type DDictShardsArgs, type ShardHostEvent, type ShardHostReport } from '../../protocol/ddict.js'
import { findRedisServer, localAddressFor, startRedisServer, WILDCARD_ADDRESSES, type RedisProcess } from './redis-process.js'

const CONNECT_TIMEOUT_MS = 30_000
/** Idle time before TCP keepalive probes start on the report connection. */
const KEEPALIVE_MS = 10_000
/** A server that exits while a signal is on its way to the whole group is not "lost": wait this long for our own signal first. */
const LOST_SETTLE_MS = 150
const LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

/** `host:port` or `[v6]:port` -> its parts. */
export function parseReportAddress(text: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text.trim())
  const port = match ? Number(match[2]) : NaN
  if (!match || port < 1 || port > 65535) throw new Error(`--report must be HOST:PORT (got ${JSON.stringify(text)})`)
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port }
}

interface Shard {
  master: RedisProcess
  replicas: RedisProcess[]
}

/** Runs the shard host; resolves to the process's exit code once everything it started is gone. */
export async function runShardHost(args: DDictShardsArgs, password: string): Promise<number> {
  if (!args.report || !args.id) {
    process.stderr.write(`tsflow-ddict-shards: --report and --id are required (see --help)\n`)
    return 2
  }
  const host = new ShardHost(args, password)
  return host.run()
}

class ShardHost {
  private readonly node = hostname()
  private readonly level: number
  private socket: Socket | undefined
  private state: 'starting' | 'running' | 'stopping' = 'starting'
  private readonly processes = new Set<RedisProcess>()
  private readonly shards: Shard[] = []
  private baseDir: string | undefined
  private readonly done = deferred<number>()

  constructor(
    private readonly args: DDictShardsArgs,
    private readonly password: string,
  ) {
    this.level = LEVELS[args.logLevel ?? 'info']
  }

  private log(level: LogLevel, message: string): void {
    if (LEVELS[level] > this.level) return
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} tsflow-ddict-shards[${process.pid}] ${this.args.id}: ${message}\n`)
  }

  async run(): Promise<number> {
    // A creator that died closes stderr's pipe too: writing to it must not kill us before cleanup.
    process.stderr.on('error', () => undefined)
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void this.stop(0, `received ${signal}`))
    const report = parseReportAddress(this.args.report!)
    try {
      this.socket = await connectTo(report.host, report.port)
    } catch (error) {
      this.log('error', `cannot reach the creator's report listener ${this.args.report}: ${(error as Error).message}; starting nothing`)
      return 1
    }
    this.watchConnection(this.socket)
    try {
      await this.startServers()
    } catch (error) {
      if (this.state === 'starting') this.fail((error as Error).message)
      return this.done.promise
    }
    if (this.state !== 'starting') return this.done.promise
    this.state = 'running'
    for (const server of this.processes) void server.exited.then(() => this.onServerExit(server))
    this.send(this.readyReport())
    this.log('info', `${this.shards.length} server(s) ready: ${this.shards.map((s) => s.master.port).join(', ')}`)
    return this.done.promise
  }

  private watchConnection(socket: Socket): void {
    socket.setEncoding('utf8')
    socket.setNoDelay(true)
    // A creator whose machine vanished without closing the connection is found by keepalive probes.
    socket.setKeepAlive(true, KEEPALIVE_MS)
    let buffer = ''
    socket.on('data', (chunk: string) => {
      buffer += chunk
      for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
        const line = buffer.slice(0, end).trim()
        buffer = buffer.slice(end + 1)
        if (!line) continue
        let command: { kind?: unknown }
        try {
          command = JSON.parse(line) as { kind?: unknown }
        } catch {
          this.log('warn', `ignoring a line from the creator that is not JSON: ${line.slice(0, 200)}`)
          continue
        }
        if (command.kind === 'stop') void this.stop(0, 'the creator asked to stop')
        else this.log('warn', `ignoring an unknown command from the creator: ${line.slice(0, 200)}`)
      }
    })
    socket.on('error', (error) => void this.stop(0, `the report connection failed (${error.message}); presuming the creator gone`))
    socket.on('close', () => void this.stop(0, 'the creator closed the report connection'))
  }

  private async startServers(): Promise<void> {
    const base = this.args.dir ?? tmpdir()
    mkdirSync(base, { recursive: true })
    const safe = (text: string) => text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)
    this.baseDir = mkdtempSync(join(base, `tsflow-ddict-${safe(this.args.id!)}-${safe(this.node)}-`))
    const binary = findRedisServer(this.args.redisServer)
    const bind = this.args.bind ?? DDICT_DEFAULTS.bindAddress
    const common = { binary, bind, password: this.password, maxmemory: this.args.maxmemory ?? 0 }
    const track = (server: RedisProcess) => {
      this.processes.add(server)
      // Started while a stop was under way: stop it too.
      if (this.state === 'stopping') void server.stop()
    }
    const count = this.args.count ?? 1
    const started = await Promise.allSettled(
      Array.from({ length: count }, async (_, i) => {
        const master = await startRedisServer({ ...common, dir: join(this.baseDir!, `shard-${i}`) }, track)
        const replicas: RedisProcess[] = []
        for (let r = 0; r < (this.args.replicas ?? 0); r++) {
          const to = { host: localAddressFor(bind), port: master.port }
          replicas.push(await startRedisServer({ ...common, dir: join(this.baseDir!, `shard-${i}-replica-${r}`), replicaOf: to }, track))
        }
        return { master, replicas }
      }),
    )
    const failed = started.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
    if (failed) throw new Error(`redis-server did not start: ${(failed.reason as Error).message}`)
    for (const outcome of started) if (outcome.status === 'fulfilled') this.shards.push(outcome.value)
  }

  private advertised(): string {
    if (this.args.advertise) return this.args.advertise
    const bind = this.args.bind ?? DDICT_DEFAULTS.bindAddress
    if (!WILDCARD_ADDRESSES.has(bind)) return bind
    // The address this node reached the creator from: the creator (and its peers) can reach it back there.
    return (this.socket?.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '')
  }

  private readyReport(): ShardHostReport {
    const host = this.advertised()
    return {
      kind: 'ready',
      node: this.node,
      pid: process.pid,
      shards: this.shards.map(({ master, replicas }) => ({
        host,
        port: master.port,
        maxmemory: master.options.maxmemory,
        pid: master.pid,
        replicas: replicas.map((replica) => ({ host, port: replica.port })),
      })),
    }
  }

  private onServerExit(server: RedisProcess): void {
    if (this.state !== 'running') return
    setTimeout(() => {
      if (this.state !== 'running') return
      const role = this.shards.find((shard) => shard.replicas.includes(server))
      const message = `${role ? `a read replica of port ${role.master.port}, ` : ''}${server.describeExit()}`
      this.log('error', `${message}; stopping the other servers`)
      const lost: ShardHostEvent = { kind: 'lost', node: this.node, port: server.port, message }
      this.send(lost)
      void this.stop(1, 'a server was lost')
    }, LOST_SETTLE_MS)
  }

  private fail(message: string): void {
    this.log('error', message)
    const report: ShardHostReport = { kind: 'error', node: this.node, pid: process.pid, message }
    this.send(report)
    void this.stop(1, 'the servers could not start')
  }

  private send(line: object): void {
    const socket = this.socket
    if (socket && !socket.destroyed && socket.writable) socket.write(JSON.stringify(line) + '\n')
  }

  /** Stops every server (started or starting), removes their directories, ends the connection; once. */
  private async stop(code: number, why: string): Promise<void> {
    if (this.state === 'stopping') return
    this.state = 'stopping'
    this.log('info', `stopping ${this.processes.size} server(s): ${why}`)
    await Promise.all([...this.processes].map((server) => server.stop()))
    if (this.baseDir) rmSync(this.baseDir, { recursive: true, force: true })
    const socket = this.socket
    if (socket && !socket.destroyed) {
      // Let queued report lines reach the creator before the connection goes.
      await settledWithin(new Promise<void>((resolve) => socket.end(resolve)), 2000)
      socket.destroy()
    }
    this.done.resolve(code)
  }
}

function connectTo(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`))
    }, CONNECT_TIMEOUT_MS)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}
