/**
 * Where a dictionary's Redis servers run, and their start and stop (docs/ddict.md "Placement and
 * sizing"). `startShards` picks a placement from a small registry: 'local' (here, layer 2: one
 * shard host on this machine) or 'provider' (ddict/placement/provider.ts, layer 3, which
 * registers itself: one shard host on every node of provider blocks). Whatever the placement,
 * the rest is shared: the password, each server's maxmemory (its share of totalMem x
 * fullFraction), the report listener the hosts connect to (host-links.ts), the wait for every
 * report within startTimeoutMs, the deterministic order of the shards, and the stop.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import { fileURLToPath } from 'node:url'
import { DDictStartError } from '../../errors-ddict.js'
import { workerExecArgv } from '../../runtime/exec-argv.js'
import { delay, settledWithin } from '../../util/deferred.js'
import { silentLogger, type Logger } from '../../util/logger.js'
import { DDICT_DEFAULTS, DDICT_PASSWORD_ENV, ddictShardsSpec, type DDictPlainOptions, type DDictShardInfo } from '../../protocol/ddict.js'
import { HostLinks } from './host-links.js'
import { WILDCARD_ADDRESSES } from './redis-process.js'
import { pingRedis } from './resp.js'

const SHARDS_BIN = fileURLToPath(new URL('../../bin/ddict-shards.js', import.meta.url))
/** How long stop() waits for the shard hosts to stop their servers and hang up. */
const STOP_GRACE_MS = 10_000
/** Bound of the check that each reported server answers from here. */
const REACH_TIMEOUT_MS = 5000

/** What DDict.create hands over: its validated options, its id and name, a logger. */
export interface PlacementRequest extends DDictPlainOptions {
  /** the dictionary id (prefix of its keys; names the hosts' files) */
  id: string
  /** for messages */
  name: string
  /** an ExecutionProvider: shards on the nodes of its blocks (needs the provider placement, `tsflow/ddict` registers it) */
  provider?: unknown
  logger?: Logger
}

/** The servers of one dictionary, started by tsflow. */
export interface ShardGroup {
  /** ordered by node, then address, then port; `index` is the position */
  shards: DDictShardInfo[]
  password: string
  /** Stops every server and shard host (and the provider's blocks); bounded; idempotent. */
  stop(): Promise<void>
  /** A server or its host was lost (exited, killed, unreachable host); `shard` when known. Returns the unsubscribe. */
  onLost(listener: (message: string, shard?: DDictShardInfo) => void): () => void
  describe(): Record<string, unknown>
}

/** What a placement gets to start its shard hosts with. */
export interface HostLaunch {
  /** the program running a shard host here: node, its loader flags, the built bin */
  program: string[]
  /** the shard host's flags (ddictShardsSpec), the same for every host */
  flags: string[]
  /** what the hosts need in their environment: the password */
  env: Record<string, string>
  /** call when a host (its process, its block) ended before it reported, with the reason */
  fail(reason: string): void
}

/** One way of placing shard hosts. */
export interface Placement {
  readonly kind: string
  /** shard hosts that will report (one per node) */
  readonly hosts: number
  /** Redis servers per host */
  readonly serversPerHost: number
  /** the address the report listener binds, and the address the hosts are told to connect to */
  readonly listen: { bind: string; address: string }
  /** the hosts' --bind and --advertise */
  readonly serverAddress: { bind: string; advertise?: string }
  launch(launch: HostLaunch): Promise<void>
  /** Every host reported: watching for failures before the report can end. */
  ready?(): void
  /** Something to add to a start timeout's message (block states...). */
  explainTimeout?(): Promise<string>
  /** After the hosts were told to stop: make sure nothing launched is left (bounded, never rejects). */
  cleanup(): Promise<void>
  describe(): Record<string, unknown>
}

export type PlacementFactory = (request: PlacementRequest) => Placement | Promise<Placement>

const placements = new Map<string, PlacementFactory>()

/** Registers (or replaces) a placement: 'local' here, 'provider' by ddict/placement/provider.ts. */
export function registerPlacement(kind: string, factory: PlacementFactory): void {
  placements.set(kind, factory)
}

export function placementKinds(): string[] {
  return [...placements.keys()]
}

/** The command line running a shard host with this installation's node and built files. */
export function shardHostProgram(): string[] {
  return [process.execPath, ...workerExecArgv(), SHARDS_BIN]
}

/** A non-loopback IPv4 address of this machine (the first), or 127.0.0.1 when it has none. */
export function externalAddress(): string {
  for (const entries of Object.values(networkInterfaces())) {
    const found = (entries ?? []).find((entry) => entry.family === 'IPv4' && !entry.internal)
    if (found) return found.address
  }
  return '127.0.0.1'
}

