import { BorrowError, UsageError, type BorrowRule } from '../errors.js'
import { keyText } from './connector.js'
import { forget, guardedProxyOf, refuseUnproxyable, settle, stateOf, type ProxyFactory, type ProxyGuard, type ProxyKind, type ProxyState } from './proxy.js'
import { Store } from './store.js'

// Ownership of stored objects (docs/proxy.md, "Ownership"), in the spirit of ProxyStore's
// store.ref and of Rust: one owner per object, which evicts it when disposed; any number of
// shared borrows or one mutable borrow at a time; sending an owned proxy moves it. The rules are
// checked at run time (BorrowError, E_BORROW): JavaScript has no borrow checker.

// `__ownership` is a type-only brand telling the three kinds apart in TypeScript; no proxy has
// it at run time (use ownershipOf()). A string key, not a symbol, so that declaration files of
// user code can always name it.

/** The one owner of a stored object: evicts it when disposed (`using`, `dispose()`), or, as a backstop, when garbage-collected. */
export type OwnedProxy<T> = T & Disposable & AsyncDisposable & { readonly __ownership: 'owned' }
/** A shared borrow of an owned proxy: read-only by intent; released with `release()` or `using`. */
export type RefProxy<T> = T & Disposable & { readonly __ownership: 'ref' }
/** The one mutable borrow of an owned proxy: may `update()` the object; released with `release()` or `using`. */
export type RefMutProxy<T> = T & Disposable & { readonly __ownership: 'mut' }
/** A borrow of either kind. */
export type Borrow<T> = RefProxy<T> | RefMutProxy<T>

type Status = 'live' | 'moved' | 'disposed' | 'collected' | 'released'

function evictObject(factory: ProxyFactory): Promise<void> {
  return Store.fromConfig(factory.store).evict(factory.key)
}

/** What every ownership proxy shares: its status, checked before each use. */
abstract class Guard implements ProxyGuard {
  status: Status = 'live'
  constructor(
    readonly kind: ProxyKind,
    readonly state: ProxyState,
  ) {
    state.guard = this
  }

  get factory(): ProxyFactory {
    return this.state.factory
  }

  fail(rule: BorrowRule, message: string): never {
    throw new BorrowError(rule, this.factory.store.name, keyText(this.factory.key), message)
  }

  check(action: string): void {
    const what = this.kind === 'owned' ? 'owned proxy' : this.kind === 'ref' ? 'borrow' : 'mutable borrow'
    if (this.status === 'moved') this.fail('moved', `cannot ${action} an ${what} that was moved (sent to a task, returned from one, or taken by intoOwned); its new owner holds the object`)
    if (this.status === 'disposed' || this.status === 'collected') this.fail('disposed', `cannot ${action} an ${what} that was disposed; its object was evicted`)
    if (this.status === 'released') this.fail('released', `cannot ${action} a ${what} that was released`)
  }

  abstract wire(): ProxyFactory
  abstract drop(): Promise<void> | undefined
}

// Backstops for proxies nobody disposed or released: an owned proxy collected while live evicts
// its object (or leaves that to its last borrow), a collected borrow gives its borrow back. The
// held values are guards, which never point at their proxy, so registering keeps nothing alive.
const owners = new FinalizationRegistry<OwnerGuard>((guard) => guard.collected())
const borrows = new FinalizationRegistry<RefGuard>((guard) => guard.release())

class OwnerGuard extends Guard {
  shared = 0
  mut = 0

  constructor(state: ProxyState) {
    super('owned', state)
  }

  get borrowed(): boolean {
    return this.shared > 0 || this.mut > 0
  }

  checkNotBorrowed(action: string): void {
    // The usual cause: a borrow given to a task by a plain app call, which never gives it back.
    const hint = '(a borrow passed to a task comes back when the task settles only if it was called with submitScoped)'
    if (this.mut > 0) this.fail('borrowed', `cannot ${action} an owned proxy while it is mutably borrowed; release the borrow first ${hint}`)
    if (this.shared > 0) this.fail('borrowed', `cannot ${action} an owned proxy while it has ${this.shared} borrow(s); release them first ${hint}`)
  }

  // Encoding sends ownership along. A moved proxy may be encoded again (an executor can encode one
  // batch more than once: splitting, retries); its sender can do nothing else with it.
  wire(): ProxyFactory {
    if (this.status !== 'moved') {
      this.check('send')
      this.checkNotBorrowed('send (move)')
      this.status = 'moved'
      owners.unregister(this)
      forget(this.state)
    }
    return { ...this.factory, kind: 'owned' }
  }

