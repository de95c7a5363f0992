/**
 * The endpoint: one long-lived process (bin/endpoint.ts runs `runEndpoint`) holding, in-process,
 * an interchange whose client side serves many sessions (front.ts), and the provider, blocks and
 * scaling strategy that give it managers (executors/htex/provisioning.ts, as the HTEX executor
 * does). Its files live in `endpointPaths(name, home)`; its log is endpoint.log.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { ConfigError, EndpointStopped, UsageError } from '../errors.js'
import { Interchange } from '../interchange/interchange.js'
import { ENDPOINT_NAME, endpointPaths, tsflowHome, type EndpointPaths, type EndpointState, type EndpointStatus } from '../protocol/endpoint.js'
import { PROTOCOL_VERSION, TSFLOW_VERSION } from '../protocol/version.js'
import { Logger, formatError, type LogLevel } from '../util/logger.js'
import { resolveAddress } from '../executors/htex/options.js'
import { Provisioning } from '../executors/htex/provisioning.js'
import { loadEndpointConfig, resolveEndpointConfig, type EndpointConfig } from './config.js'
import { EndpointFront } from './front.js'
import { ensureEndpointKeys, readAllowedClients } from './keys.js'

export interface EndpointServerOptions {
  name: string
  /** $TSFLOW_HOME (default: tsflowHome()) */
  home?: string
  /** validated config, or a raw one like config.json's content; default: the endpoint's config.json */
  config?: EndpointConfig | Record<string, unknown>
  /** default: a logger appending to the endpoint's endpoint.log */
  logger?: Logger
}

type Phase = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

export class EndpointServer {
  readonly name: string
  readonly paths: EndpointPaths
  /** resolves with the reason once the endpoint has stopped */
  readonly done: Promise<string>
  private resolveDone!: (reason: string) => void
  readonly config: EndpointConfig
  private readonly log: Logger
  private readonly ownsLogger: boolean
  private phase: Phase = 'new'
  private interchange: Interchange | undefined
  private front: EndpointFront | undefined
  private provisioning: Provisioning | undefined
  private state: EndpointState | undefined
  private stopping: Promise<void> | undefined
  private startedAt = 0
  private managersLostBefore = 0

  constructor(options: EndpointServerOptions) {
    if (!ENDPOINT_NAME.test(options.name)) {
      throw new UsageError(`${JSON.stringify(options.name)} is not an endpoint name: use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`)
    }
    this.name = options.name
    this.paths = endpointPaths(options.name, options.home ?? tsflowHome())
    const config = options.config
    this.config =
      config === undefined
        ? loadEndpointConfig(this.paths, options.name)
        : isResolved(config)
          ? config
          : resolveEndpointConfig(config, `endpoint ${options.name} option config`)
    this.ownsLogger = !options.logger
    this.log = options.logger ?? new Logger('endpoint', this.config.logLevel, this.paths.log)
    this.done = new Promise((resolve) => (this.resolveDone = resolve))
  }

