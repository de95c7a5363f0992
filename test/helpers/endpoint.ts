// A real endpoint in this process (runEndpoint, as the daemon runs it: its interchange,
// provider, blocks and managers, endpoint.json), in a TSFLOW_HOME of its own that also holds the client key it admits.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { addAllowedClient, ensureClientKeys, runEndpoint, writeDefaultEndpointConfig, type EndpointServer } from 'tsflow/endpoint'
import { endpointPaths, type EndpointState } from 'tsflow/protocol'

export interface TestEndpoint {
  server: EndpointServer
  name: string
  home: string
  state: EndpointState
  address: string
  clientKey: string
}

/** Fast heartbeats so losses are seen in a second; two workers on one local block. */
export const TEST_ENDPOINT_CONFIG = {
  provider: { type: 'local', initBlocks: 1, minBlocks: 1, maxBlocks: 1 },
  maxWorkersPerNode: 2,
  heartbeatPeriodMs: 200,
  heartbeatThresholdMs: 1000,
}

export async function startEndpoint(t: Test, config: Record<string, unknown> = {}, options: { allowClient?: boolean; name?: string } = {}): Promise<TestEndpoint> {
  const home = mkdtempSync(join(tmpdir(), 'tsflow-ep-client-'))
  if (process.env.KEEP_ENDPOINT_HOME) t.comment(`endpoint home ${home}`)
  const name = options.name ?? 'ep'
  let server: EndpointServer | undefined
  // Registered before use: a failing start still removes what it made.
  t.teardown(async () => {
    await server?.stop('the test is over').catch(() => undefined)
    if (!process.env.KEEP_ENDPOINT_HOME) rmSync(home, { recursive: true, force: true })
  })
  const paths = endpointPaths(name, home)
  const clientKey = ensureClientKeys(home).publicKey
  if (options.allowClient ?? true) addAllowedClient(paths, clientKey, 'test client')
  writeDefaultEndpointConfig(paths, { ...TEST_ENDPOINT_CONFIG, ...config })
  // As the daemon runs it: config.json, endpoint.log, endpoint.json once listening.
  server = await runEndpoint({ name, home })
  const state = JSON.parse(readFileSync(paths.state, 'utf8')) as EndpointState
  return { server, name, home, state, address: `tcp://127.0.0.1:${state.clientPort}`, clientKey }
}
