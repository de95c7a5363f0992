/**
 * cloud-burst: the worker runs on another host (a network namespace with its own address on a
 * private bridge, as test/helpers/netns.ts makes them) whose copy of the workflow's directory has
 * tsflow but not the package: its manager runs in a mount namespace of its own with an empty
 * directory bind-mounted over the install's node_modules. The task still runs, because its
 * packages travel with it (lazy); the file-system method, tried once, fails there. Root only.
 *
 * The interchange listens on the bridge address (so the link is TCP and, as for any address
 * that is not loopback, CurveZMQ-encrypted). The store is a file connector: the hosts share the
 * file system (only the network is separate), so the packed packages travel through files.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

/** Single-quotes a word for sh. */
function shellQuote(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`
}

export interface BurstHost {
  name: string
  address: string
  bridgeAddress: string
  down(): void
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Why a network-namespace host cannot be made here, or undefined. */
export function burstUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root to create a network namespace host'
  for (const [command, args] of [['ip', ['-V']], ['unshare', ['--version']]] as const) {
    try {
      execFileSync(command, args, { stdio: 'ignore' })
    } catch {
      return `it needs the ${command} command`
    }
  }
  const probe = `tsfpiprobe${process.pid}`
  try {
    ip('netns', 'add', probe)
    ip('netns', 'del', probe)
  } catch (error) {
    return `network namespaces cannot be made here: ${(error as Error).message.split('\n')[0]}`
  }
  return undefined
}

/** One fake host on its own bridge; `down()` removes both and kills what runs inside. */
export function burstHostUp(): BurstHost {
  const tag = `pi${process.pid % 100000}`
  const name = `tsf${tag}`
  const bridge = `br${tag}`.slice(0, 15)
  // 10.239: no other fake hosts of the project use it (tests, example, network FS)
  const subnet = `10.239.${process.pid % 250}`
  const outside = `v${tag}r`.slice(0, 15)
  const inside = `v${tag}h`.slice(0, 15)
  const host: BurstHost = {
    name,
    address: `${subnet}.11`,
    bridgeAddress: `${subnet}.1`,
    down() {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean)
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {
            // gone
          }
        }
      } catch {
        // no namespace
      }
      for (const args of [['netns', 'del', name], ['link', 'del', outside], ['link', 'del', bridge]]) {
        try {
          ip(...args)
        } catch {
          // already gone
        }
      }
      rmSync(`/etc/netns/${name}`, { recursive: true, force: true })
    },
  }
  try {
    ip('link', 'add', bridge, 'type', 'bridge')
    ip('addr', 'replace', `${host.bridgeAddress}/24`, 'dev', bridge)
    ip('link', 'set', bridge, 'up')
    ip('netns', 'add', name)
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside)
    ip('link', 'set', inside, 'netns', name)
    ip('netns', 'exec', name, 'ip', 'link', 'set', inside, 'name', 'eth0')
    ip('link', 'set', outside, 'master', bridge)
    ip('link', 'set', outside, 'up')
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', name, 'ip', 'addr', 'replace', `${host.address}/24`, 'dev', 'eth0')
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'eth0', 'up')
    ip('netns', 'exec', name, 'ip', 'route', 'replace', 'default', 'via', host.bridgeAddress)
    mkdirSync(`/etc/netns/${name}`, { recursive: true })
    writeFileSync(`/etc/netns/${name}/hostname`, `${name}\n`)
  } catch (error) {
    host.down()
    throw error
  }
  return host
}

/**
 * The block command on the host: its own network namespace and host name, and its own mount
 * namespace in which `hide` (the install's node_modules) is covered by the empty directory
 * `empty`, so nothing there can be imported from the install.
 */
export function onBurstHost(host: BurstHost, hide: string, empty: string): (command: string) => string {
  return (command) => {
    const inner = `hostname ${host.name} && mount --bind ${shellQuote(empty)} ${shellQuote(hide)} && exec ${command}`
    return `ip netns exec ${host.name} unshare --uts --mount --propagation private sh -c ${shellQuote(inner)}`
  }
}
