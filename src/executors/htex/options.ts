import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { ConfigError } from '../../errors.js'
import { anyOf, boolean, join, nonNegativeInt, object, oneOf, optional, positiveInt, string, type Check } from '../../util/schema.js'
import {
  checkHeartbeats,
  DEFAULT_HEARTBEAT_PERIOD_MS,
  DEFAULT_HEARTBEAT_THRESHOLD_MS,
  DEFAULT_MANAGER_SELECTOR,
  DEFAULT_WALLTIME_MARGIN_MS,
  interchangeSpec,
  type ManagerSelectorName,
} from '../../protocol/interchange.js'
import { hostFacts, managerSpec, MANAGER_DEFAULTS, workerCount, type HostFacts } from '../../protocol/manager.js'
import { LOG_LEVELS, type LogLevel } from '../../util/logger.js'
import { providerOption } from '../../providers/index.js'
import type { ExecutionProvider } from '../../providers/base.js'
import { LocalProvider } from '../../providers/local/provider.js'
import { strategyOptionShape } from '../../scaling/index.js'
import { DEFAULT_DRAIN_LEAD_MS, DEFAULT_MAX_IDLE_TIME_MS, DEFAULT_STRATEGY, DEFAULT_STRATEGY_PERIOD_MS } from '../../scaling/strategy.js'
import type { StrategyName } from '../../scaling/decide.js'
import { isLoopback } from '../../transport/sockets.js'
import { proxyOption, type ExecutorProxyOptions, type ResolvedProxyOption } from '../proxying.js'
import { proxyImportsOption, type ExecutorImportsOptions, type ResolvedImportsOption } from '../imports.js'

