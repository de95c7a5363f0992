/**
 * What the proxy-imports benchmark tasks do on the workers. The app modules the bench generates
 * (generate.ts) import this file by its file URL, not by a package name, so tracing never counts
 * it (nor tsflow) as a package to ship; it loads nothing but Node built-ins.
 *
 * Each task of a scaling or simulated run must make a real first import of its package: a module
 * imported once stays cached in its process. So every task runs on a worker process of its own:
 * the bench submits exactly one task per worker (nodes x tasks per node, no prefetch) and each
 * configuration runs on a fresh executor; the tasks wait at a barrier until all have started, so
 * no worker can take a second task, and all import at the same time, as in the seed. Each task
 * also reports whether its process had imported the package before (`first`), and the bench
 * refuses a run where one had.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export interface ImportSpec {
  /** the package imported (its bare name) */
  module: string
  index: number
  /** tasks of the run: the barrier opens when this many have checked in (0: no barrier) */
  total: number
  barrierDir: string
  barrierTimeoutMs: number
  /** seconds to sleep after the import */
  sleep: number
  /**
   * pack method: the node-local directory the block's workerInit unpacked the packed install into
   * (`{block}` is replaced by this block's id); the import goes through its importer module
   */
  packDir?: string
  /** a path whose existence the task reports (cloud-burst: the package in the workflow's install) */
  probe?: string
}

export interface ImportResult {
  index: number
  pid: number
  host: string
  block: string
  /** whether this process imported the package for the first time */
  first: boolean
  /** the import, s */
  import_s: number
  /** epoch ms: the task started, passed the barrier (its import began), finished the import, ended */
  started: number
  import_start: number
  import_end: number
  ended: number
  /** how many names the package exports (touches the module namespace) */
  exports: number
  /** pack: the block's unpack time (workerInit), s */
  unpack_s?: number
  /** whether the probe path existed where the task ran */
  probe_exists?: boolean
  /** the file the package's entry was loaded from (as the worker's module loader resolved it) */
  resolved: string
}

const IMPORTED = Symbol.for('tsflow.bench.proxyImports.imported')

function importedSet(): Set<string> {
  return ((globalThis as Record<symbol, unknown>)[IMPORTED] ??= new Set<string>()) as Set<string>
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** block id of this worker's block (the provider exports it to the block's script). */
export function blockId(): string {
  return process.env.TSFLOW_BLOCK_ID ?? '0'
}

export function expandBlock(dir: string): string {
  return dir.split('{block}').join(blockId())
}

async function barrier(spec: ImportSpec): Promise<void> {
  if (spec.total <= 0) return
  writeFileSync(join(spec.barrierDir, String(spec.index)), `${process.pid}\n`)
  const deadline = Date.now() + spec.barrierTimeoutMs
  while (readdirSync(spec.barrierDir).length < spec.total) {
    if (Date.now() > deadline) {
      throw new Error(`barrier: only ${readdirSync(spec.barrierDir).length} of ${spec.total} tasks started within ${spec.barrierTimeoutMs} ms (are there fewer workers than tasks?)`)
    }
    await sleep(5)
  }
}

/** The pack method's import: through the importer module unpacked by the block's workerInit. */
async function packedImport(spec: ImportSpec): Promise<{ namespace: Record<string, unknown>; unpack_s?: number; resolved: string }> {
  const dir = expandBlock(spec.packDir!)
  const importer = (await import(pathToFileURL(join(dir, 'importers', `${spec.module.replace('/', '__')}.mjs`)).href)) as { load(): Promise<Record<string, unknown>>; where(): string }
  const namespace = await importer.load()
  const resolved = fileURLToPath(importer.where())
  let unpack_s: number | undefined
  try {
    const [start, end] = readFileSync(join(dir, '.unpack-time'), 'utf8').trim().split(/\s+/).map(Number)
    unpack_s = end! - start!
  } catch {
    // no timing written
  }
  return { namespace, resolved, ...(unpack_s !== undefined ? { unpack_s } : {}) }
}