  // A moved proxy has nothing left to evict here; disposing twice is harmless.
  drop(): Promise<void> | undefined {
    if (!this.end()) return undefined
    return evictObject(this.factory)
  }

  /**
   * `drop`, evicting before it returns where the connector can (`evictSync`): for the task
   * runtime, whose thread may block waiting for work right after (a pool thread), leaving an
   * asynchronous eviction stalled until the next task.
   */
  dropNow(): Promise<void> | undefined {
    if (!this.end()) return undefined
    const store = Store.fromConfig(this.factory.store)
    if (!store.connector.evictSync) return store.evict(this.factory.key)
    store.connector.evictSync(this.factory.key)
    return undefined
  }

  private end(): boolean {
    if (this.status !== 'live') return false
    this.checkNotBorrowed('dispose')
    this.status = 'disposed'
    owners.unregister(this)
    forget(this.state)
    return true
  }

  collected(): void {
    if (this.status !== 'live') return
    this.status = 'collected'
    if (!this.borrowed) void evictObject(this.factory).catch(() => {})
  }

  giveBack(kind: ProxyKind): void {
    if (kind === 'mut') {
      this.mut = 0
      // The borrower may have changed the object under its key: read it again on next use.
      forget(this.state)
    } else this.shared--
    if (this.status === 'collected' && !this.borrowed) void evictObject(this.factory).catch(() => {})
  }
}

class RefGuard extends Guard {
  constructor(
    kind: 'ref' | 'mut',
    state: ProxyState,
    /** absent for a borrow that arrived from another process: its sender gives the borrow back */
    private owner: OwnerGuard | undefined,
  ) {
    super(kind, state)
  }

  wire(): ProxyFactory {
    this.check('send')
    return { ...this.factory, kind: this.kind }
  }

  drop(): undefined {
    this.release()
    return undefined
  }

  release(): void {
    if (this.status === 'released') return
    this.status = 'released'
    borrows.unregister(this)
    forget(this.state)
    const owner = this.owner
    this.owner = undefined
    owner?.giveBack(this.kind)
  }
}

/** A plain proxy given to intoOwned(): its owned proxy holds the object now. */
class TakenGuard extends Guard {
  constructor(state: ProxyState) {
    super('owned', state)
    this.status = 'moved'
  }
  wire(): never {
    return this.fail('moved', 'cannot send a proxy that intoOwned() took; send its owned proxy')
  }
  drop(): undefined {
    return undefined
  }
}

function plainFactory(factory: ProxyFactory): ProxyFactory {
  const { kind: _kind, ...plain } = factory
  return plain
}

function newOwned<T>(factory: ProxyFactory, target?: { value: unknown }): OwnedProxy<T> {
  const state: ProxyState = { factory: { ...plainFactory(factory), evict: false }, resolved: false, target: undefined }
  const guard = new OwnerGuard(state)
  if (target) settle(state, target.value)
  const proxy = guardedProxyOf<OwnedProxy<T>>(state)
  owners.register(proxy as object, guard, guard)
  return proxy
}

function newRef<T>(kind: 'ref' | 'mut', factory: ProxyFactory, owner: OwnerGuard | undefined): Borrow<T> {
  const state: ProxyState = { factory: plainFactory(factory), resolved: false, target: undefined }
  const guard = new RefGuard(kind, state, owner)
  const proxy = guardedProxyOf<Borrow<T>>(state)
  if (owner) borrows.register(proxy as object, guard, guard)
  return proxy
}

/** @internal store.owned(): the owned proxy of an object just stored */
export function ownedFromFactory<T>(factory: ProxyFactory, populated?: { value: unknown }): OwnedProxy<T> {
  return newOwned<T>(factory, populated)
}

// How many owned proxies this thread has decoded: the task runtime compares it around decoding a
// batch, so only batches that brought some are looked through after their tasks (owned-args.ts).
let ownedArrivals = 0

/** @internal the number of owned proxies decoded in this thread so far */
export function ownedArrivalCount(): number {
  return ownedArrivals
}

/** @internal the codec's reader for an owned proxy or borrow that arrived from another process */
export function reviveGuarded(factory: ProxyFactory): unknown {
  if (factory.kind === 'owned') {
    ownedArrivals++
    return newOwned(factory)
  }
  if (factory.kind === 'ref' || factory.kind === 'mut') return newRef(factory.kind, factory, undefined)
  throw new UsageError(`a proxy arrived with an unknown ownership kind '${String(factory.kind)}'`)
}

function stateOrThrow(value: unknown, what: string): ProxyState {
  const state = stateOf(value)
  if (!state) throw new UsageError(`${what}() takes a proxy, not ${value === null ? 'null' : typeof value}`)
  return state
}

