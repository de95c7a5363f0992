/**
 * bench/pack-measure: what packing a package for proxy imports costs (docs/proxy-imports.md,
 * "Packing"), plain tar against gzip, for a generated package of many small files and for a real
 * large one (@kubernetes/client-node when installed).
 *
 *   npm run build:ts && node out/bench/pack-measure.js [--files 15000 --reps 3]
 *
 * Per package and format: a cold pack (every file read), a pack-cache hit (a stat walk plus
 * reading the cached tar), the tar's size, and the node side through a file connector on
 * /dev/shm and the shm connector: put, get, and extracting the bytes into a directory on /dev/shm. Medians of
 * `reps`. Appends to bench/results/pack-measure.jsonl.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Unpack } from 'tar'
import { findPackageRoot, packPackage, type TracedPackage } from 'tsflow/imports'
import { simulatedTracedPackage } from './lib/simulated-package.js'
import { FileConnector, ShmConnector, type Connector } from 'tsflow/proxy'
import { appendResult, parseFlags } from './lib/results.js'

const flags = parseFlags(process.argv.slice(2), { files: '15000', reps: '3' })
const files = Number(flags.files)
const reps = Number(flags.reps)

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const round = (ms: number): number => Math.round(ms * 10) / 10

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now()
  const value = await work()
  return [performance.now() - started, value]
}

async function extract(bytes: Uint8Array, into: string): Promise<void> {
  mkdirSync(into, { recursive: true })
  const unpack = new Unpack({ cwd: into })
  await new Promise<void>((resolve, reject) => {
    unpack.on('close', () => resolve())
    unpack.on('error', reject)
    unpack.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  })
}

async function measure(pkg: TracedPackage, work: string): Promise<void> {
  for (const compress of [false, true]) {
    const row: Record<string, unknown> = { package: pkg.name, compress }
    const cold: number[] = []
    const hit: number[] = []
    let size = 0
    for (let rep = 0; rep < reps; rep++) {
      const packCacheDir = join(work, `packs-${compress}-${rep}`)
      const [ms, packed] = await timed(() => packPackage(pkg, { compress, packCacheDir }))
      cold.push(ms)
      size = packed.size
      const [hitMs, again] = await timed(() => packPackage(pkg, { compress, packCacheDir }))
      if (!again.cached) throw new Error('expected a pack cache hit')
      hit.push(hitMs)
      rmSync(packCacheDir, { recursive: true, force: true })
    }
    const packed = await packPackage(pkg, { compress, packCacheDir: false })
    Object.assign(row, { size, packMs: round(median(cold)), cacheHitMs: round(median(hit)) })
    const connectors: [string, Connector][] = [
      ['file(/dev/shm)', new FileConnector({ directory: mkdtempSync('/dev/shm/tsflow-pack-measure-') })],
      ['shm', new ShmConnector({ prefix: `packmeasure${process.pid}` })],
    ]
    for (const [label, connector] of connectors) {
      const puts: number[] = []
      const gets: number[] = []
      const extracts: number[] = []
      for (let rep = 0; rep < reps; rep++) {
        const [putMs, key] = await timed(() => connector.put(packed.bytes))
        const [getMs, bytes] = await timed(() => connector.get(key))
        const into = join(unpackDir, `unpacked-${rep}`)
        const [extractMs] = await timed(() => extract(bytes, into))
        puts.push(putMs)
        gets.push(getMs)
        extracts.push(extractMs)
        await connector.evict(key)
        rmSync(into, { recursive: true, force: true })
      }
      row[label] = { putMs: round(median(puts)), getMs: round(median(gets)), extractMs: round(median(extracts)) }
      await connector.close()
      if (connector instanceof FileConnector) rmSync(connector.directory, { recursive: true, force: true })
    }
    console.log(JSON.stringify(row))
    appendResult('pack-measure', { ...row, reps })
  }
}

const work = mkdtempSync(join(tmpdir(), 'tsflow-pack-measure-'))
// where nodes unpack by default (docs/proxy-imports.md): tmpfs
const unpackDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tsflow-pack-measure-unpack-'))
try {
  await measure(simulatedTracedPackage(work, files), work)
  const kubernetes = findPackageRoot('@kubernetes/client-node', process.cwd())
  if (kubernetes) await measure({ name: '@kubernetes/client-node', root: kubernetes, version: undefined, native: false, importedBy: 'bench', dependencies: {} }, work)
  else console.log('@kubernetes/client-node is not installed here: skipped')
} finally {
  rmSync(work, { recursive: true, force: true })
  rmSync(unpackDir, { recursive: true, force: true })
}
