/**
 * A real network file system for the `file-system` benchmark method (docs/proxy-imports.md,
 * "Shared file systems here"): a directory exported by a "file server" on a fake host (a network
 * namespace, bench/lib/netns-host.ts) and mounted (read-only, or read-write with `readWrite`) at a
 * mount point of the root namespace, so every file a worker opens there crosses a TCP connection,
 * as on a cluster's shared file system. Root only.
 *
 * Read-write mounts are for data one process writes and another reads back (the producer-consumer
 * bench's file-system variant). On a cluster the reader is on another node, so its reads cannot
 * hit the writer's page cache: they must cross the network. sshfs is therefore mounted with
 * `direct_io` there (no client page cache at all: every read(2) is an SFTP read over the link, and
 * every write(2) is sent before it returns, like a close-to-open network file system with nothing
 * cached locally); NFS with `lookupcache=none,noac` and the data cache dropped by close-to-open
 * consistency. The file server's own page cache still serves the reads it answers, as a cluster
 * file server's RAM does.
 *
 * NFS is tried first (the kernel's client and server). Where the kernel has no NFS (no `nfs`/`nfsd`
 * in /proc/filesystems, as on the development machine: mount(2) fails with ENODEV), the reason is
 * kept in `notes` and the directory is served by sshd's SFTP and mounted with sshfs (FUSE).
 *
 * Added latency (`rttMs`): `tc qdisc netem` on both ends of the link where the kernel has netem;
 * otherwise a relay process on the file server that holds each chunk of the SSH stream for rttMs/2
 * in each direction (the kernel here has no netem either). Always unmounted and removed: `unmount()` is
 * registered for the process's exit and for SIGINT/SIGTERM/SIGHUP (bench/lib/cleanup.ts).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { onCleanup } from './cleanup.js'
import { netnsHostUnavailable, netnsHostUp, type NetnsHost } from './netns-host.js'

const execFileAsync = promisify(execFile)

export type NetworkFsKind = 'nfs' | 'sshfs'

export interface NetworkFs {
  kind: NetworkFsKind
  /** where the exported directory is mounted */
  mountPoint: string
  /** mounted read-write (`readWrite`), else read-only */
  readWrite: boolean
  /** the mount's options as given to sshfs / mount -t nfs (for the record) */
  mountOptions: string
  /** the directory the file server exports */
  exportDir: string
  /** the file server's fake host */
  server: { name: string; address: string }
  /** round-trip time added to the link, and how ('netem' in the kernel, 'relay': a delaying TCP relay) */
  rttMs: number
  latencyBy?: 'netem' | 'relay'
  /** why the kinds tried before this one could not be used (exact errors) */
  notes: string[]
  /** unmounts, stops the server, removes the host and the temporary files; safe to call twice */
  unmount(): void
}

export interface NetworkFsOptions {
  exportDir: string
  /** default: a new directory under the temporary directory */
  mountPoint?: string
  /** 'auto' (default): NFS where the kernel can, else sshfs */
  kind?: 'auto' | NetworkFsKind
  /** round-trip time to add on the link, in milliseconds (default 0) */
  rttMs?: number
  /**
   * sshfs: keep files' pages in the page cache across opens (libfuse's `kernel_cache`), as NFS
   * does between changes; default false (FUSE's default: fetched again on every open)
   */
  kernelCache?: boolean
  /**
   * mount read-write (default false: read-only). sshfs then bypasses the client's page cache
   * (`direct_io`) so a file written through the mount and read back through it crosses the link
   * both times, as between two nodes of a cluster; `kernelCache` cannot be combined with it.
   */
  readWrite?: boolean
}

/** Thrown with a plain sentence when no network file system can be mounted here. */
export class NetworkFsUnavailable extends Error {
  override name = 'NetworkFsUnavailable'
}

/** SSH connections of an sshfs mount (sshfs 3.7's max_conns). */
const SSHFS_CONNECTIONS = 32

const onPath = (command: string) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, command)))
const kernelHas = (fs: string) => readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t').pop() === fs)

function errorText(error: unknown): string {
  const e = error as { stderr?: Buffer | string; message?: string }
  return (String(e.stderr ?? '').trim() || String(e.message ?? error)).replace(/\s*\n\s*/g, ' / ')
}

/** Why sshfs (the fallback) cannot be used here, or undefined when it can. */
export function networkFsUnavailable(): string | undefined {
  const host = netnsHostUnavailable()
  if (host) return host
  if (!existsSync('/dev/fuse') || !kernelHas('fuse')) return 'needs FUSE (/dev/fuse and fuse in /proc/filesystems)'
  const missing = [['sshfs', 'sshfs'], ['sshd', 'openssh-server'], ['ssh-keygen', 'openssh-client'], ['fusermount3', 'fuse3']].filter(([c]) => !onPath(c!))
  if (missing.length > 0) return `needs ${missing.map(([c, p]) => `${c} (apt-get install ${p})`).join(', ')}`
  return undefined
}

