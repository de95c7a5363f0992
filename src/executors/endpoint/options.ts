import { existsSync, readFileSync } from 'node:fs'
import { ConfigError, EndpointNotFound } from '../../errors.js'
import { ENDPOINT_DEFAULTS, ENDPOINT_NAME, endpointPaths, tsflowHome, type EndpointState } from '../../protocol/endpoint.js'
import { Z85_KEY } from '../../transport/curve.js'
import { tcpEndpoint } from '../../transport/sockets.js'
import { boolean, number, object, optional, positiveInt, string, type Check } from '../../util/schema.js'

export interface EndpointExecutorOptions {
  /** A running endpoint's name (found through `$TSFLOW_HOME/endpoints/<name>/endpoint.json`) or its address `tcp://host:port`. */
  endpoint: string
  /** The endpoint's CURVE public key (z85). Required with an address; by name, read from endpoint.json. */
  serverKey?: string
  /** TSFLOW_HOME: where endpoints and this client's key pair live. Default `$TSFLOW_HOME` or `~/.tsflow`. */
  home?: string
  /**
   * The session the tasks belong to. Default: a random one. Name one to collect the results from
   * another process (`EndpointClient.connect({ session })`) after this one stopped.
   */
  session?: string
  /** Name used to pick this executor in an app's `executors` option. Default 'endpoint'. */
  label?: string
  /** How long to keep reconnecting while tasks are outstanding before failing them, ms. Default 60000. */
  reconnectTimeoutMs?: number
  /** How long to wait for the endpoint's welcome, ms. Default 10000. */
  helloTimeoutMs?: number
  /** Most tasks in one message to the endpoint. Default 2048. */
  maxBatchSize?: number
  /** How often this client sends a heartbeat, ms. Default: the endpoint's period (from its welcome). */
  heartbeatPeriodMs?: number
  /**
   * At shutdown, tell the endpoint to forget the session: its queued tasks are cancelled and its
   * unacknowledged results dropped. Default false: they stay for a collector (`EndpointClient`).
   */
  forgetOnShutdown?: boolean
}

export interface ResolvedEndpointOptions {
  endpoint: string
  /** set when `endpoint` is an address */
  address: { host: string; port: number } | undefined
  serverKey: string | undefined
  home: string
  session: string | undefined
  reconnectTimeoutMs: number
  helloTimeoutMs: number
  maxBatchSize: number
  heartbeatPeriodMs: number | undefined
  forgetOnShutdown: boolean
}

/** Where to connect: resolved at connect time (by name: from endpoint.json, which changes when the endpoint restarts). */
export interface EndpointTarget {
  /** the endpoint's name, or its address when given one */
  name: string
  /** tcp://host:port */
  address: string
  serverKey: string
}

const ADDRESS = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})$/
const SESSION = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

const endpointCheck: Check<string> = (value, path) => {
  const text = string(value, path).trim()
  if (text.startsWith('tcp://')) {
    const match = ADDRESS.exec(text)
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
      throw new ConfigError(path, `is ${JSON.stringify(text)}, not an address tcp://host:port (port 1-65535)`)
    }
    return text
  }
  if (!ENDPOINT_NAME.test(text)) {
    throw new ConfigError(path, `must be an endpoint name (letters, digits, '.', '_', '-') or an address tcp://host:port (got ${JSON.stringify(text)})`)
  }
  return text
}

const keyCheck: Check<string> = (value, path) => {
  const text = string(value, path).trim()
  if (!Z85_KEY.test(text)) throw new ConfigError(path, 'must be the endpoint\'s CURVE public key: 40 z85 characters, as `npx tsflow endpoint status <name>` prints')
  return text
}

const sessionCheck: Check<string> = (value, path) => {
  const text = string(value, path)
  if (!SESSION.test(text)) throw new ConfigError(path, `must be 1-128 letters, digits, '.', '_', ':' or '-' (got ${JSON.stringify(text)})`)
  return text
}