  /** Binds both ports (CURVE on), starts the blocks, and resolves with what endpoint.json holds. */
  async start(): Promise<EndpointState> {
    if (this.phase !== 'new') throw new UsageError(`endpoint ${this.name}: start() was called twice`)
    this.phase = 'starting'
    const config = this.config
    const htex = config.htex
    try {
      const keys = ensureEndpointKeys(this.paths)
      readAllowedClients(this.paths) // a bad line stops the start, naming file:line
      const workerAddress = await resolveAddress(htex.address, `${config.file}: address`)
      htex.address = workerAddress
      this.startedAt = Date.now()
      const runDir = join(this.paths.runs, `${new Date(this.startedAt).toISOString().replace(/[:.]/g, '-')}-${process.pid}`)
      mkdirSync(runDir, { recursive: true })
      const front = new EndpointFront({
        endpoint: this.name,
        paths: this.paths,
        heartbeatPeriodMs: htex.heartbeatPeriodMs,
        heartbeatThresholdMs: htex.heartbeatThresholdMs,
        resultTtlMs: config.resultTtlMs,
        maxRetainedBytesPerSession: config.maxRetainedBytesPerSession,
        sessionIdleMs: config.sessionIdleMs,
        logger: this.log.child('sessions'),
        onManagerEvent: (event, info, reason) => this.provisioning?.managerEvent(event, info, reason),
        onBeat: () => this.interchange && this.provisioning?.statusReply(this.interchange.core.managerInfos()),
        status: () => this.status(),
      })
      this.front = front
      this.interchange = new Interchange({
        clientAddress: config.clientAddress,
        clientPort: config.clientPort,
        workerAddress,
        curveDir: this.paths.curveDir,
        heartbeatPeriodMs: htex.heartbeatPeriodMs,
        heartbeatThresholdMs: htex.heartbeatThresholdMs,
        managerSelector: htex.managerSelector,
        walltimeMarginMs: htex.walltimeMarginMs,
        logger: this.log.child('interchange'),
        runId: this.name,
        clientSide: front,
        ...(htex.metricsPort !== undefined ? { metricsPort: htex.metricsPort, metricsAddress: htex.metricsAddress } : {}),
      })
      const ports = await this.interchange.start()
      const core = this.interchange.core
      this.provisioning = new Provisioning(htex, {
        what: `endpoint ${this.name}`,
        addressOption: `${config.file}: address`,
        outstanding: () => front.sessions.outstandingTasks,
        running: () => this.phase === 'running' || this.phase === 'starting',
        drain: (blockIds) => core.onClientMessage({ t: 'drain', blockIds }),
        blockEnded: (blockId, reason) => {
          core.onClientMessage({ t: 'block_ended', blockId, reason })
          front.scheduleFlush()
        },
        failWaiting: (error) => {
          for (const id of front.sessions.failAll(() => error)) core.queue.remove(id)
        },
      })
      await this.provisioning.start({ workerPort: ports.workerPort, runDir, curveDir: this.paths.curveDir, logLevel: config.logLevel, logger: this.log })
      this.state = {
        name: this.name,
        pid: process.pid,
        host: hostname(),
        clientAddress: config.clientAddress,
        clientPort: ports.clientPort,
        workerAddress,
        workerPort: ports.workerPort,
        serverPublicKey: keys.server.publicKey,
        startedAt: this.startedAt,
        version: TSFLOW_VERSION,
        proto: PROTOCOL_VERSION,
        log: this.paths.log,
        runDir,
        ...(ports.metricsPort !== undefined ? { metricsUrl: `http://${htex.metricsAddress ?? '127.0.0.1'}:${ports.metricsPort}/metrics` } : {}),
      }
    } catch (error) {
      this.log.error(`endpoint ${this.name} could not start`, error)
      await this.teardown(`failed to start: ${(error as Error).message}`)
      throw error
    }
    this.phase = 'running'
    this.log.info(
      `endpoint ${this.name} running (pid ${process.pid}, tsflow ${TSFLOW_VERSION}): clients ${config.clientAddress}:${this.state.clientPort}, ` +
        `managers ${this.state.workerAddress}:${this.state.workerPort}, provider ${htex.provider.label}, strategy ${htex.strategy}, ` +
        `results kept ${Math.round(config.resultTtlMs / 1000)} s, run dir ${this.state.runDir}` +
        (this.state.metricsUrl !== undefined ? `, Prometheus metrics at ${this.state.metricsUrl}` : ''),
    )
    return this.state
  }

  /**
   * Stops the endpoint: every queued or running task of every session fails with EndpointStopped
   * (sent to connected clients, followed by `stopping`), then managers are told to shut down and
   * blocks are stopped. Idempotent; resolves once everything is down.
   */
  stop(reason = 'stopped'): Promise<void> {
    this.stopping ??= this.doStop(reason)
    return this.stopping
  }

