import { ConfigError, ObjectNotFound } from '../errors.js'
import { isAutoProxy, largerThan, putLarge } from '../proxy/auto.js'
import { connectorFromConfig, connectors, isConnector, type Connector, type ObjectKey } from '../proxy/connector.js'
import { extract, factoryOf, isProxy } from '../proxy/proxy.js'
import { getStore, Store, type StoreConfig } from '../proxy/store.js'
import { isPlainObject, join, nearest, nonNegativeInt, object, string, type Check } from '../util/schema.js'
import { sizeBytes } from '../util/size.js'
import { settledWithin } from '../util/deferred.js'
import type { TaskContextWire } from '../protocol/task.js'
import type { ExecutorTask, TaskOutcome } from './base.js'

/** The executor option `proxy` (thread and high-throughput executors; docs/proxy.md "Executor option"). */
export interface ExecutorProxyOptions {
  /**
   * Where large arguments and results go: a Store, or a store config (`{ name, connector }`,
   * e.g. `{ name: 'big', connector: { type: 'file', directory: '/scratch/objects' } }`; a connector
   * instance there is taken by its config) the executor builds when it starts and closes at
   * shutdown. Its connector must be one the workers reach (not `local`).
   */
  store: Store | (Partial<Omit<StoreConfig, 'connector'>> & { name: string; connector: StoreConfig['connector'] | Connector })
  /** An argument or result that encodes to more than this travels as a proxy: bytes, or a size like '1MB'. Default '1MB'. */
  threshold?: number | string
}

export interface ResolvedProxyOption {
  store: Store | StoreConfig
  threshold: number
}

/** One megabyte: below it, sending the bytes with the task costs about what a store round trip does. */
export const DEFAULT_PROXY_THRESHOLD = 1_000_000

const LOCAL_REFUSED =
  "is a 'local' connector, whose objects live in this thread's memory where workers cannot read them; " +
  "use a connector the workers reach (e.g. { type: 'file', directory })"

const storeConfigShape = object({ name: string, connector: (value, path) => value, cacheSize: nonNegativeInt, serializer: string })

/**
 * The check of an executor option's `store` (the `proxy` and `proxyImports` options): a Store, or a
 * store config the executor builds; a 'local' connector is refused, since workers cannot read it.
 */
export const executorStoreOption: Check<Store | StoreConfig> = (value, path) => {
  if (value instanceof Store) {
    if (value.connector.type === 'local') throw new ConfigError(join(path, 'connector'), LOCAL_REFUSED)
    return value
  }
  if (!isPlainObject(value)) throw new ConfigError(path, `must be a Store or a store config { name, connector } (got ${value === null ? 'null' : typeof value})`)
  const config = storeConfigShape(value, path)
  if (config.name === undefined) throw new ConfigError(join(path, 'name'), 'is required (the store name workers find it by)')
  const connectorPath = join(path, 'connector')
  // A connector instance is taken by its config: the executor builds (and closes) its own.
  const connector = isConnector(config.connector) ? config.connector.toConfig() : config.connector
  if (!isPlainObject(connector) || typeof connector.type !== 'string') {
    throw new ConfigError(connectorPath, `must be a connector config { type, ...options } (registered types: ${connectors.names().join(', ')})`)
  }
  if (!connectors.names().includes(connector.type)) {
    const suggestion = nearest(connector.type, connectors.names())
    throw new ConfigError(
      join(connectorPath, 'type'),
      `must be a registered connector type: ${connectors.names().map((n) => `'${n}'`).join(', ')} (got '${connector.type}')${suggestion ? `; did you mean '${suggestion}'?` : ''}`,
    )
  }
  if (connector.type === 'local') throw new ConfigError(connectorPath, LOCAL_REFUSED)
  // Build it once now, so a bad connector option is reported here, under its full path, rather
  // than when the executor starts, as `connector.<option>`. Connectors connect lazily: nothing
  // is opened but what the constructor makes (a file connector's directory).
  void connectorFromConfig(connector as StoreConfig['connector'], connectorPath)
    .close()
    .catch(() => {})
  return { name: config.name, connector: connector as StoreConfig['connector'], cacheSize: config.cacheSize ?? 16, serializer: config.serializer ?? 'msgpack' }
}

const optionShape = object({ store: executorStoreOption, threshold: sizeBytes })