const shape = {
  // present when built from a plain-object config ({ type: 'endpoint', ... })
  type: optional(string),
  endpoint: endpointCheck,
  serverKey: keyCheck,
  home: string,
  session: sessionCheck,
  label: string,
  reconnectTimeoutMs: number(0, Infinity, 'a duration in ms (0 or more)'),
  helloTimeoutMs: number(1, Infinity, 'a duration in ms (1 or more)'),
  maxBatchSize: positiveInt,
  heartbeatPeriodMs: number(10, Infinity, 'a period in ms (10 or more)'),
  forgetOnShutdown: boolean,
}

/** Checks the options once, naming problems by option path (`executors[0].endpoint`). */
export function resolveEndpointOptions(raw: unknown, path: string): ResolvedEndpointOptions {
  const o = object(shape)(raw, path)
  if (o.endpoint === undefined) {
    throw new ConfigError(`${path}.endpoint`, "is required: an endpoint's name (as `npx tsflow endpoint list` shows) or its address tcp://host:port")
  }
  const match = ADDRESS.exec(o.endpoint)
  if (match && o.serverKey === undefined) {
    throw new ConfigError(`${path}.serverKey`, `is required with an address (${o.endpoint}): the endpoint's public key, as \`npx tsflow endpoint status <name>\` prints on its host`)
  }
  return {
    endpoint: o.endpoint,
    address: match ? { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) } : undefined,
    serverKey: o.serverKey,
    home: o.home ?? tsflowHome(),
    session: o.session,
    reconnectTimeoutMs: o.reconnectTimeoutMs ?? ENDPOINT_DEFAULTS.reconnectTimeoutMs,
    helloTimeoutMs: o.helloTimeoutMs ?? ENDPOINT_DEFAULTS.helloTimeoutMs,
    maxBatchSize: o.maxBatchSize ?? 2048,
    heartbeatPeriodMs: o.heartbeatPeriodMs,
    forgetOnShutdown: o.forgetOnShutdown ?? false,
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::', '*', ''])

/**
 * Where the endpoint listens now. By address: as given. By name: its endpoint.json, written
 * while it runs; EndpointNotFound naming the directory and the command to run when it is not
 * configured or not running.
 */
export function resolveTarget(options: Pick<ResolvedEndpointOptions, 'endpoint' | 'address' | 'serverKey' | 'home'>): EndpointTarget {
  if (options.address) {
    return { name: options.endpoint, address: tcpEndpoint(options.address.host, options.address.port), serverKey: options.serverKey! }
  }
  const name = options.endpoint
  const paths = endpointPaths(name, options.home)
  if (!existsSync(paths.dir)) {
    throw new EndpointNotFound(name, `not configured: ${paths.dir} does not exist; run \`npx tsflow endpoint configure ${name}\`, then \`npx tsflow endpoint start ${name}\` (TSFLOW_HOME ${options.home})`)
  }
  let state: EndpointState
  try {
    state = JSON.parse(readFileSync(paths.state, 'utf8')) as EndpointState
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${paths.state} does not exist` : `${paths.state} cannot be read (${(error as Error).message})`
    throw new EndpointNotFound(name, `not running: ${why}; run \`npx tsflow endpoint start ${name}\``)
  }
  if (typeof state.clientPort !== 'number' || typeof state.serverPublicKey !== 'string') {
    throw new EndpointNotFound(name, `${paths.state} has no clientPort and serverPublicKey; restart it: \`npx tsflow endpoint stop ${name} && npx tsflow endpoint start ${name}\``)
  }
  if (typeof state.pid === 'number' && !processExists(state.pid)) {
    throw new EndpointNotFound(name, `not running: ${paths.state} names pid ${state.pid}, which is gone (see ${paths.log}); run \`npx tsflow endpoint start ${name}\``)
  }
  // A wildcard listens on every interface: this host reaches it on loopback.
  const host = WILDCARDS.has(state.clientAddress) ? '127.0.0.1' : state.clientAddress
  return { name, address: tcpEndpoint(host, state.clientPort), serverKey: options.serverKey ?? state.serverPublicKey }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