/** Each server's maxmemory: its share of totalMem times fullFraction, at least 1 byte (0 would mean "no limit"). */
export function shardMaxmemory(totalMem: number, shards: number, fullFraction: number): number {
  return Math.max(1, Math.floor((totalMem / shards) * fullFraction))
}

/**
 * Starts the servers of a dictionary and resolves once every one answers. On any failure
 * (binary missing, a server or host that exited, a block that failed, no report within
 * startTimeoutMs) it stops whatever started and rejects with DDictStartError naming the node
 * and the reason.
 */
export async function startShards(request: PlacementRequest): Promise<ShardGroup> {
  const logger = request.logger ?? silentLogger
  const kind = request.provider !== undefined ? 'provider' : 'local'
  const factory = placements.get(kind)
  if (!factory) {
    throw new DDictStartError(request.name, `the '${kind}' placement is not loaded: import 'tsflow/ddict' (or 'tsflow'), which registers it`)
  }
  const placement = await factory(request)
  const shardCount = placement.hosts * placement.serversPerHost
  const maxmemory = shardMaxmemory(request.totalMem ?? DDICT_DEFAULTS.totalMem, shardCount, request.fullFraction ?? DDICT_DEFAULTS.fullFraction)
  const password = request.password ?? randomBytes(24).toString('hex')
  const startTimeoutMs = request.startTimeoutMs ?? DDICT_DEFAULTS.startTimeoutMs
  const links = new HostLinks(placement.hosts, logger)
  const group = new StartedShards(request.name, placement, links, password, maxmemory)
  try {
    const port = await links.listen(placement.listen.bind)
    const flags = ddictShardsSpec.encode({
      id: request.id,
      report: `${placement.listen.address.includes(':') ? `[${placement.listen.address}]` : placement.listen.address}:${port}`,
      count: placement.serversPerHost,
      maxmemory,
      replicas: request.replicas ?? DDICT_DEFAULTS.replicas,
      bind: placement.serverAddress.bind,
      advertise: placement.serverAddress.advertise,
      redisServer: request.redisServer,
      dir: request.dir,
      logLevel: logger.enabled('debug') ? 'debug' : 'info',
    })
    logger.info(`ddict ${request.name}: starting ${shardCount} Redis server(s) (${placement.kind}: ${placement.hosts} host(s) x ${placement.serversPerHost}), maxmemory ${maxmemory} bytes each`)
    await placement.launch({ program: shardHostProgram(), flags, env: { [DDICT_PASSWORD_ENV]: password }, fail: (reason) => links.fail(reason) })
    await withTimeout(links.ready(), startTimeoutMs, async () => {
      const reported = links.reports()
      const extra = (await placement.explainTimeout?.().catch(() => '')) ?? ''
      return (
        `only ${reported.length} of ${placement.hosts} shard host(s) reported within startTimeoutMs (${startTimeoutMs} ms)` +
        `${reported.length ? ` (ready: ${reported.map((r) => r.node).join(', ')})` : ''}${extra ? `; ${extra}` : ''}; ` +
        'a batch queue may need a larger startTimeoutMs'
      )
    })
    await checkReachable(links, password)
  } catch (error) {
    await group.stop()
    if (error instanceof DDictStartError) throw error
    throw new DDictStartError(request.name, (error as Error).message, { cause: error })
  }
  placement.ready?.()
  group.collect()
  logger.info(`ddict ${request.name}: ${group.shards.length} server(s) ready: ${group.shards.map((s) => `${s.host}:${s.port}`).join(', ')}`)
  return group
}

/**
 * Every reported server must answer AUTH + PING from here, with this dictionary's password: an
 * advertised address this process cannot reach fails the start now, naming it, rather than every
 * later operation; and a report line from something that is not a shard host of ours (the
 * listener may face a network) cannot point the dictionary at servers that do not know the password.
 */
async function checkReachable(links: HostLinks, password: string): Promise<void> {
  const checks = links.reports().flatMap((report) =>
    report.shards.flatMap((shard) => [shard, ...shard.replicas].map(async ({ host, port }) => ((await pingRedis(host, port, password, REACH_TIMEOUT_MS)) ? undefined : `${host}:${port} (node ${report.node})`))),
  )
  const unreachable = (await Promise.all(checks)).filter((address): address is string => address !== undefined)
  if (unreachable.length > 0) {
    throw new Error(
      `the server(s) ${unreachable.join(', ')} reported ready but do not answer AUTH + PING from this process within ${REACH_TIMEOUT_MS} ms; ` +
        'check that this machine can reach the nodes at those addresses (bindAddress, advertiseAddress, firewalls)',
    )
  }
}

