import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { managerSpec } from '../../protocol/manager.js'
import { workerExecArgv } from '../../runtime/exec-argv.js'
import { MANAGER_KEY_FILES } from '../../transport/curve.js'
import { tcpEndpoint } from '../../transport/sockets.js'
import { shellQuote } from '../../launchers/shell.js'
import type { LogLevel } from '../../util/logger.js'
import type { ResolvedHtexOptions } from './options.js'

const MANAGER_BIN = fileURLToPath(new URL('../../bin/manager.js', import.meta.url))

/** What the command of a block's managers depends on besides the executor's options. */
export interface ManagerLaunch {
  blockId: string
  /** the interchange's port for managers */
  workerPort: number
  runDir: string
  /** the kernel's log level, used when the executor sets none */
  logLevel: LogLevel
  /** the key directory managers read when encrypted (default runDir/curve) */
  curveDir?: string
  /** how often managers sample running tasks (host.monitor.resourceIntervalMs); 0 or unset: off */
  resourceIntervalMs?: number
}

/** The command each node of a block runs: the manager, pointed at this executor's interchange. */
export function managerCommand(o: ResolvedHtexOptions, launch: ManagerLaunch): string {
  const flags = managerSpec.encode({
    interchange: tcpEndpoint(o.address === '0.0.0.0' || o.address === '::' || o.address === '*' ? '127.0.0.1' : o.address, launch.workerPort),
    blockId: launch.blockId,
    workerMode: o.workerMode,
    maxWorkersPerNode: o.maxWorkersPerNode,
    coresPerWorker: o.coresPerWorker,
    memPerWorker: o.memPerWorker,
    prefetchCapacity: o.prefetchCapacity,
    cpuAffinity: o.cpuAffinity,
    ...(o.accelerators.length > 0 ? { accelerators: o.accelerators, acceleratorEnv: o.acceleratorEnv } : {}),
    heartbeatPeriodMs: o.heartbeatPeriodMs,
    heartbeatThresholdMs: o.heartbeatThresholdMs,
    walltimeSeconds: o.provider.walltimeSeconds,
    walltimeMarginMs: o.provider.walltimeSeconds !== undefined ? o.walltimeMarginMs : undefined,
    resourceIntervalMs: launch.resourceIntervalMs ? launch.resourceIntervalMs : undefined,
    curveDir: o.encrypted ? (launch.curveDir ?? join(launch.runDir, 'curve')) : undefined,
    logDir: launch.runDir,
    logLevel: o.logLevel ?? launch.logLevel,
  })
  const program = o.managerCommand ?? [process.execPath, ...workerExecArgv(), MANAGER_BIN].map((word) => shellQuote(word)).join(' ')
  // managerCommand is shell text the user wrote (it may hold flags and quoting of its own).
  const command = [program, ...flags.map((word) => shellQuote(word))].join(' ')
  return o.managerLaunchPrefix ? `${o.managerLaunchPrefix} ${command}` : command
}

/**
 * The key files a manager reads when encryption is on (never server.secret), for providers whose
 * nodes do not share this host's filesystem (Kubernetes ships them in a Secret).
 */
export function managerFiles(o: ResolvedHtexOptions, runDir: string, curveDir?: string): Record<string, string> | undefined {
  if (!o.encrypted) return undefined
  const dir = curveDir ?? join(runDir, 'curve')
  return Object.fromEntries(MANAGER_KEY_FILES.map((name) => [join(dir, name), readFileSync(join(dir, name), 'utf8')]))
}