export interface HighThroughputExecutorOptions {
  /** Name used to pick this executor in an app's `executors` option. Default 'htex'. */
  label?: string
  /** Where blocks (manager jobs) run. Default: a LocalProvider with one block. */
  provider?: ExecutionProvider | { type: string; [option: string]: unknown }
  /** Address the interchange listens on for managers. Default 127.0.0.1 (this host only). */
  address?: string
  /**
   * Workers as child processes (default: a crashing task takes down one worker only, and
   * measured fastest here) or as threads of the manager (quickest to start).
   */
  workerMode?: 'threads' | 'processes'
  /** Most workers per node. Default: CPUs / coresPerWorker. */
  maxWorkersPerNode?: number
  /** CPUs each worker needs (may be fractional). Default 1. */
  coresPerWorker?: number
  /** Memory each worker needs, MB; caps workers by the node's memory. */
  memPerWorker?: number
  /**
   * Tasks a manager holds beyond one per worker, to hide the round trip to the interchange.
   * 'auto' (default) adapts to measured task length: deep for short tasks, none for long ones.
   */
  prefetchCapacity?: number | 'auto'
  /** CPU affinity of workers: 'none', 'block', 'alternating', or explicit lists "0,1;2,3". Default 'none'. */
  cpuAffinity?: string
  /** Accelerator ids handed out one per worker (or a count, meaning 0..n-1). */
  availableAccelerators?: string[] | number
  /** Variable that names a worker's accelerator. Default CUDA_VISIBLE_DEVICES. */
  acceleratorEnv?: string
  /** Heartbeat period between interchange and managers, ms. Default DEFAULT_HEARTBEAT_PERIOD_MS (2000). */
  heartbeatPeriodMs?: number
  /** Silence after which a manager (or the interchange) is declared lost, ms. Default DEFAULT_HEARTBEAT_THRESHOLD_MS (10000). */
  heartbeatThresholdMs?: number
  /** CurveZMQ encryption. Default: on when `address` is not a loopback address. */
  encrypted?: boolean
  /** Scaling strategy: 'none', 'simple' or 'htex_auto_scale'. Default 'simple'. */
  strategy?: StrategyName
  strategyPeriodMs?: number
  /** Idle time after which htex_auto_scale releases a block, ms. */
  maxIdleTimeMs?: number
  /**
   * How long before its walltime a block is drained (no new tasks; running ones finish) and, while
   * work remains, replaced, ms. Default 60000 (at most half a block's life). Needs the provider's
   * `walltime`. See docs/scaling.md.
   */
  drainLeadMs?: number
  /**
   * How the interchange picks the manager for queued tasks: 'packed' (default) fills managers of
   * blocks that already have work first, so idle blocks stay idle and can be released; 'spread'
   * serves managers round robin, spreading work over every block. See docs/scaling.md.
   */
  managerSelector?: ManagerSelectorName
  /**
   * A task with a declared walltime goes only to a block with at least its walltime plus this
   * margin left, and one longer than the provider's walltime less this margin fails at once, ms.
   * Default 5000.
   */
  walltimeMarginMs?: number
  /**
   * Serve the interchange's Prometheus metrics on this port (0: a free one; the URL is logged and
   * is `executor.metricsUrl`). Off by default. See docs/monitoring.md "Prometheus".
   */
  metricsPort?: number
  /** Address of the metrics port. Default 127.0.0.1; 0.0.0.0 lets a Prometheus on another host scrape it. */
  metricsAddress?: string
  /** Words put before the manager command, e.g. "apptainer exec image.sif". */
  managerLaunchPrefix?: string
  /**
   * The program that starts a manager on a node, before its flags, for nodes where this host's
   * Node.js and tsflow paths do not exist: e.g. "tsflow-manager" (on PATH after workerInit) or
   * "node --import tsx /shared/flow/node_modules/tsflow/dist/bin/manager.js". Default: this
   * process's node, its flags and tsflow's manager script, by absolute path (a shared file system).
   */
  managerCommand?: string
  /**
   * How long a block may run (by the scheduler's word; queue time does not count) with none of its
   * managers connecting before it is cancelled as failed, ms. Managers that cannot reach `address`
   * (a firewall, an address the nodes do not route to) or a workerInit that never ends would
   * otherwise hold the allocation while tasks wait; when no manager is connected at all, the
   * waiting tasks then fail with the reason. Default 300000 (5 min); 0: no limit.
   */
  managerConnectTimeoutMs?: number
  /** Most tasks in one message to the interchange. Default 2048. */
  maxBatchSize?: number
  /** Log level of the interchange and managers. Default: the kernel's. */
  logLevel?: LogLevel
  /**
   * Arguments and results that encode to more than `threshold` travel through `store` as proxies,
   * not through the interchange (docs/proxy.md "Executor option"). Off by default.
   */
  proxy?: ExecutorProxyOptions
  /**
   * The npm packages each app imports travel with its tasks through `store`, are unpacked once per
   * node and loaded from there, so nodes need not have them installed (docs/proxy-imports.md
   * "The executor option"). Off by default.
   */
  proxyImports?: ExecutorImportsOptions
}

export interface ResolvedHtexOptions {
  label: string
  provider: ExecutionProvider
  address: string
  workerMode: 'threads' | 'processes'
  maxWorkersPerNode: number | undefined
  coresPerWorker: number
  memPerWorker: number | undefined
  prefetchCapacity: number | 'auto'
  cpuAffinity: string
  accelerators: string[]
  acceleratorEnv: string
  heartbeatPeriodMs: number
  heartbeatThresholdMs: number
  encrypted: boolean
  strategy: StrategyName
  strategyPeriodMs: number
  maxIdleTimeMs: number
  drainLeadMs: number
  managerSelector: ManagerSelectorName
  walltimeMarginMs: number
  metricsPort: number | undefined
  metricsAddress: string | undefined
  managerLaunchPrefix: string | undefined
  managerCommand: string | undefined
  managerConnectTimeoutMs: number
  maxBatchSize: number
  logLevel: LogLevel | undefined
  proxy: ResolvedProxyOption | undefined
  proxyImports: ResolvedImportsOption | undefined
}

/** Five minutes: managers that start slowly (a long workerInit, a cold shared file system) still connect. */
export const DEFAULT_MANAGER_CONNECT_TIMEOUT_MS = 300_000