/** The config check of the `proxy` option; errors name `executors[0].proxy.threshold` and so on. */
export const proxyOption: Check<ResolvedProxyOption> = (value, path) => {
  if (value instanceof Store) throw new ConfigError(path, `must be { store, threshold? }, not a Store itself: write proxy: { store } (got the Store '${value.name}')`)
  const checked = optionShape(value, path)
  if (checked.store === undefined) throw new ConfigError(join(path, 'store'), 'is required: a Store, or a store config { name, connector }')
  return { store: checked.store, threshold: checked.threshold ?? DEFAULT_PROXY_THRESHOLD }
}

/**
 * The store of a checked executor option: the Store given, or the one registered under the
 * config's name, or a new one built from the config, which the executor then owns (closes at shutdown).
 */
export function openExecutorStore(store: Store | StoreConfig): { store: Store; owned: boolean } {
  if (store instanceof Store) return { store, owned: false }
  const known = getStore(store.name)
  return { store: known ?? Store.fromConfig(store), owned: known === undefined }
}

/** One stored argument, shared by every outstanding task that passed the same object. */
interface StoredArgument {
  value: unknown
  /** resolves to the proxy (rejects when the put failed) */
  proxy: Promise<unknown>
  key?: ObjectKey
  /** outstanding tasks using it; evicted when the last is reported */
  uses: number
}

/**
 * The caller's side of the option, one per executor: replaces arguments larger than the threshold
 * by proxies before a task is encoded, tells workers (the task's `ctx.px`) to do the same with
 * results, fetches result proxies back so futures get values, and evicts what it put when the
 * tasks that used it are reported. Tasks whose arguments are all small stay synchronous.
 */
export class ExecutorProxying {
  readonly threshold: number
  readonly store: Store
  private readonly owned: boolean
  private readonly px: NonNullable<TaskContextWire['px']>
  /**
   * Stored arguments by the object passed: an object passed to many tasks (a fan-out) is stored
   * once and evicted when the last of them is reported.
   */
  private readonly stored = new Map<unknown, StoredArgument>()
  /** the stored arguments each task uses */
  private readonly uses = new Map<number, StoredArgument[]>()
  /** puts, fetches and evictions under way, which shutdown waits for */
  private readonly busy = new Set<Promise<unknown>>()
  /** tasks whose large arguments are being put, by id */
  private readonly preparing = new Map<number, ExecutorTask>()

  constructor(option: ResolvedProxyOption) {
    this.threshold = option.threshold
    ;({ store: this.store, owned: this.owned } = openExecutorStore(option.store))
    this.px = { store: this.store.toConfig() as unknown as NonNullable<TaskContextWire['px']>['store'], threshold: this.threshold }
  }

  describe(): Record<string, unknown> {
    return { store: this.store.name, connector: this.store.connector.label, threshold: this.threshold }
  }

  /**
   * The task as it travels: large top-level arguments replaced by proxies (the kernel's task is
   * not changed, so a retry proxies again) and `ctx.px` set. A promise only when an argument is
   * being put; it rejects when the store fails. What the task uses is released by `settled`.
   */
  prepare(task: ExecutorTask): ExecutorTask | Promise<ExecutorTask> {
    const ctx: TaskContextWire = task.ctx ? { ...task.ctx, px: this.px } : { px: this.px }
    let args: unknown[] | undefined
    let used: StoredArgument[] | undefined
    for (let i = 0; i < task.args.length; i++) {
      const value = task.args[i]
      // Numbers, booleans and the like are never large; proxies already travel as their factory.
      if ((typeof value !== 'object' && typeof value !== 'string') || value === null || isProxy(value)) continue
      let stored = this.stored.get(value)
      if (stored === undefined) {
        let large: boolean | Uint8Array
        try {
          large = largerThan(value, this.threshold)
        } catch {
          continue // unencodable: the executor's encoder fails the task with a message naming it
        }
        if (large === false) continue
        stored = this.put(value, large)
      }
      stored.uses++
      ;(used ??= []).push(stored)
      ;(args ??= [...task.args])[i] = stored
    }
    if (!used) return { ...task, ctx }
    this.uses.set(task.id, used)
    const copy = args!
    return this.track(
      Promise.all(
        copy.map(async (arg, i) => {
          if (used.includes(arg as StoredArgument)) copy[i] = await (arg as StoredArgument).proxy
        }),
      ).then(() => ({ ...task, args: copy, ctx })),
    )
  }