function ownerOf(value: unknown, what: string): OwnerGuard {
  const state = stateOrThrow(value, what)
  const guard = state.guard
  if (guard instanceof OwnerGuard) return guard
  if (guard instanceof RefGuard) guard.fail('not-owned', `${what}() takes an owned proxy, not a borrow`)
  if (guard) guard.check(what)
  throw new BorrowError('not-owned', state.factory.store.name, keyText(state.factory.key), `${what}() takes an owned proxy (store.owned(), intoOwned()), not a plain proxy`)
}

/** Stores `value` in `store` and gives its owned proxy (the same as `store.owned(value)`). */
export function ownedProxy<T>(store: Store, value: T, options: { serializer?: string } = {}): Promise<OwnedProxy<T>> {
  return store.owned(value, options)
}

/**
 * A shared borrow of the owned proxy: any number may exist, but none next to a mutable borrow.
 * It shares the owner's target if the owner is resolved. Release it (`release`, `using`, or
 * `submitScoped` / `releaseWhenSettled` for a task) before disposing the owner.
 */
export function borrow<T>(owned: OwnedProxy<T>): RefProxy<T> {
  const owner = ownerOf(owned, 'borrow')
  owner.check('borrow')
  if (owner.mut > 0) owner.fail('mut-borrowed', 'cannot borrow an owned proxy while it is mutably borrowed; release the mutable borrow first')
  owner.shared++
  const ref = newRef<T>('ref', owner.factory, owner)
  if (owner.state.resolved) settle(stateOf(ref)!, owner.state.target)
  return ref as RefProxy<T>
}

/**
 * The one mutable borrow of the owned proxy: refused while any other borrow exists. Changes
 * reach the store (and the owner) through `update(ref, value)`; when the borrow is released the
 * owner reads the object again on its next use.
 */
export function mutBorrow<T>(owned: OwnedProxy<T>): RefMutProxy<T> {
  const owner = ownerOf(owned, 'mutBorrow')
  owner.check('borrow')
  if (owner.mut > 0) owner.fail('mut-borrowed', 'cannot mutably borrow an owned proxy twice; release the first mutable borrow')
  if (owner.shared > 0) owner.fail('borrowed', `cannot mutably borrow an owned proxy while it has ${owner.shared} borrow(s); release them first`)
  owner.mut = 1
  return newRef<T>('mut', owner.factory, owner) as RefMutProxy<T>
}

/**
 * @internal Disposes an owned proxy that is still usable and not borrowed, evicting synchronously
 * where its connector can; false (and nothing done) otherwise. The task runtime drops the owned
 * arguments a task kept with it (runtime/owned-args.ts). An asynchronous eviction's failure is
 * ignored: nobody is waiting for it.
 */
export function dropOwnedNow(value: unknown): boolean {
  const guard = stateOf(value)?.guard
  if (!(guard instanceof OwnerGuard) || guard.status !== 'live' || guard.borrowed) return false
  try {
    guard.dropNow()?.catch(() => {})
  } catch {
    // a failed synchronous eviction: the object stays, as after a failed dispose
  }
  return true
}

/** Gives a borrow back to its owner (idempotent); using the borrow afterwards throws E_BORROW. */
export function release(ref: Borrow<unknown> | RefProxy<unknown> | RefMutProxy<unknown>): void {
  const guard = stateOrThrow(ref, 'release').guard
  if (!(guard instanceof RefGuard)) {
    const state = stateOf(ref)!
    throw new BorrowError('not-owned', state.factory.store.name, keyText(state.factory.key), 'release() takes a borrow (borrow(), mutBorrow()), not an owned or plain proxy')
  }
  guard.release()
}

/**
 * Disposes the owned proxy: its object is evicted (the returned promise settles when it is).
 * Refused while borrowed; a proxy already moved or disposed has nothing to do. On a borrow it is
 * `release`.
 */
export async function dispose(proxy: OwnedProxy<unknown> | Borrow<unknown>): Promise<void> {
  const guard = stateOrThrow(proxy, 'dispose').guard
  if (guard instanceof RefGuard) return guard.release()
  await ownerOf(proxy, 'dispose').drop()
}

/**
 * A new owned object with a copy of the owned proxy's value under a new key. A resolved owner
 * is copied from its target (changes not yet written with `update` included), an unresolved
 * one from the stored bytes, without decoding them. The copy is put with the original's tags,
 * so a routing connector (multi) places it by the same policy.
 */
