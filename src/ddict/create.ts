/**
 * DDict.create: the options checked once (protocol/ddict.ts), then either servers tsflow starts
 * (`startShards` of servers/placement.ts: this machine, or a provider's blocks) or an existing
 * deployment given by `addresses`, whose servers are made safe for a dictionary first: one that
 * evicts keys is switched to `noeviction` (or refused, naming its address), and keyspace
 * notifications are switched on for waitFor where the server allows it (else waits poll).
 */
import { randomBytes } from 'node:crypto'
import { ConfigError, TsflowError } from '../errors.js'
import { DDICT_DEFAULTS, validateDDictOptions, type DDictDescriptor, type DDictPlainOptions, type DDictShardInfo } from '../protocol/ddict.js'
import { silentLogger, type Logger } from '../util/logger.js'
import { hostPort, isReplyError } from './connection.js'
import type { ShardLink } from './shard-link.js'
import type { StartedShards } from './shared.js'
import type { PlacementRequest } from './servers/placement.js'

export interface DDictCreateOptions extends Omit<DDictPlainOptions, 'addresses' | 'totalMem'> {
  /** an existing deployment: 'host:port' or 'redis://[:password@]host:port', one per shard */
  addresses?: string[]
  /** memory of the whole dictionary: bytes or a size like '10GB' */
  totalMem?: number | string
  /** an execution provider whose blocks host the shards (e.g. new SlurmProvider({ ... })) */
  provider?: unknown
  /** where placement logs (default: nowhere) */
  logger?: Logger
}

// servers/placement.ts is loaded only when servers are to be started: an attach (every worker)
// never needs it.
async function loadStartShards(): Promise<(request: PlacementRequest) => Promise<StartedShards>> {
  return (await import('./servers/placement.js')).startShards
}

export function newDictId(): string {
  return `dd${randomBytes(6).toString('hex')}`
}

export async function createDDict(options: DDictCreateOptions): Promise<{ descriptor: DDictDescriptor; group: StartedShards | undefined }> {
  const { logger, ...rest } = options
  const checked = validateDDictOptions(rest)
  const id = newDictId()
  const name = checked.name ?? id
  const common = {
    v: 1 as const,
    name,
    id,
    timeoutMs: checked.timeoutMs ?? DDICT_DEFAULTS.timeoutMs,
    workingSetSize: checked.workingSetSize ?? DDICT_DEFAULTS.workingSetSize,
    checkpoint: 0,
    ...(checked.waitForKeys ? { waitForKeys: true } : {}),
  }
  if (checked.addresses) {
    const password = checked.password ?? checked.addresses.find((a) => a.password !== undefined)?.password ?? ''
    const shards: DDictShardInfo[] = checked.addresses.map((a, index) => ({ index, host: a.host, port: a.port, node: a.host, maxmemory: 0, replicas: [] }))
    return { descriptor: { ...common, shards, password }, group: undefined }
  }
  const startShards = await loadStartShards()
  const group = await startShards({ ...checked, id, name, logger: logger ?? silentLogger })
  return { descriptor: { ...common, shards: group.shards, password: group.password }, group }
}

/**
 * Checks an existing server before a dictionary uses it: `maxmemory-policy` must be noeviction
 * (set with CONFIG SET if it is not; refused with a ConfigError naming the address if that is not
 * allowed), its maxmemory is recorded, and keyspace notifications are switched on when possible.
 */
export async function prepareExisting(link: ShardLink, path: string): Promise<void> {
  const where = hostPort(link.info)
  const info = String(await link.primary.run('INFO memory', (c) => c.sendCommand(['INFO', 'memory'])))
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'unknown'
  link.info.maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0)
  if (policy !== 'noeviction') {
    try {
      await link.primary.run('CONFIG SET maxmemory-policy', (c) => c.sendCommand(['CONFIG', 'SET', 'maxmemory-policy', 'noeviction']))
    } catch (error) {
      if (!isReplyError(error)) throw error
      throw new ConfigError(
        path,
        `names ${where}, whose maxmemory-policy is ${policy}: it would evict the dictionary's keys silently, and it refused CONFIG SET maxmemory-policy noeviction (${error.message}); set noeviction on that server or give another one`,
      )
    }
  }
  try {
    const flags = configValue(await link.primary.run('CONFIG GET', (c) => c.sendCommand(['CONFIG', 'GET', 'notify-keyspace-events'])), 'notify-keyspace-events')
    if (!(notificationsOn(flags) && (flags.includes('g') || flags.includes('A')))) {
      const merged = [...new Set([...flags.replace('A', 'g$lshzxet'), 'K', '$', 'g'])].join('')
      await link.primary.run('CONFIG SET', (c) => c.sendCommand(['CONFIG', 'SET', 'notify-keyspace-events', merged]))
    }
  } catch (error) {
    // Not allowed here: waitFor polls this server instead (found out when it first waits).
    if (error instanceof TsflowError) throw error
  }
}

/** A CONFIG GET reply's value (a RESP2 flat array of names and values; a Map or object is read too). */
export function configValue(reply: unknown, name: string): string {
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) if (String(reply[i]) === name) return String(reply[i + 1])
    return ''
  }
  if (reply instanceof Map) return String(reply.get(name) ?? '')
  const value = (reply as Record<string, unknown> | null)?.[name]
  return value === undefined ? '' : String(value)
}

/** Whether notify-keyspace-events flags send the keyspace events waitFor needs (K and string commands). */
export function notificationsOn(flags: string): boolean {
  return flags.includes('K') && (flags.includes('$') || flags.includes('A'))
}