  private put(value: unknown, measured: true | Uint8Array): StoredArgument {
    const stored: StoredArgument = { value, uses: 0, proxy: undefined as unknown as Promise<unknown> }
    // Not evict-on-resolve: other tasks may read the same object; it goes when its last task is reported.
    stored.proxy = putLarge(this.store, value, measured, false).then(
      (proxy) => {
        stored.key = factoryOf(proxy).key
        // Every task that used it was reported while it was being put.
        if (stored.uses === 0) this.evict([stored.key])
        return proxy
      },
      (error: unknown) => {
        // A later task passing the same object tries again.
        if (this.stored.get(value) === stored) this.stored.delete(value)
        throw error
      },
    )
    stored.proxy.catch(() => {}) // each task awaiting it sees the error
    this.stored.set(value, stored)
    return stored
  }

  /**
   * Prepares a submitted task and hands it to `ready`: at once when no argument had to be put,
   * else once the puts are done, unless the task was dropped meanwhile (`drop`, `settled`).
   * `failed` gets the store's error.
   */
  submit(task: ExecutorTask, ready: (task: ExecutorTask) => void, failed: (error: Error) => void): void {
    const prepared = this.prepare(task)
    if (!(prepared instanceof Promise)) return ready(prepared)
    this.preparing.set(task.id, task)
    prepared.then(
      (done) => {
        if (this.preparing.delete(task.id)) ready(done)
      },
      (error: unknown) => {
        if (this.preparing.delete(task.id)) failed(error as Error)
      },
    )
  }

  /** Drops a task still being prepared (cancelled, shut down); it is returned when it was one. */
  drop(taskId: number): ExecutorTask | undefined {
    const task = this.preparing.get(taskId)
    this.preparing.delete(taskId)
    return task
  }

  /** The tasks still being prepared, dropped (shutdown). */
  dropAll(): ExecutorTask[] {
    const tasks = [...this.preparing.values()]
    this.preparing.clear()
    return tasks
  }

  /** The task was reported (any outcome): its stored arguments are released (evicted in the background when unused). */
  settled(taskId: number): void {
    this.preparing.delete(taskId)
    void this.release(taskId)
  }

  /** Releases the task's stored arguments; evicts (and returns the eviction of) those no outstanding task uses. */
  private release(taskId: number): Promise<unknown> | undefined {
    const used = this.uses.get(taskId)
    if (!used) return undefined
    this.uses.delete(taskId)
    const unused: ObjectKey[] = []
    for (const stored of used) {
      if (--stored.uses > 0) continue
      if (this.stored.get(stored.value) === stored) this.stored.delete(stored.value)
      // Still being put: evicted once it is (see put).
      if (stored.key) unused.push(stored.key)
    }
    return unused.length > 0 ? this.evict(unused) : undefined
  }

  /**
   * The outcome of a task that ran, as the kernel should see it: its stored arguments released
   * (and evicted when unused) before the future settles, and a result the worker stored (an
   * automatic proxy) fetched and evicted, so the future gets the value itself. A promise only
   * when there is such work.
   */
  outcome(taskId: number, outcome: TaskOutcome): TaskOutcome | Promise<TaskOutcome> {
    const released = this.release(taskId)
    if (!outcome.ok || !isAutoProxy(outcome.value)) return released ? this.track(released.then(() => outcome)) : outcome
    const proxy = outcome.value
    const fetched = extract(proxy).then(
      (value): TaskOutcome => ({ ok: true, value }),
      (error: unknown): TaskOutcome => {
        // Not fetched, so not evicted by the read: evict it here, unless it is gone already.
        if (!(error instanceof Error && error.cause instanceof ObjectNotFound)) void this.evict([factoryOf(proxy).key])
        return { ok: false, error: error as Error }
      },
    )
    return this.track(released ? Promise.all([fetched, released]).then(([done]) => done) : fetched)
  }

  /** The outcome of a try no longer wanted: a result the worker stored is evicted unread. */
  discard(outcome: TaskOutcome): TaskOutcome {
    if (outcome.ok && isAutoProxy(outcome.value)) void this.evict([factoryOf(outcome.value).key])
    return outcome
  }

  /** Waits (up to `deadlineMs`) for work under way, releases what is left, then closes the store if the executor built it. */
  async close(deadlineMs: number): Promise<void> {
    await settledWithin(Promise.allSettled([...this.busy]), deadlineMs)
    for (const taskId of [...this.uses.keys()]) this.settled(taskId)
    await settledWithin(Promise.allSettled([...this.busy]), deadlineMs)
    if (this.owned) await this.store.close()
  }

  private evict(keys: readonly ObjectKey[]): Promise<unknown> {
    // A failed evict leaves the object behind (seen when the connector is checked); it must not fail the task.
    return this.track(Promise.all(keys.map((key) => this.store.evict(key).catch(() => {}))))
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.busy.add(promise)
    const done = () => this.busy.delete(promise)
    promise.then(done, done)
    return promise
  }
}