/** Whether `path` is a mount point now (per /proc/self/mountinfo). */
export function isMountPoint(path: string): boolean {
  const target = resolve(path)
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4]?.replace(/\\040/g, ' ') === target)
}

/** Mounts `exportDir` over the network; throws NetworkFsUnavailable with the reasons when it cannot. */
export async function mountNetworkFs(options: NetworkFsOptions): Promise<NetworkFs> {
  const why = networkFsUnavailable()
  if (why && options.kind !== 'nfs') throw new NetworkFsUnavailable(`no network file system here: sshfs ${why}`)
  if (options.readWrite && options.kernelCache) throw new TypeError('mountNetworkFs: readWrite and kernelCache exclude each other (a read-write mount bypasses the client page cache); drop one')
  const readWrite = options.readWrite ?? false
  const exportDir = resolve(options.exportDir)
  const rttMs = options.rttMs ?? 0
  const work = mkdtempSync(join(tmpdir(), 'tsflow-netfs-'))
  const mountPoint = resolve(options.mountPoint ?? join(work, 'mnt'))
  const madeMountPoint = !existsSync(mountPoint)
  mkdirSync(mountPoint, { recursive: true })

  const stops: (() => void)[] = [] // newest first when undoing
  let done = false
  const unmount = () => {
    if (done) return
    done = true
    for (const stop of stops.reverse()) {
      try {
        stop()
      } catch (error) {
        console.error(`network file system cleanup: ${errorText(error)}`)
      }
    }
  }
  process.once('exit', unmount)
  onCleanup(unmount)
  // Only ever remove directories that are not mount points: a recursive remove through a
  // mount would delete the exported files themselves.
  stops.push(() => {
    if (isMountPoint(mountPoint)) throw new Error(`${mountPoint} is still mounted; left in place (umount -l it)`)
    if (madeMountPoint) rmSync(mountPoint, { recursive: true, force: true })
    if (!isMountPoint(join(work, 'mnt'))) rmSync(work, { recursive: true, force: true })
  })

  const host = netnsHostUp({ name: `tsfnfs${process.pid % 10000}`, subnet: `10.236.${process.pid % 250}` })
  stops.push(() => host.down())
  const notes: string[] = []
  const server = { name: host.name, address: host.address }
  try {
    const latencyBy = rttMs > 0 ? addNetem(host, rttMs) : undefined
    if (latencyBy) stops.push(latencyBy.stop)

    if (options.kind !== 'sshfs') {
      const nfs = tryNfs(host, exportDir, mountPoint, readWrite)
      if (nfs.ok) {
        stops.push(nfs.stop)
        return { kind: 'nfs', mountPoint, readWrite, mountOptions: nfs.options, exportDir, server, rttMs, latencyBy: latencyBy ? 'netem' : undefined, notes, unmount }
      }
      notes.push(`NFS: ${nfs.error}`)
      if (options.kind === 'nfs') throw new NetworkFsUnavailable(`cannot mount NFS here: ${nfs.error}`)
    }

    const sshd = await startSshd(host, exportDir, work)
    stops.push(sshd.stop)
    let port = 22
    let by: NetworkFs['latencyBy'] = latencyBy ? 'netem' : undefined
    if (rttMs > 0 && !latencyBy) {
      const relay = await delayRelay(host, 22, rttMs / 2)
      stops.push(relay.stop)
      port = relay.port
      by = 'relay'
    }
    const sshfsOptions = [
      `port=${port}`,
      readWrite ? 'rw' : 'ro',
      // read-write: no client page cache (see the top of the file); writes are still
      // pipelined by sshfs, reads of a big buffer are split into max_read requests in flight
      ...(readWrite ? ['direct_io'] : []),
      // Each SSH connection is one SFTP server process, which holds a descriptor for every
      // file a client has open, and its limit here is 20,000. Node's ES module loader opens
      // a package's modules all at once, so 16 workers importing a 15,000-file package hold
      // up to 240,000 (the client then sees EPERM). An NFS server keeps no descriptor per
      // client open; 32 connections give this one room for that many.
      `max_conns=${SSHFS_CONNECTIONS}`,
      ...(options.kernelCache ? ['kernel_cache'] : []),
      `IdentityFile=${join(work, 'client_key')}`,
      'StrictHostKeyChecking=no',
      'UserKnownHostsFile=/dev/null',
      'BatchMode=yes',
      'LogLevel=ERROR',
    ].join(',')
    try {
      await execFileAsync('sshfs', [`root@${host.address}:${exportDir}`, mountPoint, '-o', sshfsOptions], { timeout: 30_000 })
    } catch (error) {
      throw new NetworkFsUnavailable(`sshfs could not mount ${host.address}:${exportDir}: ${errorText(error)}`)
    }
    stops.push(() => {
      fuseUnmount(mountPoint)
      endProcesses(`IdentityFile=${join(work, 'client_key')}`)
    })
    readdirSync(mountPoint) // the mount answers
    return { kind: 'sshfs', mountPoint, readWrite, mountOptions: sshfsOptions.replace(/,IdentityFile=[^,]*/, ''), exportDir, server, rttMs, latencyBy: by, notes, unmount }
  } catch (error) {
    unmount()
    throw error
  }
}