export async function clone<T>(owned: OwnedProxy<T>): Promise<OwnedProxy<T>> {
  const owner = ownerOf(owned, 'clone')
  owner.check('clone')
  const { factory, state } = owner
  const store = Store.fromConfig(factory.store)
  const tags = factory.tags
  let key
  if (state.resolved) key = await store.put(state.target, { serializer: factory.serializer, tags })
  else {
    const bytes = await store.connector.get(factory.key)
    key = await (tags ? store.connector.put(bytes, undefined, { tags }) : store.connector.put(bytes))
  }
  return newOwned<T>({ ...factory, key })
}

/**
 * Takes a plain proxy into ownership: the owned proxy returned evicts the object when disposed,
 * and the plain proxy given can no longer be used or sent (E_BORROW). Its `evict` flag is dropped:
 * the owner decides when the object goes. Copies of the plain proxy sent elsewhere before are not
 * tracked: take a proxy into ownership before sharing it.
 */
export function intoOwned<T>(proxy: T): OwnedProxy<T> {
  const state = stateOrThrow(proxy, 'intoOwned')
  if (state.guard) {
    state.guard.check('take into ownership')
    throw new UsageError('intoOwned() takes a plain proxy; this one is already an owned proxy or a borrow')
  }
  const target = state.resolved ? { value: state.target } : undefined
  const owned = newOwned<T>(state.factory, target)
  new TakenGuard(state)
  forget(state)
  return owned
}

/**
 * Writes a changed value back under the same key, from the owner (when not borrowed) or from a
 * mutable borrow (also in a task); the proxy used then holds the new value. Readers that resolved
 * before keep what they read.
 */
export async function update<T>(proxy: OwnedProxy<T> | RefMutProxy<T>, value: T): Promise<void> {
  const state = stateOrThrow(proxy, 'update')
  const guard = state.guard
  if (guard instanceof OwnerGuard) {
    guard.check('update')
    guard.checkNotBorrowed('update')
  } else if (guard instanceof RefGuard) {
    guard.check('update')
    if (guard.kind === 'ref') guard.fail('read-only', 'cannot update through a shared borrow; take a mutable borrow (mutBorrow) for that')
  } else {
    guard?.check('update')
    throw new BorrowError('not-owned', state.factory.store.name, keyText(state.factory.key), 'update() takes an owned proxy or a mutable borrow, not a plain proxy')
  }
  refuseUnproxyable(value)
  await Store.fromConfig(state.factory.store).set(state.factory.key, value, { serializer: state.factory.serializer })
  settle(state, value)
}

/** The ownership kind of a value: 'owned', 'ref', 'mut', or undefined for a plain proxy or anything else. */
export function ownershipOf(value: unknown): ProxyKind | undefined {
  const guard = stateOf(value)?.guard
  return guard instanceof OwnerGuard || guard instanceof RefGuard ? guard.kind : undefined
}

/** Whether an owned proxy or borrow can still be used (not moved, disposed or released). */
export function isUsable(value: unknown): boolean {
  const state = stateOf(value)
  if (!state) return false
  return state.guard instanceof Guard ? state.guard.status === 'live' : true
}

/** How many borrows an owned proxy has now: `{ shared, mut }`. */
export function borrowCount(owned: OwnedProxy<unknown>): { shared: number; mut: number } {
  const owner = ownerOf(owned, 'borrowCount')
  return { shared: owner.shared, mut: owner.mut }
}

const MAX_DEPTH = 8

/**
 * The borrows made in this process among a task's arguments: top level, and inside arrays and
 * plain objects (a few levels deep). Proxies are never looked into. For `releaseWhenSettled`.
 */
export function borrowsIn(args: readonly unknown[]): Borrow<unknown>[] {
  const found = new Set<Borrow<unknown>>()
  const walk = (value: unknown, depth: number): void => {
    if (typeof value !== 'object' || value === null) return
    const state = stateOf(value)
    if (state) {
      if (state.guard instanceof RefGuard) found.add(value as Borrow<unknown>)
      return
    }
    if (depth >= MAX_DEPTH) return
    if (Array.isArray(value)) for (const item of value) walk(item, depth + 1)
    else if (isPlain(value)) for (const item of Object.values(value)) walk(item, depth + 1)
  }
  for (const arg of args) walk(arg, 0)
  return [...found]
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * Releases the borrows when `settled` settles, fulfilled or rejected, and returns `settled`.
 * The release runs in the process that made the borrows (the caller's): a task that received a
 * borrow cannot give it back itself. Registered before the caller's own `await`, so the borrows
 * are released by the time that `await` returns.
 */
export function releaseWhenSettled<P extends PromiseLike<unknown>>(settled: P, refs: readonly Borrow<unknown>[]): P {
  if (refs.length === 0) return settled
  const releaseAll = (): void => {
    for (const ref of refs) release(ref)
  }
  settled.then(releaseAll, releaseAll)
  return settled
}
