/**
 * Lazy loading of proxy imports on the worker side (docs/proxy-imports.md, "Lazy loading").
 *
 * `activateImports(manifest)` runs in the thread that will resolve an app's function, before it
 * does. Once per thread it starts the "unpacker" thread (unpacker.ts), registers the ESM resolve
 * hook (hooks.ts, on Node's loader thread, chained in front of any hook already there, such as
 * tsx's) and wraps the CommonJS resolver for `require`. Per manifest it hands both resolvers the
 * mapping (waiting for the hook's acknowledgement, so the first import cannot overtake it) and
 * queues every package not yet unpacked on this node; it does not wait for the unpacking. An
 * import waits for the one package it needs: asynchronously on the loader thread, or blocking
 * the task's thread for `require`. Worker side: no kernel imports.
 */
import Module, { register } from 'node:module'
import { join } from 'node:path'
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
import { brandAsTsflowError, ErrorCode, ProxyImportFailed, TsflowError, UsageError } from '../errors.js'
import type { ImportsWire, ShippedPackageWire } from '../protocol/imports.js'
import { ImportMap, importerIn, label, resolveBase, type ImportMapping, type MappedPackage, type Redirect } from './redirect.js'
import { expandCacheDir, isUnpacked, packageDir } from './unpack.js'

export interface ActivateOptions {
  /** the app's module (its URL or path), named in the error when a package it needs cannot be unpacked */
  module?: string
}

/** How long a `require` waits for its package to be unpacked before it fails (ms). */
export const REQUIRE_WAIT_MS = 10 * 60_000

type Outcome = { type: 'done'; hash: string; root: string } | { type: 'failed'; hash: string; message: string }

interface ThreadLoader {
  map: ImportMap
  hooks: MessagePort
  unpacker: MessagePort
  counter: Int32Array
  outcomes: Map<string, Outcome>
  /** queued with the unpacker and not settled: while any is, the thread stays alive (an import may wait on it) */
  pending: Set<string>
  acks: Map<number, () => void>
  nextId: number
}

let thread: ThreadLoader | undefined

/**
 * Makes the packages a manifest ships importable in this thread, from the node's cache, and
 * starts unpacking them in the background. Resolves once an import of any of them would be
 * redirected; several manifests (several apps) add up.
 */
export async function activateImports(manifest: ImportsWire, options: ActivateOptions = {}): Promise<void> {
  checkManifest(manifest)
  const loader = (thread ??= startThread())
  // {block} and {host} filled in where the task runs (TSFLOW_BLOCK_ID, the host name)
  const cacheDir = expandCacheDir(manifest.cacheDir)
  // Every package goes to the unpacker, unpacked ones too: its check of those marks them used
  // for the cache's cleanup (unpack.ts); only the others keep this thread alive.
  const queued: ShippedPackageWire[] = []
  const pending: string[] = []
  const packages: MappedPackage[] = manifest.packages.map((pkg) => {
    const root = packageDir(cacheDir, pkg)
    const settled = loader.outcomes.get(pkg.hash)?.type === 'done'
    const unpacked = settled || isUnpacked(root)
    if (!settled) queued.push(pkg)
    if (!unpacked) pending.push(pkg.hash)
    const mapped: MappedPackage = { name: pkg.name, hash: pkg.hash, root, deps: pkg.deps ?? {}, unpacked }
    if (pkg.version !== undefined) mapped.version = pkg.version
    return mapped
  })
  const mapping: ImportMapping = { cacheDir, packages, roots: manifest.roots }
  if (options.module !== undefined) mapping.app = options.module
  // Queued first, so that an import's request to hurry one of them finds it queued.
  for (const hash of pending) loader.pending.add(hash)
  if (loader.pending.size > 0) loader.unpacker.ref()
  if (queued.length > 0) loader.unpacker.postMessage({ type: 'unpack', store: manifest.store, cacheDir, packages: queued })
  loader.map.add(mapping)
  const id = loader.nextId++
  await new Promise<void>((acknowledged) => {
    loader.acks.set(id, acknowledged)
    // Held open while an acknowledgement is due: a thread with nothing else to do would exit here.
    loader.hooks.ref()
    loader.hooks.postMessage({ type: 'map', id, mapping })
  })
}

/**
 * An error thrown by the ESM hook reaches the importing thread as a plain Error with the fields
 * of a ProxyImportFailed (a thread boundary drops classes): this marks it as the tsflow error it
 * is, so `instanceof ProxyImportFailed` holds. Other values are returned unchanged.
 */
export function importFailure(error: unknown): unknown {
  if (error instanceof Error && (error as { code?: unknown }).code === ErrorCode.PROXY_IMPORT && !(error instanceof TsflowError)) brandAsTsflowError(error)
  return error
}