function fuseUnmount(mountPoint: string): void {
  if (!isMountPoint(mountPoint)) return
  try {
    execFileSync('fusermount3', ['-u', mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch {
    // busy (a process still has a file open there): detach now, the kernel finishes later
    execFileSync('fusermount3', ['-u', '-z', mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] })
  }
}

/** Blocks the thread for `ms` (the stops run synchronously, also from the 'exit' event). */
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

/** Processes whose command line contains `marker` (this mount's own key file: its sshfs and ssh). */
function processesWith(marker: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry))
    } catch {
      // ended meanwhile
    }
  }
  return pids
}

/**
 * After the unmount, the sshfs daemon and its ssh connections must go too. They do by themselves
 * when the mount was idle; after a lazy unmount (a file still open, e.g. a program being stopped
 * on Ctrl-C) the daemon lives on, and once the file server is gone its ssh hangs in connect for
 * minutes. Waits up to 3 s (polling), then SIGKILLs what is left.
 */
function endProcesses(marker: string): void {
  const deadline = Date.now() + 3000
  let left = processesWith(marker)
  while (left.length > 0 && Date.now() < deadline) {
    pause(50)
    left = processesWith(marker)
  }
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // ended meanwhile
    }
  }
}

/** Delay both ends of the link with netem; undefined when the kernel has no netem. */
function addNetem(host: NetnsHost, rttMs: number): { stop: () => void } | undefined {
  const delay = `${rttMs / 2}ms`
  try {
    execFileSync('tc', ['qdisc', 'add', 'dev', `v${host.name}r`, 'root', 'netem', 'delay', delay], { stdio: ['ignore', 'ignore', 'pipe'] })
    execFileSync('ip', ['netns', 'exec', host.name, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', delay], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch {
    return undefined // "Specified qdisc kind is unknown": the relay adds the delay instead
  }
  return { stop: () => {} } // the qdiscs go with the link
}

/**
 * The kernel's NFS: nfsd in the host's namespace exporting `exportDir` read-only, mounted with
 * NFSv4.2. Where the kernel lacks the client, the mount is still attempted (mount.nfs reaches
 * mount(2) for v4 without a server) so the note holds the kernel's own error.
 */
function tryNfs(host: NetnsHost, exportDir: string, mountPoint: string, readWrite: boolean): { ok: true; stop: () => void; options: string } | { ok: false; error: string } {
  if (!onPath('mount.nfs')) return { ok: false, error: 'mount.nfs is not installed (apt-get install nfs-common)' }
  // read-write: no attribute or lookup caching, so another client's writes are seen at once; the
  // data cache is revalidated at every open (close-to-open), as on a cluster's NFS
  const options = `vers=4.2,${readWrite ? 'rw,noac,lookupcache=none' : 'ro'},soft,timeo=50,retrans=1`
  const mount = () =>
    execFileSync('mount', ['-t', 'nfs', '-o', options, `${host.address}:${exportDir}`, mountPoint], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 20_000,
    })
  if (!kernelHas('nfsd') || !onPath('rpc.nfsd')) {
    const server = !onPath('rpc.nfsd') ? 'rpc.nfsd is not installed (nfs-kernel-server)' : "the kernel has no NFS server ('nfsd' is not in /proc/filesystems)"
    try {
      mount()
      execFileSync('umount', ['-l', mountPoint]) // cannot happen without a server; never keep it
      return { ok: false, error: `${server}; the client mounted nothing useful` }
    } catch (error) {
      return { ok: false, error: `${server}; \`mount -t nfs -o vers=4.2 ${host.address}:${exportDir}\` fails: ${errorText(error)}` }
    }
  }
  // Not exercised where this was written (its kernel has neither nfs nor nfsd).
  const inHost = (...args: string[]) => execFileSync('ip', ['netns', 'exec', host.name, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 })
  const exportSpec = `${host.rootAddress}:${exportDir}`
  const stop = () => {
    if (isMountPoint(mountPoint)) execFileSync('umount', ['-f', '-l', mountPoint])
    for (const args of [['exportfs', '-u', exportSpec], ['rpc.nfsd', '0']]) {
      try {
        inHost(...args)
      } catch {
        // not started
      }
    }
  }
  try {
    if (!existsSync('/proc/fs/nfsd/threads')) execFileSync('mount', ['-t', 'nfsd', 'nfsd', '/proc/fs/nfsd'], { stdio: ['ignore', 'ignore', 'pipe'] })
    inHost('rpcbind', '-w')
    inHost('exportfs', '-i', '-o', `${readWrite ? 'rw' : 'ro'},no_root_squash,insecure,no_subtree_check,fsid=7`, exportSpec)
    inHost('rpc.nfsd', '-N', '3', '8')
    inHost('rpc.mountd')
    mount()
    return { ok: true, stop, options }
  } catch (error) {
    stop()
    return { ok: false, error: errorText(error) }
  }
}

/** sshd in the host's namespace, root login by a key made for this mount only, SFTP in-process. */
async function startSshd(host: NetnsHost, exportDir: string, work: string): Promise<{ stop: () => void }> {
  for (const key of ['host_key', 'client_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, key)])
  writeFileSync(join(work, 'authorized_keys'), readFileSync(join(work, 'client_key.pub')))
  writeFileSync(
    join(work, 'sshd_config'),
    [
      `ListenAddress ${host.address}`,
      `HostKey ${join(work, 'host_key')}`,
      `AuthorizedKeysFile ${join(work, 'authorized_keys')}`,
      `PidFile ${join(work, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no', // the key files live under the world-writable temporary directory
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  )
  // sshd insists on its privilege-separation directory, which the package's service makes
  const madeRunDir = !existsSync('/run/sshd')
  if (madeRunDir) mkdirSync('/run/sshd', { mode: 0o755 })
  let stderr = ''
  const child: ChildProcess = spawn('ip', ['netns', 'exec', host.name, '/usr/sbin/sshd', '-D', '-e', '-f', join(work, 'sshd_config')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const stop = () => {
    child.kill('SIGTERM')
    if (madeRunDir) rmSync('/run/sshd', { recursive: true, force: true })
  }
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) {
      stop()
      throw new NetworkFsUnavailable(`sshd on the file server exited: ${stderr.trim() || `code ${child.exitCode}`}`)
    }
    if (await canConnect(host.address, 22)) return { stop }
    if (Date.now() > deadline) {
      stop()
      throw new NetworkFsUnavailable(`sshd on the file server did not listen on ${host.address}:22 within 10 s: ${stderr.trim()}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

function canConnect(address: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: address, port })
    socket.once('connect', () => (socket.destroy(), done(true)))
    socket.once('error', () => done(false))
  })
}

// A TCP relay (a process of its own, so nothing in the benchmark's event loop can stall it) that
// holds every chunk `delay` ms in each direction before passing it on, like a longer cable; equal
// delays fire in arrival order, so the stream's order is kept.
const RELAY = `
const net = require('node:net')
const [listenHost, listenPort, toHost, toPort, delay] = process.argv.slice(1)
const server = net.createServer((client) => {
  const upstream = net.connect({ host: toHost, port: Number(toPort) })
  for (const s of [client, upstream]) {
    s.setNoDelay(true)
    s.on('error', () => { client.destroy(); upstream.destroy() })
  }
  const pass = (from, to) => {
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), Number(delay)))
    from.on('end', () => setTimeout(() => to.end(), Number(delay)))
  }
  pass(client, upstream)
  pass(upstream, client)
})
server.listen(Number(listenPort), listenHost, () => console.log('listening'))
`

/** The relay on the file server, listening on host:port + 1 and forwarding to host:port. */
async function delayRelay(host: NetnsHost, port: number, delayMs: number): Promise<{ port: number; stop: () => void }> {
  const child = spawn('ip', ['netns', 'exec', host.name, process.execPath, '-e', RELAY, host.address, String(port + 1), host.address, String(port), String(delayMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const stop = () => void child.kill('SIGTERM')
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const ready = await new Promise<boolean>((done) => {
    child.stdout!.once('data', () => done(true))
    child.once('exit', () => done(false))
  })
  if (!ready) throw new NetworkFsUnavailable(`the delay relay on the file server did not start: ${stderr.trim()}`)
  child.stdout!.resume()
  return { port: port + 1, stop }
}
