import { ConfigError, ObjectNotFound } from '../errors.js'
import { isAutoProxy, largerThan, putLarge } from '../proxy/auto.js'
import { connectors, type ObjectKey } from '../proxy/connector.js'
import { extract, factoryOf, isProxy } from '../proxy/proxy.js'
import { getStore, Store, type StoreConfig } from '../proxy/store.js'
import { isPlainObject, join, nonNegativeInt, object, string, type Check } from '../util/schema.js'
import { sizeBytes } from '../util/size.js'
import { settledWithin } from '../util/deferred.js'
import type { TaskContextWire } from '../protocol/task.js'
import type { ExecutorTask, TaskOutcome } from './base.js'

/** The executor option `proxy` (thread and high-throughput executors; docs/proxy.md "Executor option"). */
export interface ExecutorProxyOptions {
  /**
   * Where large arguments and results go: a Store, or a store config (`{ name, connector }`,
   * e.g. `{ name: 'big', connector: { type: 'file', directory: '/scratch/objects' } }`) the
   * executor builds when it starts. Its connector must be one the workers reach (not `local`).
   */
  store: Store | (Partial<StoreConfig> & Pick<StoreConfig, 'name' | 'connector'>)
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

const storeOption: Check<Store | StoreConfig> = (value, path) => {
  if (value instanceof Store) {
    if (value.connector.type === 'local') throw new ConfigError(join(path, 'connector'), LOCAL_REFUSED)
    return value
  }
  if (!isPlainObject(value)) throw new ConfigError(path, `must be a Store or a store config { name, connector } (got ${value === null ? 'null' : typeof value})`)
  const config = storeConfigShape(value, path)
  if (config.name === undefined) throw new ConfigError(join(path, 'name'), 'is required (the store name workers find it by)')
  const connector = config.connector
  const connectorPath = join(path, 'connector')
  if (!isPlainObject(connector) || typeof connector.type !== 'string') {
    throw new ConfigError(connectorPath, `must be a connector config { type, ...options } (registered types: ${connectors.names().join(', ')})`)
  }
  if (!connectors.names().includes(connector.type)) {
    throw new ConfigError(join(connectorPath, 'type'), `must be a registered connector type: ${connectors.names().map((n) => `'${n}'`).join(', ')} (got '${connector.type}')`)
  }
  if (connector.type === 'local') throw new ConfigError(connectorPath, LOCAL_REFUSED)
  return { name: config.name, connector: connector as StoreConfig['connector'], cacheSize: config.cacheSize ?? 16, serializer: config.serializer ?? 'msgpack' }
}

const optionShape = object({ store: storeOption, threshold: sizeBytes })

/** The config check of the `proxy` option; errors name `executors[0].proxy.threshold` and so on. */
export const proxyOption: Check<ResolvedProxyOption> = (value, path) => {
  const checked = optionShape(value, path)
  if (checked.store === undefined) throw new ConfigError(join(path, 'store'), 'is required: a Store, or a store config { name, connector }')
  return { store: checked.store, threshold: checked.threshold ?? DEFAULT_PROXY_THRESHOLD }
}

/**
 * The caller's side of the option, one per executor: replaces arguments larger than the threshold
 * by proxies before a task is encoded, tells workers (the task's `ctx.px`) to do the same with
 * results, fetches result proxies back so futures get values, and evicts what it put when a task
 * is reported. Tasks whose arguments are all small stay synchronous.
 */
export class ExecutorProxying {
  readonly threshold: number
  readonly store: Store
  private readonly owned: boolean
  private readonly px: NonNullable<TaskContextWire['px']>
  /** keys of the arguments proxied for each task, evicted when the task is reported */
  private readonly keys = new Map<number, ObjectKey[]>()
  /** puts and result fetches under way, which shutdown waits for */
  private readonly busy = new Set<Promise<unknown>>()
  /** tasks whose large arguments are being put, by id */
  private readonly preparing = new Map<number, ExecutorTask>()

  constructor(option: ResolvedProxyOption) {
    this.threshold = option.threshold
    if (option.store instanceof Store) {
      this.store = option.store
      this.owned = false
    } else {
      const known = getStore(option.store.name)
      this.owned = known === undefined
      this.store = known ?? Store.fromConfig(option.store)
    }
    this.px = { store: this.store.toConfig() as unknown as NonNullable<TaskContextWire['px']>['store'], threshold: this.threshold }
  }

