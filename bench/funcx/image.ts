/**
 * A minimal container image for the instantiation experiment, built locally (no registry is
 * reachable): the files the worker runtime (`tsflow-manager --version`) really loads are traced
 * (ES modules by a resolve hook, CommonJS modules from the require cache, shared libraries from
 * the process report), copied with node and its libraries into a root file system, and handed to
 * the first container runtime that works here: podman (`podman import` of the tarball), else
 * bubblewrap, else `unshare` with its own root (util-linux's chroot-in-namespaces).
 */
import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { TSFLOW_VERSION } from 'tsflow'
import { onCleanup } from '../lib/cleanup.js'

const run = promisify(execFile)

/** Where the tsflow package sits in the image. */
export const IMAGE_TSFLOW = '/opt/tsflow'
/** The worker runtime's entry (the manager a block starts) and its version flag. */
export const ENTRY_ARGS = ['dist/bin/manager.js', '--version']
export const EXPECTED = `tsflow-manager ${TSFLOW_VERSION}`

/** The root of the tsflow package this bench imports (holds package.json, dist/, node_modules/). */
export function packageRoot(): string {
  return dirname(dirname(fileURLToPath(import.meta.resolve('tsflow'))))
}

const HOOKS = `import { appendFileSync } from 'node:fs'
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.TSFLOW_TRACE_OUT, resolved.url + '\\n')
  return resolved
}
`
const PRELOAD = `import { register, createRequire } from 'node:module'
import { appendFileSync } from 'node:fs'
register(new URL('./hooks.mjs', import.meta.url))
const require = createRequire(import.meta.url)
process.on('exit', () => {
  const cjs = Object.keys(require('node:module')._cache).map((file) => 'file://' + file)
  const libs = process.report.getReport().sharedObjects.map((lib) => 'so:' + lib)
  appendFileSync(process.env.TSFLOW_TRACE_OUT, [...cjs, ...libs].join('\\n') + '\\n')
})
`

/** The files and shared libraries `node <entry> --version` loads, by running it once traced. */
export function traceRuntime(scratch: string): { files: string[]; libraries: string[] } {
  const dir = join(scratch, 'trace')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'hooks.mjs'), HOOKS)
  writeFileSync(join(dir, 'preload.mjs'), PRELOAD)
  const out = join(dir, 'loaded.txt')
  const root = packageRoot()
  const stdout = execFileSync(process.execPath, ['--import', join(dir, 'preload.mjs'), ...ENTRY_ARGS], { cwd: root, env: { ...process.env, TSFLOW_TRACE_OUT: out }, encoding: 'utf8' })
  if (stdout.trim() !== EXPECTED) throw new Error(`instantiation: the traced run of node ${ENTRY_ARGS.join(' ')} printed ${JSON.stringify(stdout.trim())}, expected ${EXPECTED}`)
  const lines = [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))]
  const files = lines.filter((l) => l.startsWith('file:')).map((l) => fileURLToPath(l)).filter((f) => imagePath(f) !== undefined)
  const libraries = lines.filter((l) => l.startsWith('so:/')).map((l) => l.slice(3)).filter((f) => imagePath(f) === undefined)
  return { files, libraries }
}

/**
 * Where a file of the package goes in the image (/opt/tsflow/...), or undefined for a file from
 * elsewhere. node_modules may be a link to another directory (a worktree sharing an install).
 */
export function imagePath(file: string): string | undefined {
  const root = packageRoot()
  const modules = join(root, 'node_modules')
  const prefixes: [string, string][] = [
    [existsSync(modules) ? realpathSync(modules) : modules, join(IMAGE_TSFLOW, 'node_modules')],
    [modules, join(IMAGE_TSFLOW, 'node_modules')],
    [realpathSync(root), IMAGE_TSFLOW],
    [root, IMAGE_TSFLOW],
  ]
  for (const [prefix, at] of prefixes) if (file.startsWith(prefix + sep)) return join(at, relative(prefix, file))
  return undefined
}

/** Copies `file` to the same path under `rootfs` (following links: the image has no links to resolve). */
function place(rootfs: string, file: string, at = file): void {
  const target = join(rootfs, at)
  mkdirSync(dirname(target), { recursive: true })
  if (!existsSync(target)) copyFileSync(realpathSync(file), target)
}

/**
 * The root file system: /usr/bin/node, its and the addons' shared libraries, and under /opt/tsflow
 * the package.json, every traced file and the package.json of each package they come from.
 */
export function buildRootfs(scratch: string): { rootfs: string; files: number; bytes: number } {
  const { files, libraries } = traceRuntime(scratch)
  const rootfs = join(scratch, 'rootfs')
  const root = packageRoot()
  place(rootfs, process.execPath, '/usr/bin/node')
  for (const lib of libraries) place(rootfs, lib)
  place(rootfs, join(root, 'package.json'), join(IMAGE_TSFLOW, 'package.json'))
  const packageDirs = new Set<string>()
  for (const file of files) {
    const at = imagePath(file)!
    place(rootfs, file, at)
    // node_modules/<name> or node_modules/@scope/<name>: the package the file comes from
    const parts = relative(IMAGE_TSFLOW, at).split(sep)
    for (let i = 0; i < parts.length - 1; i++) {
      if (parts[i] === 'node_modules') packageDirs.add(join(...parts.slice(0, i + (parts[i + 1]!.startsWith('@') ? 3 : 2))))
    }
  }
  for (const dir of packageDirs) {
    const source = join(root, dir)
    // Its manifest (exports, type), and the JSON addon loaders read with fs next to the addon
    // rather than import (zeromq's build/manifest.json).
    for (const entry of readdirSync(source, { recursive: true }) as string[]) {
      if (entry.endsWith('.json') && !entry.split(sep).includes('node_modules')) place(rootfs, join(source, entry), join(IMAGE_TSFLOW, dir, entry))
    }
  }
  for (const dir of ['tmp', 'proc', 'dev', 'etc']) mkdirSync(join(rootfs, dir), { recursive: true })
  chmodSync(join(rootfs, 'tmp'), 0o1777)
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/usr/bin/node\n')
  const du = execFileSync('du', ['-sb', rootfs], { encoding: 'utf8' })
  return { rootfs, files: files.length + libraries.length + 2, bytes: Number(du.split(/\s/)[0]) }
}

