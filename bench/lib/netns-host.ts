/**
 * One fake host: a network namespace joined to the root namespace by a veth pair (root only).
 * Used by the network file system of the benchmarks (bench/lib/network-fs.ts) and by
 * examples/proxy-imports.ts, whose task runs on such a host. The host shares the machine's file
 * system (only the network is its own): what it serves travels over TCP through the veth link, and
 * what its processes may see is narrowed with a mount namespace (`hiddenPaths` in hostCommand).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

export interface NetnsHost {
  /** the namespace's name, also the host name its processes see */
  name: string
  /** the host's address on the link */
  address: string
  /** the root namespace's address on the link (what the host reaches the submit side at) */
  rootAddress: string
  /** removes the host, killing what still runs in it; safe to call twice */
  down(): void
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

function firstLine(error: unknown): string {
  const e = error as { stderr?: Buffer | string; message?: string }
  return (String(e.stderr ?? '').trim() || String(e.message ?? error)).split('\n')[0]!
}

/** Why a fake host cannot be made here, or undefined when it can. */
export function netnsHostUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (it creates a network namespace)'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'needs iproute2 (the ip command: apt-get install iproute2)'
  }
  try {
    execFileSync('unshare', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'needs unshare (util-linux)'
  }
  const probe = `tsfprobe${process.pid % 100000}`
  try {
    ip('netns', 'add', probe)
    ip('netns', 'del', probe)
  } catch (error) {
    return `cannot create network namespaces here: ${firstLine(error)}`
  }
  return undefined
}

export interface NetnsHostOptions {
  /** namespace name (at most 10 characters, so the veth names fit); default from the pid */
  name?: string
  /** the link's /24, e.g. '10.238.17'; default from the pid */
  subnet?: string
}

/** Makes the host; its `down()` must be registered for every exit path by the caller. */
export function netnsHostUp(options: NetnsHostOptions = {}): NetnsHost {
  const name = (options.name ?? `tsfh${process.pid % 100000}`).slice(0, 10)
  const subnet = options.subnet ?? `10.238.${process.pid % 250}`
  const outside = `v${name}r`
  const inside = `v${name}h`
  const host: NetnsHost = {
    name,
    address: `${subnet}.2`,
    rootAddress: `${subnet}.1`,
    down: () => netnsHostDown(name),
  }
  try {
    ip('netns', 'add', name)
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside)
    ip('link', 'set', inside, 'netns', name)
    ip('addr', 'replace', `${host.rootAddress}/24`, 'dev', outside)
    ip('link', 'set', outside, 'up')
    const inNs = (...args: string[]) => ip('netns', 'exec', name, 'ip', ...args)
    inNs('link', 'set', 'lo', 'up')
    inNs('link', 'set', inside, 'name', 'eth0')
    inNs('addr', 'replace', `${host.address}/24`, 'dev', 'eth0')
    inNs('link', 'set', 'eth0', 'up')
    inNs('route', 'replace', 'default', 'via', host.rootAddress)
    // `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc: the host gets its own name.
    mkdirSync(`/etc/netns/${name}`, { recursive: true })
    writeFileSync(`/etc/netns/${name}/hostname`, `${name}\n`)
  } catch (error) {
    netnsHostDown(name)
    throw new Error(`cannot make the fake host ${name}: ${firstLine(error)}`)
  }
  return host
}

/** Removes host `name` (killing its processes), its link and its /etc/netns entry. */
export function netnsHostDown(name: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    for (const pid of pids.split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  for (const args of [['netns', 'del', name], ['link', 'del', `v${name}r`]]) {
    try {
      ip(...args)
    } catch {
      // already gone
    }
  }
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true })
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/**
 * The shell command that runs `command` on the host: in its network namespace, under its host
 * name, and with each of `hiddenPaths` covered by an empty read-only directory in a mount
 * namespace of its own (so a package installed on the machine is really absent for it; the
 * covering mounts vanish with the process tree, nothing to undo).
 */
export function hostCommand(host: NetnsHost, command: string, hiddenPaths: readonly string[] = []): string {
  const hide = hiddenPaths.map((p) => `mount -t tmpfs -o ro,size=4k,mode=0555 tsflow-hidden ${shellQuote(p)}; `).join('')
  const inner = `set -e; hostname ${host.name}; ${hide}exec ${command}`
  return `ip netns exec ${host.name} unshare --uts --mount --propagation private sh -c ${shellQuote(inner)}`
}