  private async doStop(reason: string): Promise<void> {
    if (this.phase === 'new') {
      this.phase = 'stopped'
      this.finish(reason)
      return
    }
    // A stop during start waits for the start to settle (it may fail and tear down itself).
    while (this.phase === 'starting') await new Promise((resolve) => setTimeout(resolve, 20))
    if (this.phase === 'stopped') return
    this.phase = 'stopping'
    this.log.info(`endpoint ${this.name} stopping: ${reason}`)
    await this.provisioning?.stopScaling()
    const interchange = this.interchange
    const front = this.front
    if (interchange && front) {
      const core = interchange.core
      const failed = front.sessions.stopAll(reason, (id) => (core.queue.has(id) ? 'queued' : 'running'))
      for (const id of failed) core.queue.remove(id)
      front.stopping(reason)
      if (failed.length > 0) this.log.warn(`${failed.length} queued or running tasks failed with ${new EndpointStopped(this.name, '').code}`)
    }
    await this.teardown(reason)
  }

  /** Interchange (managers told to shut down), then blocks and the provider. */
  private async teardown(reason: string): Promise<void> {
    if (this.interchange) {
      this.managersLostBefore = this.interchange.core.stats.managersLost
      await this.interchange.stop(reason)
    }
    try {
      if (this.provisioning) await this.provisioning.shutdown()
      else await this.config.htex.provider.shutdown()
    } catch (error) {
      this.log.error('stopping the blocks failed', error)
    }
    this.phase = 'stopped'
    this.finish(reason)
  }

  private finish(reason: string): void {
    this.log.info(`endpoint ${this.name} stopped: ${reason}`)
    if (this.ownsLogger) this.log.close()
    this.resolveDone(reason)
  }

  /** Managers, workers, queued and running tasks, blocks, sessions. */
  status(): EndpointStatus {
    const core = this.interchange?.core
    const managers = core?.managerInfos() ?? []
    const blocks = (this.provisioning?.blocks?.blocks ?? []).map((block) => ({
      blockId: block.blockId,
      // The provider's view lags (it is polled): a block one of whose managers registered runs.
      state: block.state === 'pending' && managers.some((info) => info.blockId === block.blockId) ? 'running' : block.state,
      ...(block.jobId !== undefined ? { jobId: block.jobId } : {}),
    }))
    const totals = this.front?.sessions.totals
    return {
      name: this.name,
      pid: process.pid,
      version: TSFLOW_VERSION,
      startedAt: this.startedAt,
      queued: core?.queue.size ?? 0,
      running: core?.managers.placed ?? 0,
      managers,
      workers: managers.reduce((sum, info) => sum + info.workers, 0),
      blocks,
      sessions: this.front?.sessions.status() ?? [],
      totals: {
        tasksReceived: totals?.tasksReceived ?? 0,
        resultsSent: totals?.resultsSent ?? 0,
        failures: totals?.failures ?? 0,
        managersLost: core?.stats.managersLost ?? this.managersLostBefore,
      },
    }
  }

  /** What endpoint.json holds, once started. */
  get endpointState(): EndpointState | undefined {
    return this.state
  }
}

function isResolved(config: EndpointConfig | Record<string, unknown>): config is EndpointConfig {
  return typeof config.file === 'string' && typeof config.htex === 'object' && config.htex !== null && Object.isFrozen(config)
}

export interface RunEndpointOptions {
  name: string
  home?: string
  /** overrides config.json's logLevel */
  logLevel?: LogLevel
}

/**
 * What the daemon runs: reads config.json and the keys, opens endpoint.log, starts the endpoint,
 * then writes endpoint.pid and endpoint.json (each atomically) once it listens; both are removed
 * when it stops. SIGTERM and SIGINT stop it. Refuses to start while another live process holds
 * the endpoint's pid file.
 */