async function withTimeout(promise: Promise<void>, ms: number, explain: () => Promise<string>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void explain().then((message) => reject(new Error(message)), reject), ms)
  })
  try {
    await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

class StartedShards implements ShardGroup {
  shards: DDictShardInfo[] = []
  private pids = new Map<number, { node: string; hostPid: number; pid: number }>()
  private stopping: Promise<void> | undefined

  constructor(
    private readonly name: string,
    private readonly placement: Placement,
    private readonly links: HostLinks,
    readonly password: string,
    private readonly maxmemory: number,
  ) {}

  /** The shards of every report, in a deterministic order. */
  collect(): void {
    const all = this.links.reports().flatMap((report) => report.shards.map((shard) => ({ ...shard, node: report.node, hostPid: report.pid })))
    all.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port))
    this.shards = all.map((shard, index) => {
      this.pids.set(index, { node: shard.node, hostPid: shard.hostPid, pid: shard.pid })
      return { index, host: shard.host, port: shard.port, node: shard.node, maxmemory: shard.maxmemory, replicas: shard.replicas }
    })
  }

  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      // Connections, listener and host process are unref'd (an undestroyed dictionary must not
      // keep its creator alive); a stop that was asked for must still run to its end.
      const keepAlive = setInterval(() => undefined, 1000)
      try {
        await this.links.stop(STOP_GRACE_MS)
        await this.placement.cleanup()
      } finally {
        clearInterval(keepAlive)
      }
    })())
  }

  onLost(listener: (message: string, shard?: DDictShardInfo) => void): () => void {
    return this.links.onLost((message, lost) => {
      const found = lost && this.shards.find((s) => s.node === lost.node && s.host === lost.host && (s.port === lost.port || s.replicas.some((r) => r.port === lost.port)))
      listener(found ? `shard ${found.index} (${found.host}:${found.port}): ${message}` : message, found)
    })
  }

  describe(): Record<string, unknown> {
    return {
      dict: this.name,
      ...this.placement.describe(),
      maxmemory: this.maxmemory,
      shards: this.shards.map((s) => ({ index: s.index, address: `${s.host}:${s.port}`, node: s.node, pid: this.pids.get(s.index)?.pid, hostPid: this.pids.get(s.index)?.hostPid, replicas: s.replicas.length })),
    }
  }
}

// ---- local placement: one shard host on this machine

class LocalPlacement implements Placement {
  readonly kind = 'local'
  readonly hosts = 1
  readonly serversPerHost: number
  readonly listen = { bind: '127.0.0.1', address: '127.0.0.1' }
  readonly serverAddress: { bind: string; advertise?: string }
  private child: ChildProcess | undefined
  private exit: Promise<void> | undefined

  constructor(request: PlacementRequest) {
    this.serversPerHost = request.managersPerNode ?? DDICT_DEFAULTS.managersPerNode
    const bind = request.bindAddress ?? DDICT_DEFAULTS.bindAddress
    // A wildcard bind is for clients elsewhere: advertise an address they can reach, not 127.0.0.1.
    const advertise = request.advertiseAddress ?? (WILDCARD_ADDRESSES.has(bind) ? externalAddress() : undefined)
    this.serverAddress = advertise === undefined ? { bind } : { bind, advertise }
  }

  async launch(launch: HostLaunch): Promise<void> {
    const [command, ...args] = launch.program
    // detached: the host leads its own process group, which holds its redis-servers, so cleanup()
    // can reach all of them with one signal should the host itself be gone.
    const child = spawn(command!, [...args, ...launch.flags], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...launch.env } })
    this.child = child
    let stderr = ''
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
    this.exit = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        const tail = stderr.trim().split('\n').slice(-12).join('\n')
        launch.fail(`the shard host on this machine (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`} before reporting${tail ? `; its stderr:\n${tail}` : ''}`)
        resolve()
      })
      child.once('error', (error) => {
        launch.fail(`cannot start the shard host (${command}): ${error.message}`)
        resolve()
      })
    })
    child.unref()
    ;(child.stderr as unknown as { unref?: () => void }).unref?.()
  }

  async cleanup(): Promise<void> {
    const child = this.child
    if (!child?.pid || !this.exit) return
    if (!(await settledWithin(this.exit, STOP_GRACE_MS))) child.kill('SIGTERM')
    const exited = await settledWithin(this.exit, 2000)
    // A host that did not end cleanly may have left servers in its group (it leads it): they go too.
    if (!exited || child.exitCode !== 0) killGroup(child.pid)
    await delay(0)
  }

  describe(): Record<string, unknown> {
    return { placement: 'local', hostPid: this.child?.pid, bind: this.serverAddress.bind, advertise: this.serverAddress.advertise }
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // the group is empty
  }
}

registerPlacement('local', (request) => new LocalPlacement(request))
