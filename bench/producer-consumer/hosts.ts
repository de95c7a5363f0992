/**
 * The fake nodes of bench/producer-consumer --nodes 2: network namespaces on one private bridge
 * (root only). A bridge rather than bench/lib/netns-host.ts's point-to-point links because the
 * nodes talk to each other too (a trainer on one node reads DDict shards on the other) and this
 * machine does not forward IP between links. Host i is `${prefix}${i}` at ${subnet}.${10 + i};
 * the bridge (the root namespace, where the workflow and its interchange run) is ${subnet}.1.
 * They share the machine's file system; only the network is their own.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

export { netnsHostUnavailable as hostsUnavailable } from '../lib/netns-host.js'

export interface Hosts {
  names: string[]
  addresses: string[]
  /** the bridge's address: what the hosts reach the workflow's side at */
  rootAddress: string
  /** removes the hosts (killing what runs in them) and the bridge; safe to call twice */
  down(): void
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

function quietly(action: () => void): void {
  try {
    action()
  } catch {
    // already gone
  }
}

/** Makes `count` hosts; call `down()` on every exit path (it is safe after a failed bring-up). */
export function hostsUp(prefix: string, count: number, subnet: string): Hosts {
  const bridge = `br${prefix}`.slice(0, 15)
  const names = Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`)
  const addresses = names.map((_, i) => `${subnet}.${11 + i}`)
  const down = () => {
    for (const name of names) {
      quietly(() => {
        const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        for (const pid of pids.split('\n').filter(Boolean).map(Number)) quietly(() => process.kill(pid, 'SIGKILL'))
      })
      quietly(() => ip('netns', 'del', name))
      quietly(() => ip('link', 'del', `v${name}r`))
      rmSync(`/etc/netns/${name}`, { recursive: true, force: true })
    }
    quietly(() => ip('link', 'del', bridge))
  }
  try {
    ip('link', 'add', bridge, 'type', 'bridge')
    ip('addr', 'replace', `${subnet}.1/24`, 'dev', bridge)
    ip('link', 'set', bridge, 'up')
    names.forEach((name, i) => {
      const outside = `v${name}r`
      const inside = `v${name}h`
      ip('netns', 'add', name)
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside)
      ip('link', 'set', inside, 'netns', name)
      ip('link', 'set', outside, 'master', bridge)
      ip('link', 'set', outside, 'up')
      const inNs = (...args: string[]) => ip('netns', 'exec', name, 'ip', ...args)
      inNs('link', 'set', 'lo', 'up')
      inNs('link', 'set', inside, 'name', 'eth0')
      inNs('addr', 'replace', `${addresses[i]}/24`, 'dev', 'eth0')
      inNs('link', 'set', 'eth0', 'up')
      inNs('route', 'replace', 'default', 'via', `${subnet}.1`)
      // `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc: the host gets its own name.
      mkdirSync(`/etc/netns/${name}`, { recursive: true })
      writeFileSync(`/etc/netns/${name}/hostname`, `${name}\n`)
    })
  } catch (error) {
    down()
    const e = error as { stderr?: Buffer; message?: string }
    throw new Error(`cannot make the fake nodes ${names.join(', ')}: ${(String(e.stderr ?? '').trim() || String(e.message)).split('\n')[0]}`)
  }
  return { names, addresses, rootAddress: `${subnet}.1`, down }
}
