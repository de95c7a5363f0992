/**
 * Which hosts are this node: what localKeys() and localManagers() ask of a shard's address. The
 * addresses of this node's network interfaces (so it holds inside a network namespace, where
 * each namespace has its own), loopback, and the host name.
 */
import { hostname, networkInterfaces } from 'node:os'

let cached: Set<string> | undefined

export function localAddresses(): Set<string> {
  if (cached) return cached
  const set = new Set<string>(['localhost', '::1', hostname()])
  for (const entries of Object.values(networkInterfaces())) for (const entry of entries ?? []) set.add(entry.address)
  cached = set
  return set
}

export function isLocalHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '')
  return bare.startsWith('127.') || localAddresses().has(bare)
}
