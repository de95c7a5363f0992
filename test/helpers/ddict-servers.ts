// Helpers of the shard-server tests: what is left of a dictionary's processes (read from /proc,
// so a leftover is found even when nothing of tsflow knows it), and a real Redis client.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createClient } from 'redis'
import type { Test } from 'tap'
import { waitFor } from './wait.js'

// `startShards` is the servers layer's contract with the DDict client, not public API: these
// tests drive it from the built module (as other tests do with internals under dist/). Importing
// `tsflow/ddict` registers the provider placement, as it does for users.
export const placementModule = '../../../dist/ddict/servers/placement.js'
/** The shard host's own RESP client, for a raw command without node-redis's handshake. */
export const respModule = '../../../dist/ddict/servers/resp.js'

/** Unique per test: names the dictionary, so /proc shows which processes are its own. */
export function uniqueId(what: string): string {
  return `t${process.pid}${what}${Math.random().toString(36).slice(2, 8)}`
}

/**
 * Live processes of dictionary `id`: its shard hosts (argv holds `--id <id>`) and its servers
 * (their working directory is under the host's `tsflow-ddict-<id>-...` directory). Zombies do not count.
 */
export function processesOf(id: string): { pid: number; what: string }[] {
  const found: { pid: number; what: string }[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ')
      let cwd = ''
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`)
      } catch {
        // exited, or not ours to read
      }
      if (cmdline.includes(`--id ${id}`) || cwd.includes(`tsflow-ddict-${id}`)) found.push({ pid: Number(entry), what: cmdline.trim() })
    } catch {
      // exited while we looked
    }
  }
  return found
}

/** True while `pid` runs (a zombie waiting for its reaper does not count). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

export async function noneLeft(id: string, timeoutMs = 15_000): Promise<void> {
  let left: { pid: number; what: string }[] = []
  await waitFor(() => (left = processesOf(id)).length === 0, `no process of dictionary ${id} to be left (left: ${JSON.stringify(left)})`, timeoutMs, 25)
}

/** A connected node-redis client, closed at teardown. */
export async function redisClient(t: Test, host: string, port: number, password?: string) {
  const client = createClient({ socket: { host, port, reconnectStrategy: false, connectTimeout: 5000 }, ...(password !== undefined ? { password } : {}) })
  client.on('error', () => undefined)
  t.teardown(async () => {
    if (client.isOpen) await client.close().catch(() => client.destroy())
  })
  await client.connect()
  return client
}