function checkManifest(manifest: ImportsWire): void {
  const ok =
    typeof manifest === 'object' &&
    manifest !== null &&
    Array.isArray(manifest.packages) &&
    typeof manifest.roots === 'object' &&
    manifest.roots !== null &&
    typeof manifest.store === 'object' &&
    manifest.store !== null
  if (!ok) throw new UsageError('activateImports: the manifest must be an ImportsWire ({ store, packages: [...], roots: {...} }), see protocol/imports.ts')
}

function startThread(): ThreadLoader {
  const signal = new SharedArrayBuffer(4)
  const toTask = new MessageChannel()
  const toHooks = new MessageChannel()
  const worker = new Worker(new URL('./unpacker.js', import.meta.url), {
    workerData: { task: toTask.port2, hooks: toHooks.port2, signal },
    transferList: [toTask.port2, toHooks.port2],
    // The unpacker runs tsflow's compiled code only: no loaders, no flags the task's thread has.
    execArgv: [],
  })
  worker.unref()
  // Its failures reach the imports waiting for it (as a timeout at worst); not an unhandled event here.
  worker.on('error', () => {})
  const hooksChannel = new MessageChannel()
  register(new URL('./hooks.js', import.meta.url), {
    data: { port: hooksChannel.port2, unpacker: toHooks.port1 },
    transferList: [hooksChannel.port2, toHooks.port1],
  })
  const loader: ThreadLoader = {
    map: new ImportMap(),
    hooks: hooksChannel.port1,
    unpacker: toTask.port1,
    counter: new Int32Array(signal),
    outcomes: new Map(),
    pending: new Set(),
    acks: new Map(),
    nextId: 0,
  }
  loader.hooks.on('message', (message: { type: 'ack'; id: number }) => {
    loader.acks.get(message.id)?.()
    loader.acks.delete(message.id)
    if (loader.acks.size === 0) loader.hooks.unref()
  })
  loader.unpacker.on('message', (message: Outcome) => record(loader, message))
  loader.hooks.unref()
  loader.unpacker.unref()
  patchRequire(loader)
  return loader
}

function record(loader: ThreadLoader, outcome: Outcome): void {
  loader.outcomes.set(outcome.hash, outcome)
  // An ESM import waiting on the loader thread does not keep this thread alive by itself.
  if (loader.pending.delete(outcome.hash) && loader.pending.size === 0) loader.unpacker.unref()
  if (outcome.type === 'done') {
    const pkg = loader.map.package(outcome.hash)
    if (pkg) pkg.unpacked = true
  }
}

interface CjsModule {
  filename: string | null
  paths: string[]
}
type ResolveFilename = (this: unknown, request: string, parent: CjsModule | undefined, isMain: boolean, options?: unknown) => string

/**
 * `require` of a shipped package: resolved by Node's own CommonJS resolver (so `exports` with
 * the require condition, `main` and subpaths work) from a module placed where the package's
 * unpacked copy is the first `node_modules/<name>`, after blocking until it is unpacked.
 */
function patchRequire(loader: ThreadLoader): void {
  const CjsLoader = Module as unknown as { _resolveFilename: ResolveFilename; new (id: string): CjsModule }
  const original = CjsLoader._resolveFilename
  CjsLoader._resolveFilename = function (request, parent, isMain, options) {
    const importer = parent?.filename ?? undefined
    const redirect = typeof request === 'string' ? loader.map.target(request, importer) : undefined
    if (!redirect) return original.call(this, request, parent, isMain, options)
    waitUnpacked(loader, redirect, importer)
    const base = resolveBase(redirect)
    const from = new CjsLoader(importerIn(base))
    from.filename = importerIn(base)
    from.paths = [join(base, 'node_modules')]
    return original.call(this, request, from, isMain)
  }
}

/** Blocks this thread until the unpacker settles the package (or another process's unpacker did). */
function waitUnpacked(loader: ThreadLoader, redirect: Redirect, importer: string | undefined): void {
  const { pkg } = redirect
  if (pkg.unpacked) return
  if (isUnpacked(pkg.root)) {
    pkg.unpacked = true
    return
  }
  loader.unpacker.postMessage({ type: 'need', hash: pkg.hash })
  const deadline = Date.now() + REQUIRE_WAIT_MS
  for (;;) {
    // Read the counter before draining: a result posted after the drain has bumped it, so the wait returns at once.
    const seen = Atomics.load(loader.counter, 0)
    for (let message = receiveMessageOnPort(loader.unpacker); message; message = receiveMessageOnPort(loader.unpacker)) {
      record(loader, message.message as Outcome)
    }
    const outcome = loader.outcomes.get(pkg.hash)
    if (outcome?.type === 'done') return
    if (outcome?.type === 'failed') throw new ProxyImportFailed(label(pkg), loader.map.describeImporter(importer, redirect), outcome.message)
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new ProxyImportFailed(label(pkg), loader.map.describeImporter(importer, redirect), `it was not unpacked into ${pkg.root} within ${REQUIRE_WAIT_MS} ms`)
    }
    Atomics.wait(loader.counter, 0, seen, Math.min(left, 1000))
    if (isUnpacked(pkg.root)) {
      pkg.unpacked = true
      return
    }
  }
}
