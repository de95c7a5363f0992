/**
 * A local endpoint for the experiments that measure one: started with the real CLI
 * (`tsflow endpoint configure|allow|start|stop`, a detached daemon) in a private TSFLOW_HOME under
 * the experiment's scratch directory, so nothing touches ~/.tsflow, and always stopped at the end.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Config } from 'tsflow'
import { onCleanup } from '../lib/cleanup.js'

const run = promisify(execFile)

/** dist/bin/tsflow.js of the tsflow this bench imports. */
export function cliPath(): string {
  return join(dirname(fileURLToPath(import.meta.resolve('tsflow'))), 'bin', 'tsflow.js')
}

/** Why no local endpoint can be measured here (the endpoint code is not in this build), or undefined. */
export async function endpointUnavailable(): Promise<string | undefined> {
  const tsflow = (await import('tsflow')) as Record<string, unknown>
  if (typeof tsflow.EndpointExecutor !== 'function') return 'EndpointExecutor is not in this build of tsflow: the endpoint code is not merged yet'
  if (!existsSync(cliPath())) return `no endpoint CLI at ${cliPath()}: the endpoint code is not merged yet`
  return undefined
}

export interface LocalEndpoint {
  name: string
  home: string
  /** runs the CLI with TSFLOW_HOME set; returns stdout */
  cli(...args: string[]): Promise<string>
  start(): Promise<void>
  stop(): Promise<void>
  /** its config.json (what the rows record: the client side cannot describe the endpoint's pool) */
  config(): unknown
}

let counter = 0

/** Configures (one block of `workers` workers; this client's key allowed) and starts. */
export async function startLocalEndpoint(scratch: string, { workers }: { workers: number }): Promise<LocalEndpoint> {
  const name = `funcx-${process.pid}-${counter++}`
  const home = join(scratch, 'tsflow-home')
  const env = { ...process.env, TSFLOW_HOME: home }
  const cli = async (...args: string[]) => (await run(process.execPath, [cliPath(), 'endpoint', ...args], { env, timeout: 60_000 })).stdout
  let running = false
  const endpoint: LocalEndpoint = {
    name,
    home,
    cli,
    async start() {
      await cli('start', name)
      running = true
    },
    async stop() {
      if (!running) return
      running = false
      await cli('stop', name)
    },
    config: () => JSON.parse(readFileSync(join(home, 'endpoints', name, 'config.json'), 'utf8')) as unknown,
  }
  onCleanup(() => endpoint.stop())
  // configure puts this user's client key (made in the private home) on the allow-list.
  await cli('configure', name, '--set', `maxWorkersPerNode=${workers}`)
  await endpoint.start()
  return endpoint
}

/** A client config using the endpoint (a fresh executor each call). */
export async function endpointConfig(endpoint: LocalEndpoint, scratch: string): Promise<Config> {
  const { EndpointExecutor } = (await import('tsflow')) as unknown as { EndpointExecutor: new (options: Record<string, unknown>) => NonNullable<Config['executors']>[number] }
  return { runDir: join(scratch, 'runinfo'), executors: [new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, label: 'endpoint' })] }
}