export async function runEndpoint(options: RunEndpointOptions): Promise<EndpointServer> {
  const home = options.home ?? tsflowHome()
  const paths = endpointPaths(options.name, home)
  const config = loadEndpointConfig(paths, options.name)
  const other = runningPid(paths)
  if (other.pid !== undefined) {
    throw new ConfigError(paths.pid, `names process ${other.pid}, which is running: endpoint ${options.name} already runs; stop it first (npx tsflow endpoint stop ${options.name})`)
  }
  const logger = new Logger('endpoint', options.logLevel ?? config.logLevel, paths.log)
  // A stale endpoint.json stays until this start replaces it: its dead pid tells clients to wait.
  if (other.stale) logger.warn(`${other.stale}: the last run did not stop cleanly (killed, or the host went down); this start replaces endpoint.pid and endpoint.json`)
  let server: EndpointServer
  try {
    server = new EndpointServer({ name: options.name, home, config, logger })
  } catch (error) {
    logger.error('could not start', error)
    logger.close()
    throw error
  }
  const onSignal = (signal: NodeJS.Signals) => void server.stop(`received ${signal}`)
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  const cleanup = () => {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
    // Only our own files: a newer endpoint may have started since.
    if (runningPidText(paths) === String(process.pid)) {
      rmSync(paths.state, { force: true })
      rmSync(paths.pid, { force: true })
    }
  }
  let state: EndpointState
  try {
    state = await server.start()
  } catch (error) {
    cleanup()
    logger.close()
    throw error
  }
  try {
    writeAtomic(paths.pid, `${process.pid}\n`)
    writeAtomic(paths.state, `${JSON.stringify(state, null, 2)}\n`)
  } catch (error) {
    logger.error(`could not write ${paths.state}`, error)
    await server.stop(`could not write ${paths.state}: ${formatError(error)}`)
    cleanup()
    logger.close()
    throw error
  }
  void server.done.then(() => {
    cleanup()
    logger.close()
  })
  return server
}

function runningPidText(paths: EndpointPaths): string | undefined {
  try {
    return readFileSync(paths.pid, 'utf8').trim()
  } catch {
    return undefined
  }
}

/**
 * The pid in endpoint.pid if that process is alive and is the one that wrote it; else what is
 * stale about the file (a daemon killed or a host rebooted leaves it behind), to be replaced.
 */
function runningPid(paths: EndpointPaths): { pid?: number; stale?: string } {
  const text = runningPidText(paths)
  if (text === undefined) return {}
  const pid = Number(text)
  if (!Number.isInteger(pid) || pid <= 0) return { stale: `${paths.pid} holds no pid (${JSON.stringify(text.slice(0, 20))})` }
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return { stale: `${paths.pid} names pid ${pid}, which is gone` }
  }
  const proc = procStart(pid)
  if (proc?.zombie) return { stale: `${paths.pid} names pid ${pid}, which has exited (a zombie)` }
  let written: number
  try {
    written = statSync(paths.pid).mtimeMs
  } catch {
    return { pid }
  }
  // The daemon started before it wrote its pid file; a process that started after the file was
  // written got the pid from the system after the daemon died (the slack absorbs clock steps).
  if (proc && proc.startedAt > written + PID_REUSE_SLACK_MS) {
    return { stale: `${paths.pid} names pid ${pid}, which now belongs to another process (started ${new Date(proc.startedAt).toISOString()}, after the file was written)` }
  }
  return { pid }
}

const PID_REUSE_SLACK_MS = 2000
/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on Linux's common architectures. */
const CLOCK_TICKS_PER_SECOND = 100

/** When `pid` started (wall clock, ms) and whether it is a zombie, from /proc; undefined without /proc. */
function procStart(pid: number): { startedAt: number; zombie: boolean } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // "pid (comm) state ppid ...": comm may hold spaces and ')', so fields count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const startTicks = Number(fields[19]) // field 22, starttime: ticks after boot
    const uptimeSeconds = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])
    if (!Number.isFinite(startTicks) || !Number.isFinite(uptimeSeconds)) return undefined
    return { startedAt: Date.now() - (uptimeSeconds - startTicks / CLOCK_TICKS_PER_SECOND) * 1000, zombie: fields[0] === 'Z' }
  } catch {
    return undefined
  }
}

function writeAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true })
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`)
  writeFileSync(temp, text, { mode: 0o600 })
  renameSync(temp, file)
}