/** One scaling/simulated/cloud-burst task: barrier, the timed import, the optional sleep. */
export async function importTask(spec: ImportSpec, load: () => Promise<unknown>, where: () => string): Promise<ImportResult> {
  const started = Date.now()
  await barrier(spec)
  const first = !importedSet().has(spec.module)
  const import_start = Date.now()
  const t0 = performance.now()
  let namespace: Record<string, unknown>
  let unpack_s: number | undefined
  let resolved: string | undefined
  if (spec.packDir) ({ namespace, unpack_s, resolved } = await packedImport(spec))
  else namespace = (await load()) as Record<string, unknown>
  const exports = Object.keys(namespace).length
  const import_s = (performance.now() - t0) / 1000
  const import_end = Date.now()
  // Where the loader took the package from (after the timed import, so it costs nothing there).
  resolved ??= fileURLToPath(where())
  importedSet().add(spec.module)
  if (spec.sleep > 0) await sleep(spec.sleep * 1000)
  return {
    index: spec.index,
    pid: process.pid,
    host: hostname(),
    block: blockId(),
    first,
    import_s,
    started,
    import_start,
    import_end,
    ended: Date.now(),
    exports,
    ...(unpack_s !== undefined ? { unpack_s } : {}),
    ...(spec.probe ? { probe_exists: existsSync(spec.probe) } : {}),
    resolved,
  }
}

export interface InferenceSpec {
  index: number
  /** input rows this task classifies */
  rows: number
  seed: number
  packDir?: string
}

export interface InferenceResult {
  index: number
  pid: number
  block: string
  import_s: number
  infer_s: number
  rows: number
  /** predictions per class, a check that the work was done */
  counts: number[]
  /** pack: the block's unpack time (workerInit), s */
  unpack_s?: number
}

interface Mathjs {
  matrix(data: number[][]): unknown
  multiply(a: unknown, b: unknown): { toArray(): number[][] }
  map(m: unknown, f: (v: number) => number): unknown
}

/** A small deterministic generator (mulberry32), so every method classifies the same inputs. */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The model: a two-layer perceptron (made on the submit side, passed by proxy). */
export interface Model {
  inputs: number
  hidden: number
  classes: number
  w1: number[][]
  w2: number[][]
}

export function makeModel(inputs: number, hidden: number, classes: number, seed = 1): Model {
  const next = random(seed)
  const layer = (rows: number, cols: number) => Array.from({ length: rows }, () => Array.from({ length: cols }, () => next() * 2 - 1))
  return { inputs, hidden, classes, w1: layer(inputs, hidden), w2: layer(hidden, classes) }
}

/**
 * One inference task: imports the math library (per the method), reads the model (it arrives as a proxy the worker resolved before the call), classifies its rows: relu(x W1) W2, argmax.
 */
export async function inferenceTask(spec: InferenceSpec, model: Model, load: () => Promise<unknown>): Promise<InferenceResult> {
  const t0 = performance.now()
  const packed = spec.packDir ? await packedImport({ module: 'mathjs', index: spec.index, total: 0, barrierDir: '', barrierTimeoutMs: 0, sleep: 0, packDir: spec.packDir }) : undefined
  const math = (packed ? packed.namespace : await load()) as unknown as Mathjs
  const import_s = (performance.now() - t0) / 1000
  const t1 = performance.now()
  const next = random(spec.seed)
  const inputs = Array.from({ length: spec.rows }, () => Array.from({ length: model.inputs }, () => next()))
  const hidden = math.map(math.multiply(math.matrix(inputs), math.matrix(model.w1)), (v) => (v > 0 ? v : 0))
  const scores = math.multiply(hidden, math.matrix(model.w2)).toArray()
  const counts = new Array<number>(model.classes).fill(0)
  for (const row of scores) counts[row.indexOf(Math.max(...row))]!++
  const infer_s = (performance.now() - t1) / 1000
  return { index: spec.index, pid: process.pid, block: blockId(), import_s, infer_s, rows: spec.rows, counts, ...(packed?.unpack_s !== undefined ? { unpack_s: packed.unpack_s } : {}) }
}