  describe(): Record<string, unknown> {
    return { store: this.store.name, connector: this.store.connector.label, threshold: this.threshold }
  }

  /**
   * The task as it travels: large top-level arguments replaced by proxies (the kernel's task is
   * not changed, so a retry proxies again) and `ctx.px` set. A promise only when something had to
   * be put; it rejects (having evicted what it put) when the store fails.
   */
  prepare(task: ExecutorTask): ExecutorTask | Promise<ExecutorTask> {
    const ctx: TaskContextWire = task.ctx ? { ...task.ctx, px: this.px } : { px: this.px }
    let args: unknown[] | undefined
    let puts: Promise<void>[] | undefined
    const keys: ObjectKey[] = []
    for (let i = 0; i < task.args.length; i++) {
      const value = task.args[i]
      // Numbers, booleans and the like are never large; proxies already travel as their factory.
      if ((typeof value !== 'object' && typeof value !== 'string') || value === null || isProxy(value)) continue
      let large: boolean | Uint8Array
      try {
        large = largerThan(value, this.threshold)
      } catch {
        continue // unencodable: the executor's encoder fails the task with a message naming it
      }
      if (large === false) continue
      const copy = (args ??= [...task.args])
      // evict: the worker drops it once resolved; `settled` evicts it in any case.
      const put = putLarge(this.store, value, large, true).then((proxy) => {
        keys.push(factoryOf(proxy).key)
        copy[i] = proxy
      })
      ;(puts ??= []).push(put)
    }
    if (!puts) return { ...task, ctx }
    const prepared = Promise.all(puts).then(
      () => {
        this.keys.set(task.id, keys)
        return { ...task, args: args!, ctx }
      },
      async (error: unknown) => {
        await Promise.allSettled(puts!)
        this.evict(keys)
        throw error
      },
    )
    return this.track(prepared)
  }

  /**
   * Prepares a submitted task and hands it to `ready`: at once when no argument had to be put,
   * else once the puts are done, unless the task was dropped meanwhile (`drop`, `settled`: its
   * puts are then evicted). `failed` gets the store's error.
   */
  submit(task: ExecutorTask, ready: (task: ExecutorTask) => void, failed: (error: Error) => void): void {
    const prepared = this.prepare(task)
    if (!(prepared instanceof Promise)) return ready(prepared)
    this.preparing.set(task.id, task)
    prepared.then(
      (done) => {
        if (this.preparing.delete(task.id)) ready(done)
        else this.settled(task.id)
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

  /** The task was reported (any outcome): evict the arguments proxied for it. */
  settled(taskId: number): void {
    this.preparing.delete(taskId)
    const keys = this.keys.get(taskId)
    if (!keys) return
    this.keys.delete(taskId)
    this.evict(keys)
  }

  /**
   * The outcome as the kernel should see it: a result the worker stored (an automatic proxy) is
   * fetched and evicted, so the future gets the value itself. A promise only then.
   */
  outcome(outcome: TaskOutcome): TaskOutcome | Promise<TaskOutcome> {
    if (!outcome.ok || !isAutoProxy(outcome.value)) return outcome
    const proxy = outcome.value
    const fetched = extract(proxy).then(
      (value): TaskOutcome => ({ ok: true, value }),
      (error: unknown): TaskOutcome => {
        // Not fetched, so not evicted by the read: evict it here, unless it is gone already.
        if (!(error instanceof Error && error.cause instanceof ObjectNotFound)) this.evict([factoryOf(proxy).key])
        return { ok: false, error: error as Error }
      },
    )
    return this.track(fetched)
  }

  /** Waits (up to `deadlineMs`) for puts and fetches under way, then closes the store if the executor built it. */
  async close(deadlineMs: number): Promise<void> {
    await settledWithin(Promise.allSettled([...this.busy]), deadlineMs)
    for (const taskId of [...this.keys.keys()]) this.settled(taskId)
    await settledWithin(Promise.allSettled([...this.busy]), deadlineMs)
    if (this.owned) await this.store.close()
  }

  private evict(keys: readonly ObjectKey[]): void {
    for (const key of keys) {
      // A failed evict leaves the object behind (seen when the connector is checked); it must not fail the task.
      this.track(this.store.evict(key).catch(() => {}))
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.busy.add(promise)
    const done = () => this.busy.delete(promise)
    promise.then(done, done)
    return promise
  }
}
