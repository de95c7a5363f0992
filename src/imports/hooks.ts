/**
 * The ESM resolve hook of proxy imports (docs/proxy-imports.md, "Lazy loading"), registered by
 * loader.ts with `module.register`; it runs on Node's loader thread. A bare specifier that names
 * a shipped package (by the importing file's package, or the roots for any other file) is
 * resolved by Node from the package's unpacked copy, after waiting for that package alone to be
 * unpacked. Everything else goes on to the next hook (tsx's, when it is registered) unchanged.
 *
 * Messages: from the task thread `{ type: 'map', id, mapping }`, answered `{ type: 'ack', id }`
 * once the mapping is in place; to the unpacker `{ type: 'need', hash }`; from it
 * `{ type: 'done', hash }` / `{ type: 'failed', hash, message }`.
 */
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { MessagePort } from 'node:worker_threads'
import { ProxyImportFailed } from '../errors.js'
import { ImportMap, importerIn, label, resolveBase, type ImportMapping, type Redirect } from './redirect.js'

interface HookData {
  port: MessagePort
  unpacker: MessagePort
}

type Outcome = { ok: true } | { ok: false; message: string }

const map = new ImportMap()
const outcomes = new Map<string, Outcome>()
const waiting = new Map<string, ((outcome: Outcome) => void)[]>()
let unpacker: MessagePort | undefined

export function initialize(data: HookData): void {
  unpacker = data.unpacker
  data.port.on('message', (message: { type: 'map'; id: number; mapping: ImportMapping }) => {
    if (message.type !== 'map') return
    map.add(message.mapping)
    data.port.postMessage({ type: 'ack', id: message.id })
  })
  unpacker.on('message', (message: { type: 'done' | 'failed'; hash: string; message?: string }) => {
    const outcome: Outcome = message.type === 'done' ? { ok: true } : { ok: false, message: message.message ?? 'unknown failure' }
    outcomes.set(message.hash, outcome)
    for (const wake of waiting.get(message.hash) ?? []) wake(outcome)
    waiting.delete(message.hash)
    if (waiting.size === 0) unpacker!.unref()
  })
  // A thread that died answers nothing more: the imports waiting for it fail instead of hanging.
  unpacker.on('close', () => {
    for (const [hash, wakes] of waiting) for (const wake of wakes) wake({ ok: false, message: `the unpacker thread stopped before unpacking it (hash ${hash})` })
    waiting.clear()
    unpacker!.unref()
  })
  // Neither port may keep the process alive: the task thread owns their lifetime.
  data.port.unref()
  unpacker.unref()
}

interface ResolveContext {
  parentURL?: string
  conditions: string[]
  importAttributes?: Record<string, string>
}
type NextResolve = (specifier: string, context?: Partial<ResolveContext>) => Promise<{ url: string; format?: string | null }>

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<{ url: string; format?: string | null }> {
  if (map.size === 0) return nextResolve(specifier, context)
  const parent = context.parentURL?.startsWith('file:') ? fileURLToPath(context.parentURL) : undefined
  const redirect = map.target(specifier, parent)
  if (!redirect) return nextResolve(specifier, context)
  await unpacked(redirect, context.parentURL)
  return nextResolve(specifier, { ...context, parentURL: pathToFileURL(importerIn(resolveBase(redirect))).href })
}

async function unpacked(redirect: Redirect, importer: string | undefined): Promise<void> {
  const { pkg } = redirect
  if (pkg.unpacked) return
  let outcome = outcomes.get(pkg.hash)
  if (!outcome) {
    outcome = await new Promise<Outcome>((wake) => {
      let list = waiting.get(pkg.hash)
      if (!list) waiting.set(pkg.hash, (list = []))
      list.push(wake)
      // Node's loader thread answers a hook still pending when its event loop runs dry as never
      // settling (the import then hangs): the port is held open while an import waits on it.
      unpacker!.ref()
      // Moves the package to the front of the unpacker's queue: this import waits for it.
      unpacker!.postMessage({ type: 'need', hash: pkg.hash })
    })
  }
  if (outcome.ok) {
    pkg.unpacked = true
    return
  }
  throw failure(redirect, importer, outcome.message)
}

/**
 * The error as it crosses to the importing thread: a thread boundary keeps an error's message
 * and own enumerable fields, not its class, so the name and code travel as fields
 * (loader.ts `importFailure` makes it a ProxyImportFailed again; encodeError does for the wire).
 */
function failure(redirect: Redirect, importer: string | undefined, detail: string): Error {
  const error = new ProxyImportFailed(label(redirect.pkg), map.describeImporter(importer, redirect), detail)
  Object.defineProperty(error, 'name', { value: 'ProxyImportFailed', enumerable: true, writable: true, configurable: true })
  return error
}
