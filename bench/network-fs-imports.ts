/**
 * How long Node takes to import a many-file package from a network file system, against the same
 * files on local disk (docs/proxy-imports.md, "Shared file systems here"). Root only: the file
 * server is a fake host (bench/lib/network-fs.ts: NFS where the kernel has it, else sshfs).
 *
 *   npm run build:ts && node out/bench/network-fs-imports.js --package generated --files 15000
 *   node out/bench/network-fs-imports.js --package @kubernetes/client-node --rtt-ms 0 1
 *
 * Each measurement is a fresh `node` that times `await import(package)` (performance.now, in the
 * process). Per place (local disk, then the mount) the first import follows a drop of the page
 * cache (`--drop-caches yes`, the default, writes /proc/sys/vm/drop_caches: every process on the
 * machine loses its cached files, so it is a flag) and the later ones find it warm. A fresh mount
 * is made for every added round-trip time. Writes JSON lines to bench/results/network-fs-imports.jsonl.
 */
import { execFile } from 'node:child_process'
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { BenchUsage, parseArgs, type FlagSpec } from './lib/args.js'
import { onCleanup, runBench } from './lib/cleanup.js'
import { NetworkFsUnavailable, mountNetworkFs, networkFsUnavailable } from './lib/network-fs.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL(import.meta.url.includes('/out/') ? '../..' : '..', import.meta.url))
const results = join(root, 'bench/results/network-fs-imports.jsonl')

const spec = {
  package: { default: 'generated', help: "'generated' (a made package of --files small ESM files), or an installed package name" },
  files: { default: '15000', help: 'files of the generated package (one entry importing them all)' },
  'rtt-ms': { default: ['0'], list: true, commas: true, help: 'round-trip times to add on the link, one mount each' },
  repeat: { default: '3', help: 'imports per place: the first after dropping caches, the rest warm' },
  'drop-caches': { default: 'yes', choices: ['yes', 'no'], help: 'drop the page cache before each first import' },
  'kernel-cache': { default: 'no', choices: ['yes', 'no'], help: "sshfs: keep file pages cached across opens (libfuse's kernel_cache)" },
  kind: { default: 'auto', choices: ['auto', 'nfs', 'sshfs'], help: 'network file system to use' },
  out: { default: results, help: 'JSON lines output' },
} satisfies Record<string, FlagSpec>

const PROBE = 'const t = performance.now(); await import(process.argv[1]); console.log(JSON.stringify({ ms: performance.now() - t }))'

/** A package of `files` modules in folders of 1,000 and an entry that imports every one. */
function generatePackage(dir: string, files: number): void {
  const pkg = join(dir, 'node_modules', 'tsflow-generated')
  const lines: string[] = []
  for (let i = 0; i < files; i++) {
    const folder = join(pkg, `part${Math.floor(i / 1000)}`)
    if (i % 1000 === 0) mkdirSync(folder, { recursive: true })
    writeFileSync(join(folder, `m${i}.js`), `// generated module ${i}\nexport const value = ${i}\nexport function twice() {\n  return 2 * value\n}\n`)
    lines.push(`import { value as v${i} } from './part${Math.floor(i / 1000)}/m${i}.js'`)
  }
  lines.push(`export const sum = ${Array.from({ length: files }, (_, i) => `v${i}`).join(' + ') || '0'}`)
  writeFileSync(join(pkg, 'index.js'), `${lines.join('\n')}\n`)
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'tsflow-generated', version: '1.0.0', type: 'module', main: 'index.js' }))
}

async function importMs(cwd: string, name: string): Promise<number> {
  // async on purpose: the benchmark's event loop stays free while the import runs
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PROBE, name], { cwd, timeout: 600_000 })
  return (JSON.parse(stdout.trim()) as { ms: number }).ms
}

async function dropCaches(): Promise<boolean> {
  try {
    await run('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'])
    return true
  } catch {
    return false
  }
}

async function bench(argv: string[]): Promise<number> {
  const flags = parseArgs(argv, spec)
  if (flags === 'help') {
    console.log(Object.entries(spec).map(([k, v]) => `--${k} (default ${v.default}): ${v.help}`).join('\n'))
    return 0
  }
  const why = networkFsUnavailable()
  if (why) {
    console.log(`network-fs-imports: nothing measured: no network file system can be mounted here (sshfs ${why})`)
    return 0
  }
  const repeat = Number(flags.repeat)
  const files = Number(flags.files)
  if (!(repeat >= 1) || !(files >= 1)) throw new BenchUsage('--repeat and --files take positive numbers')
  const generated = flags.package === 'generated'
  const name = generated ? 'tsflow-generated' : flags.package
  let exportDir = root // an installed package: this checkout, its node_modules included
  if (generated) {
    exportDir = mkdtempSync(join(tmpdir(), 'tsflow-netfs-package-'))
    onCleanup(() => rmSync(exportDir, { recursive: true, force: true }))
    generatePackage(exportDir, files)
  }
  const drop = flags['drop-caches'] === 'yes'
  mkdirSync(join(flags.out, '..'), { recursive: true })
  const record = (line: Record<string, unknown>) => {
    appendFileSync(flags.out, `${JSON.stringify({ bench: 'network-fs-imports', package: name, files: generated ? files : undefined, ...line })}\n`)
    console.log(`${String(line.fs).padEnd(6)} rtt+${line.rtt_ms} ms  import ${line.run === 1 ? 'first ' : 'again '} ${(line.import_ms as number).toFixed(0).padStart(7)} ms${line.dropped_caches ? ' (page cache dropped)' : ''}`)
  }

  const measure = async (fs: string, cwd: string, rttMs: number, extra: Record<string, unknown>) => {
    for (let i = 1; i <= repeat; i++) {
      const dropped = i === 1 && drop ? await dropCaches() : false
      record({ fs, rtt_ms: rttMs, run: i, import_ms: await importMs(cwd, name), dropped_caches: dropped, ...extra })
    }
  }

  await measure('local', exportDir, 0, {})
  for (const rtt of flags['rtt-ms'].map(Number)) {
    let mount
    try {
      mount = await mountNetworkFs({ exportDir, rttMs: rtt, kind: flags.kind as 'auto', kernelCache: flags['kernel-cache'] === 'yes' })
    } catch (error) {
      if (!(error instanceof NetworkFsUnavailable)) throw error
      console.log(`network-fs-imports: ${error.message}`)
      return 1
    }
    try {
      for (const note of mount.notes) console.log(`(${note})`)
      await measure(mount.kind, mount.mountPoint, rtt, { latency_by: mount.latencyBy, kernel_cache: flags['kernel-cache'] === 'yes' })
    } finally {
      mount.unmount()
    }
  }
  console.log(`results appended to ${flags.out}`)
  return 0
}

void runBench('network-fs-imports', bench, BenchUsage)
