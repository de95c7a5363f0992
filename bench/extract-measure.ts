/**
 * bench/extract-measure: the cold unpack of a package of many small files on a worker node
 * (docs/proxy-imports.md, "Figures: unpacking 15,000 small files"): tsflow's own extractor
 * (src/imports/extract.ts) against node-tar's synchronous unpacker fed 1 MiB per event-loop turn
 * (what unpack.ts used before) and GNU tar, into /dev/shm and into the temporary directory.
 *
 *   npm run build:ts && node out/bench/extract-measure.js [--files 15000 --reps 3]
 *
 * The package is generated (files/1000 directories of small modules) and packed by packPackage,
 * as the simulated benchmark's. Per target and round, the methods run in turn (so machine load
 * spreads over all of them); each extracts into an empty directory, removed afterwards (not
 * timed). Also: the longest event-loop stall during extractTar (what the lock heartbeat sees),
 * inflating the gzipped tar, and a whole cold ensureUnpacked (fetch from a file store on
 * /dev/shm, sha256, extract, rename, marker). Appends to bench/results/extract-measure.jsonl.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gunzip, gunzipSync, gzipSync } from 'node:zlib'
import { UnpackSync } from 'tar'
import { ensureUnpacked, packPackage, type TracedPackage } from 'tsflow/imports'
import { FileConnector, Store } from 'tsflow/proxy'
import type * as Extract from '../src/imports/extract.js'
import { appendResult, parseFlags } from './lib/results.js'

// extract.ts is internal to tsflow/imports (unpack.ts's extractor): loaded beside its index.
const { extractTar, extractTarSync } = (await import(new URL('./extract.js', import.meta.resolve('tsflow/imports')).href)) as typeof Extract

const flags = parseFlags(process.argv.slice(2), { files: '15000', reps: '3' })
const files = Number(flags.files)
const reps = Number(flags.reps)
const round = (ms: number): number => Math.round(ms * 10) / 10

function generatePackage(dir: string, count: number): TracedPackage {
  const root = join(dir, 'node_modules', 'generated-package')
  const imports: string[] = []
  for (let i = 0; i < count; i++) {
    const sub = join(root, 'lib', `part${Math.floor(i / 1000)}`)
    if (i % 1000 === 0) mkdirSync(sub, { recursive: true })
    writeFileSync(join(sub, `m${i}.js`), `// module ${i} of the generated package\nexport const value${i} = ${i} * 2\nexport default function f${i}(x) { return x + value${i} }\n`)
    imports.push(`export { value${i} } from './lib/part${Math.floor(i / 1000)}/m${i}.js'`)
  }
  writeFileSync(join(root, 'index.js'), imports.join('\n'))
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'generated-package', version: '1.0.0', type: 'module', main: 'index.js' }))
  return { name: 'generated-package', root, version: '1.0.0', native: false, importedBy: 'bench', dependencies: {} }
}

// unpack.ts before extract.ts: node-tar's synchronous unpacker, 1 MiB per event-loop turn.
async function tarSync(bytes: Buffer, cwd: string): Promise<void> {
  let failure: unknown
  const unpack = new UnpackSync({ cwd, strict: true, preserveOwner: false })
  unpack.on('error', (error) => (failure ??= error))
  for (let offset = 0; offset < bytes.byteLength && failure === undefined; offset += 1 << 20) {
    unpack.write(bytes.subarray(offset, offset + (1 << 20)))
    await new Promise((resolve) => setImmediate(resolve))
  }
  unpack.end()
  if (failure !== undefined) throw failure
}

const methods: Record<string, (bytes: Buffer, into: string, file: string) => Promise<void>> = {
  'node-tar sync (old)': async (bytes, into) => {
    mkdirSync(into)
    await tarSync(bytes, into)
  },
  extractTar: async (bytes, into) => {
    await extractTar(bytes, into)
  },
  extractTarSync: async (bytes, into) => {
    extractTarSync(bytes, into)
  },
  'GNU tar (process)': async (_bytes, into, file) => {
    mkdirSync(into)
    const run = spawnSync('tar', ['-xf', file, '-C', into])
    if (run.status !== 0) throw new Error(`tar failed: ${run.stderr}`)
  },
}

async function stallDuring(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now()
  let worst = 0
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last)
    last = now
  }, 1)
  await work()
  clearInterval(timer)
  return worst
}

const work = mkdtempSync(join(tmpdir(), 'tsflow-extract-measure-'))
const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/tsflow-extract-measure-') : undefined
try {
  const pkg = generatePackage(work, files)
  const packed = await packPackage(pkg, { packCacheDir: false })
  const bytes = Buffer.from(packed.bytes)
  const targets: [string, string][] = [...(shm ? [['/dev/shm', shm] as [string, string]] : []), [tmpdir(), join(work, 'out')]]
  mkdirSync(join(work, 'out'))
  const header = { files: files + 2, tarBytes: bytes.byteLength, reps, loadavg: loadavg().map((x) => Math.round(x * 10) / 10) }
  console.log(JSON.stringify(header))
  for (const [label, dir] of targets) {
    const file = join(dir, 'package.tar')
    writeFileSync(file, bytes)
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(methods).map((name) => [name, []]))
    for (let rep = 0; rep < reps; rep++) {
      for (const [name, method] of Object.entries(methods)) {
        const into = join(dir, `x-${rep}-${name.replace(/\W+/g, '_')}`)
        const started = performance.now()
        await method(bytes, into, file)
        times[name]!.push(round(performance.now() - started))
        rmSync(into, { recursive: true, force: true })
      }
    }
    // What the lock heartbeat sees: the longest gap between 1 ms timer ticks.
    const into = join(dir, 'stall')
    const stallMs = round(await stallDuring(() => extractTar(bytes, into)))
    rmSync(into, { recursive: true, force: true })
    const oldInto = join(dir, 'stall-old')
    mkdirSync(oldInto)
    const oldStallMs = round(await stallDuring(() => tarSync(bytes, oldInto)))
    rmSync(oldInto, { recursive: true, force: true })
    // A whole cold ensureUnpacked, from a file store on /dev/shm (or the temp dir).
    const store = new Store(`extract-measure-${process.pid}`, new FileConnector({ directory: join(shm ?? work, 'store') }), { register: false })
    const key = await store.put(bytes, { serializer: 'bytes' })
    const shipped = { name: 'generated-package', version: '1.0.0', hash: createHash('sha256').update(bytes).digest('hex'), key: { ...key }, size: bytes.byteLength, deps: {} }
    const cold: number[] = []
    for (let rep = 0; rep < reps; rep++) {
      const cacheDir = join(dir, `cache-${rep}`)
      const started = performance.now()
      await ensureUnpacked(shipped, store, cacheDir)
      cold.push(round(performance.now() - started))
      rmSync(cacheDir, { recursive: true, force: true })
    }
    await store.evict(key)
    rmSync(file)
    const row = { target: label, ...header, ms: times, ensureUnpackedColdMs: cold, longestStallMs: { extractTar: stallMs, 'node-tar sync (old)': oldStallMs } }
    console.log(JSON.stringify(row))
    appendResult('extract-measure', row)
  }
  // gzip: inflating the whole tar at once, on the thread pool or blocking.
  const gz = gzipSync(bytes)
  const gunzips: number[] = []
  const gunzipsSync: number[] = []
  for (let rep = 0; rep < reps; rep++) {
    let started = performance.now()
    await promisify(gunzip)(gz)
    gunzips.push(round(performance.now() - started))
    started = performance.now()
    gunzipSync(gz)
    gunzipsSync.push(round(performance.now() - started))
  }
  const row = { gzBytes: gz.byteLength, gunzipAsyncMs: gunzips, gunzipSyncMs: gunzipsSync }
  console.log(JSON.stringify(row))
  appendResult('extract-measure', row)
} finally {
  rmSync(work, { recursive: true, force: true })
  if (shm) rmSync(shm, { recursive: true, force: true })
}
