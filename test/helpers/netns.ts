// Fake hosts as network namespaces on a private bridge, made by the test itself (root only).
// Adapted from the project's reference bring-up script: host i is namespace `${prefix}${i}`
// with eth0 = ${subnet}.${10+i}, the bridge (root namespace) is ${subnet}.1.
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

export interface FakeHosts {
  prefix: string
  bridge: string
  rootAddress: string
  hosts: { name: string; address: string }[]
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Why fake hosts cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'needs iproute2 (the ip command)'
  }
  const probe = `tsflowprobe${process.pid}`
  try {
    ip('netns', 'add', probe)
    ip('netns', 'del', probe)
  } catch (error) {
    return `cannot create network namespaces here: ${(error as Error).message.split('\n')[0]}`
  }
  return undefined
}

export function fakeHostsUp(prefix: string, count: number, subnet: string): FakeHosts {
  const bridge = `br-${prefix}`.slice(0, 15)
  const hosts = Array.from({ length: count }, (_, i) => ({ name: `${prefix}${i + 1}`, address: `${subnet}.${11 + i}` }))
  ip('link', 'add', bridge, 'type', 'bridge')
  ip('addr', 'replace', `${subnet}.1/24`, 'dev', bridge)
  ip('link', 'set', bridge, 'up')
  hosts.forEach((host, i) => {
    const outside = `v${prefix.slice(0, 8)}${i + 1}r`
    const inside = `v${prefix.slice(0, 8)}${i + 1}h`
    ip('netns', 'add', host.name)
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside)
    ip('link', 'set', inside, 'netns', host.name)
    ip('netns', 'exec', host.name, 'ip', 'link', 'set', inside, 'name', 'eth0')
    ip('link', 'set', outside, 'master', bridge)
    ip('link', 'set', outside, 'up')
    ip('netns', 'exec', host.name, 'ip', 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', host.name, 'ip', 'addr', 'replace', `${host.address}/24`, 'dev', 'eth0')
    ip('netns', 'exec', host.name, 'ip', 'link', 'set', 'eth0', 'up')
    ip('netns', 'exec', host.name, 'ip', 'route', 'replace', 'default', 'via', `${subnet}.1`)
    // `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc: each host gets its own name.
    mkdirSync(`/etc/netns/${host.name}`, { recursive: true })
    writeFileSync(`/etc/netns/${host.name}/hostname`, `${host.name}\n`)
  })
  try {
    execFileSync('sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0'], { stdio: 'ignore' })
  } catch {
    // br_netfilter not loaded: nothing to turn off
  }
  return { prefix, bridge, rootAddress: `${subnet}.1`, hosts }
}

/** Removes the fake hosts, killing anything still running inside them. Safe to call twice. */
export function fakeHostsDown(prefix: string, count: number): void {
  for (let i = 1; i <= count; i++) {
    const name = `${prefix}${i}`
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .filter(Boolean)
        .map(Number)
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
    } catch {
      // no such namespace
    }
    for (const args of [['netns', 'del', name], ['link', 'del', `v${prefix.slice(0, 8)}${i}r`]]) {
      try {
        ip(...args)
      } catch {
        // already gone
      }
    }
    rmSync(`/etc/netns/${name}`, { recursive: true, force: true })
  }
  try {
    ip('link', 'del', `br-${prefix}`.slice(0, 15))
  } catch {
    // already gone
  }
}