// The options a manager receives are checked by the manager spec's own checks, so the executor
// and `tsflow-manager` refuse the same values for the same reasons.
const manager = managerSpec.fields

/** Wildcards: listen on every interface; managers on this host then connect to 127.0.0.1. */
const WILDCARDS = new Set(['0.0.0.0', '::', '*'])

function localAddresses(): Map<string, string[]> {
  const byInterface = new Map<string, string[]>()
  for (const [name, entries] of Object.entries(networkInterfaces())) {
    byInterface.set(name, (entries ?? []).map((entry) => entry.address))
  }
  return byInterface
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/**
 * The interchange binds this address and managers connect to it, so it must be an address of
 * this host: an IP of one of its interfaces, a wildcard, an interface name (its IPv4 address is
 * used, like Parsl's address_by_interface) or a hostname (resolved when the executor starts).
 */
export const hostAddress: Check<string> = (value, path) => {
  const text = string(value, path).trim()
  if (WILDCARDS.has(text)) return text
  const interfaces = localAddresses()
  const ip = text.replace(/^\[|\]$/g, '')
  if (isIP(ip)) {
    if ([...interfaces.values()].some((addresses) => addresses.includes(ip))) return ip
    throw new ConfigError(
      path,
      `is ${ip}, which is not an address of any interface of this host (${describeInterfaces(interfaces)}); ` +
        `use one of those, '0.0.0.0' for all interfaces, or an interface name`,
    )
  }
  const nic = interfaces.get(text)
  if (nic) {
    const ipv4 = nic.find((entry) => isIP(entry) === 4) ?? nic[0]
    if (ipv4) return ipv4
  }
  if (HOSTNAME.test(text)) return text
  throw new ConfigError(
    path,
    `must be an IP address of this host, an interface name or a hostname (got ${JSON.stringify(text)}; interfaces: ${describeInterfaces(interfaces)})`,
  )
}

function describeInterfaces(interfaces: Map<string, string[]>): string {
  return [...interfaces].map(([name, addresses]) => `${name} ${addresses.join(' ')}`).join(', ')
}

/**
 * Resolves a hostname `address` to an IP of this host when the executor starts (DNS is
 * asynchronous, so `resolveHtexOptions` only checks its form). Throws ConfigError at `path`.
 */
export async function resolveAddress(value: string, path: string): Promise<string> {
  if (WILDCARDS.has(value) || isIP(value)) return value
  let resolved: { address: string }[]
  try {
    resolved = await lookup(value, { all: true })
  } catch (error) {
    throw new ConfigError(path, `is ${JSON.stringify(value)}, which does not resolve to an address (${(error as Error).message}); use an IP address or an interface name`)
  }
  const interfaces = localAddresses()
  const local = resolved.find(({ address }) => [...interfaces.values()].some((addresses) => addresses.includes(address)))
  if (!local) {
    throw new ConfigError(
      path,
      `is ${JSON.stringify(value)}, which resolves to ${resolved.map((r) => r.address).join(', ')}, not an address of this host (${describeInterfaces(interfaces)})`,
    )
  }
  return local.address
}

const schema = object({
  type: optional(string),
  label: string,
  provider: providerOption,
  address: hostAddress,
  workerMode: manager.workerMode.check,
  maxWorkersPerNode: manager.maxWorkersPerNode.check,
  coresPerWorker: manager.coresPerWorker.check,
  memPerWorker: manager.memPerWorker.check,
  prefetchCapacity: manager.prefetchCapacity.check,
  cpuAffinity: manager.cpuAffinity.check,
  availableAccelerators: anyOf<string[] | number>('a list of accelerator ids or a count', manager.accelerators.check, nonNegativeInt),
  acceleratorEnv: manager.acceleratorEnv.check,
  heartbeatPeriodMs: manager.heartbeatPeriodMs.check,
  heartbeatThresholdMs: manager.heartbeatThresholdMs.check,
  encrypted: boolean,
  ...strategyOptionShape,
  managerSelector: interchangeSpec.fields.managerSelector.check,
  walltimeMarginMs: interchangeSpec.fields.walltimeMarginMs.check,
  metricsPort: interchangeSpec.fields.metricsPort.check,
  metricsAddress: interchangeSpec.fields.metricsAddress.check,
  managerLaunchPrefix: string,
  managerCommand: string,
  managerConnectTimeoutMs: nonNegativeInt,
  maxBatchSize: positiveInt,
  logLevel: oneOf(...LOG_LEVELS),
  proxy: proxyOption,
  proxyImports: proxyImportsOption,
})

export function resolveHtexOptions(raw: HighThroughputExecutorOptions, path: string): ResolvedHtexOptions {
  const o = schema(raw, path)
  const address = o.address ?? '127.0.0.1'
  checkHeartbeats(o, (key) => join(path, key))
  const accelerators =
    typeof o.availableAccelerators === 'number'
      ? Array.from({ length: o.availableAccelerators }, (_, i) => String(i))
      : (o.availableAccelerators ?? [])
  return {
    label: o.label ?? 'htex',
    provider: o.provider ?? new LocalProvider({}),
    address,
    workerMode: o.workerMode ?? MANAGER_DEFAULTS.workerMode,
    maxWorkersPerNode: o.maxWorkersPerNode,
    coresPerWorker: o.coresPerWorker ?? MANAGER_DEFAULTS.coresPerWorker,
    memPerWorker: o.memPerWorker,
    prefetchCapacity: o.prefetchCapacity ?? MANAGER_DEFAULTS.prefetchCapacity,
    cpuAffinity: o.cpuAffinity ?? MANAGER_DEFAULTS.cpuAffinity,
    accelerators,
    acceleratorEnv: o.acceleratorEnv ?? MANAGER_DEFAULTS.acceleratorEnv,
    heartbeatPeriodMs: o.heartbeatPeriodMs ?? DEFAULT_HEARTBEAT_PERIOD_MS,
    heartbeatThresholdMs: o.heartbeatThresholdMs ?? DEFAULT_HEARTBEAT_THRESHOLD_MS,
    encrypted: o.encrypted ?? !isLoopback(address),
    strategy: (o.strategy as StrategyName | undefined) ?? DEFAULT_STRATEGY,
    strategyPeriodMs: (o.strategyPeriodMs as number | undefined) ?? DEFAULT_STRATEGY_PERIOD_MS,
    maxIdleTimeMs: (o.maxIdleTimeMs as number | undefined) ?? DEFAULT_MAX_IDLE_TIME_MS,
    drainLeadMs: (o.drainLeadMs as number | undefined) ?? DEFAULT_DRAIN_LEAD_MS,
    managerSelector: o.managerSelector ?? DEFAULT_MANAGER_SELECTOR,
    walltimeMarginMs: o.walltimeMarginMs ?? DEFAULT_WALLTIME_MARGIN_MS,
    metricsPort: o.metricsPort,
    metricsAddress: o.metricsAddress,
    managerLaunchPrefix: o.managerLaunchPrefix,
    managerCommand: o.managerCommand?.trim() || undefined,
    managerConnectTimeoutMs: o.managerConnectTimeoutMs ?? DEFAULT_MANAGER_CONNECT_TIMEOUT_MS,
    maxBatchSize: o.maxBatchSize ?? 2048,
    logLevel: o.logLevel,
    proxy: o.proxy,
    proxyImports: o.proxyImports,
  }
}

/**
 * The estimate of the workers a manager will start, used to size blocks until a manager has
 * registered and reported its real count: the manager's own rule (CPUs / coresPerWorker, capped
 * by maxWorkersPerNode, memory / memPerWorker and accelerators) applied to the workflow host,
 * i.e. it assumes the nodes of a block look like this machine.
 */
export function workersPerNode(options: ResolvedHtexOptions, facts: HostFacts = hostFacts()): number {
  return workerCount(options, facts).workers
}