export interface ContainerRuntime {
  name: 'podman' | 'bwrap' | 'unshare-chroot'
  /** the command that starts the runtime in a container and prints the version */
  command: string[]
  /** the runtime's version line */
  version: string
  /** how the image was made */
  image: string
}

function which(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function works(command: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await run(command[0]!, command.slice(1), { timeout: 60_000 })
    return stdout.trim() === EXPECTED ? undefined : `printed ${JSON.stringify(stdout.trim().slice(0, 200))}`
  } catch (error) {
    const text = String((error as { stderr?: string }).stderr || (error as Error).message).trim().split('\n')
    return (text.find((line) => /error/i.test(line)) ?? text.slice(-2).join(' ')).trim().slice(0, 300)
  }
}

/**
 * `value:value` for podman's --ulimit: this shell's soft limit (-n files, -u processes); processes
 * also at most kernel.pid_max (no more can exist; above it runc's init is refused here).
 */
function limit(flag: 'n' | 'u'): string {
  const soft = execFileSync('bash', ['-c', `ulimit -S${flag}`], { encoding: 'utf8' }).trim()
  let value = soft === 'unlimited' ? Infinity : Number(soft)
  if (flag === 'u' && existsSync('/proc/sys/kernel/pid_max')) value = Math.min(value, Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')))
  const text = Number.isFinite(value) ? String(value) : '-1'
  return `${text}:${text}`
}

const inImage = ['/usr/bin/node', `${IMAGE_TSFLOW}/${ENTRY_ARGS[0]}`, ...ENTRY_ARGS.slice(1)]

/**
 * The first runtime that really runs the image here (`only` picks one); tried in order podman,
 * bwrap, unshare-chroot. `notes` says why the others were passed over.
 */
export async function prepareRuntime(scratch: string, rootfs: string, only?: string): Promise<{ runtime?: ContainerRuntime; notes: string[] }> {
  const notes: string[] = []
  const wanted = (name: string) => !only || only === name
  if (wanted('podman')) {
    if (!which('podman')) notes.push('podman: not installed')
    else {
      const tag = `localhost/tsflow-funcx-instantiation:${TSFLOW_VERSION}-${process.pid}`
      const tarball = join(scratch, 'rootfs.tar')
      execFileSync('tar', ['-C', rootfs, '-cf', tarball, '.'])
      try {
        await run('podman', ['import', '--quiet', tarball, tag], { timeout: 120_000 })
        onCleanup(() => run('podman', ['rmi', '--force', tag]).catch(() => undefined))
        // --runtime runc: crun refuses hybrid cgroup hierarchies (cgroup v1 + a v2 mount with a
        // controller, as here); ulimits at or below this process's: podman's defaults are above
        // the hard limits of a container host without CAP_SYS_RESOURCE.
        const runtime = which('runc') ? ['--runtime', 'runc'] : []
        const command = ['podman', ...runtime, 'run', '--rm', '--network', 'none', '--ulimit', `nofile=${limit('n')}`, '--ulimit', `nproc=${limit('u')}`, tag, ...inImage]
        const why = await works(command)
        const oci = runtime.length ? `, OCI runtime ${(await run('runc', ['--version'])).stdout.split('\n')[0]!.trim()}` : ''
        if (!why) return { runtime: { name: 'podman', command, version: `${(await run('podman', ['--version'])).stdout.trim()}${oci}`, image: `podman import of a ${tarball} root file system tarball, tagged ${tag}` }, notes }
        notes.push(`podman: ${why}`)
      } catch (error) {
        notes.push(`podman import: ${String((error as { stderr?: string }).stderr || (error as Error).message).trim().slice(0, 300)}`)
      }
    }
  }
  if (wanted('bwrap')) {
    if (!which('bwrap')) notes.push('bwrap: not installed')
    else {
      const command = ['bwrap', '--unshare-all', '--die-with-parent', '--ro-bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...inImage]
      const why = await works(command)
      if (!why) return { runtime: { name: 'bwrap', command, version: (await run('bwrap', ['--version'])).stdout.trim(), image: `the root file system ${rootfs}, bound read-only` }, notes }
      notes.push(`bwrap: ${why}`)
    }
  }
  if (wanted('unshare-chroot')) {
    const command = ['unshare', '--fork', '--pid', '--mount', '--uts', '--ipc', '--net', `--root=${rootfs}`, '--mount-proc', ...inImage]
    const why = await works(command)
    if (!why) return { runtime: { name: 'unshare-chroot', command, version: (await run('unshare', ['--version'])).stdout.trim(), image: `the root file system ${rootfs} as the new root` }, notes }
    notes.push(`unshare-chroot: ${why}`)
  }
  return { notes }
}
