/**
 * `DDict`: a distributed dictionary on real Redis servers (issue 11, docs/ddict.md). Keys are
 * hashed to shards on the client (protocol/ddict.ts `shardOf`); each shard is one redis-server.
 * Writes run in Lua scripts that refuse them while the dictionary is frozen; plain reads are
 * plain GETs. Checkpoints are key versions (`${id}:${checkpoint}:${keyText}`).
 *
 * A DDict travels to tasks as its descriptor (codec extension 0x2a, registered below; runtime/
 * execute.ts imports this module) and attaches lazily where it lands. Its connections (our own
 * RESP client, resp-client.ts) open on the first command, not when this module is imported.
 */
import { randomBytes } from 'node:crypto'
import { addExtension } from 'msgpackr'
import { DDictDestroyed, DDictKeyNotFound, TsflowError, UsageError } from '../errors.js'
import { isDDictDescriptor, keyFromText, keyText, metaKeys, redisKey, shardOf, type DDictDescriptor, type DDictKey } from '../protocol/ddict.js'
import { isReplyError, type Commands } from './connection.js'
import { entriesOf, keyLabel, readWindow, scanKeys, versionKeys, type Entries } from './keys.js'
import { configValue, createDDict, notificationsOn, prepareExisting, type DDictCreateOptions } from './create.js'
import { isLocalHost } from './local.js'
import { evalScript, RETIRED_REPLY } from './scripts.js'
import { closeShared, release, sharedFor, type Shared } from './shared.js'
import { decodeValue, encodeValue, releaseEncoded } from './values.js'
import { clearDict, destroyDict, freezeDict, isFrozenDict, newestCheckpoint, shardStats, unfreezeDict, type ShardStats } from './admin.js'
import { LANES, type ShardLink } from './shard-link.js'

export type { DDictCreateOptions } from './create.js'
export type { ShardStats } from './admin.js'
export type { Entries } from './keys.js'
export type { DDictKey, DDictDescriptor } from '../protocol/ddict.js'

export interface GetOptions<D = never> {
  /** returned instead of failing with DDictKeyNotFound when the key is missing */
  default?: D
  /** wait for a missing key to be written at this handle's checkpoint (default: the handle's waitForKeys) */
  wait?: boolean
  /** bound of that wait (default: the dictionary's timeoutMs) */
  timeoutMs?: number
}

/** What a read of one key is, prepared once: its shard and the Redis names it looks at. */
interface KeyPlan {
  key: DDictKey
  text: string
  shard: number
  /** which of the shard's connections (shard-link.ts LANES): always the same for a key */
  lane: number
  link: ShardLink
  label: string
}

export class DDict {
  readonly #shared: Shared
  #checkpoint: number
  readonly #pinned: number | undefined
  readonly #waitForKeys: boolean
  #detached = false
  /** set by a rollback onto a retired checkpoint: the next call fails with this (DragonHPC's behaviour) */
  #rolledBackOnto: { oldest: number; message: string } | undefined

  private constructor(shared: Shared, checkpoint: number, pinned: number | undefined, waitForKeys: boolean) {
    this.#shared = shared
    this.#checkpoint = checkpoint
    this.#pinned = pinned
    this.#waitForKeys = waitForKeys
    shared.handles++
  }

  /**
   * A new dictionary: on Redis servers tsflow starts (no `addresses`: managersPerNode servers on
   * this machine, or on the nodes of `provider`'s blocks), or on an existing deployment
   * (`addresses`), whose servers are checked not to evict.
   */
  static async create(options: DDictCreateOptions = {}): Promise<DDict> {
    const { descriptor, group } = await createDDict(options)
    const shared = sharedFor(descriptor)
    shared.group = group
    if (group?.onLost) {
      group.onLost((message, shard) => {
        if (shard) shared.links[shard.index]?.markLost(message)
      })
    }
    if (!group) {
      try {
        await Promise.all(shared.links.map((link, i) => prepareExisting(link, `ddict.addresses[${i}]`)))
      } catch (error) {
        await closeShared(shared)
        throw error
      }
    }
    return new DDict(shared, 0, undefined, descriptor.waitForKeys === true)
  }

  /** A handle of the dictionary a descriptor describes (connects on first use). */
  static attach(descriptor: DDictDescriptor): DDict {
    if (!isDDictDescriptor(descriptor)) throw new UsageError('DDict.attach needs a DDict descriptor (dict.descriptor()), got something else')
    const shared = sharedFor(descriptor)
    const pinned = descriptor.pinned
    if (pinned !== undefined && !(Number.isInteger(pinned) && pinned >= 0 && pinned < shared.links.length)) {
      throw new UsageError(`DDict descriptor of ${descriptor.name} is pinned to shard ${pinned}, which it does not have (${shared.links.length} shards)`)
    }
    return new DDict(shared, descriptor.checkpoint ?? 0, pinned, descriptor.waitForKeys === true)
  }

  /** What this handle travels as: enough to attach anywhere, never the data. */
  descriptor(): DDictDescriptor {
    return {
      ...this.#shared.base,
      checkpoint: this.#checkpoint,
      ...(this.#pinned !== undefined ? { pinned: this.#pinned } : {}),
      ...(this.#waitForKeys ? { waitForKeys: true } : {}),
    }
  }

  get name(): string {
    return this.#shared.base.name
  }
  get id(): string {
    return this.#shared.base.id
  }
  get shardCount(): number {
    return this.#shared.links.length
  }
  /** The checkpoint this handle reads and writes at (starts at 0). */
  get checkpointId(): number {
    return this.#checkpoint
  }
  /** Moves this handle to checkpoint `c` (DragonHPC's `checkpoint_id = c`); a retired one fails at the next write. */
  set checkpointId(c: number) {
    this.#check('checkpointId', true)
    if (!Number.isSafeInteger(c) || c < 0) throw new UsageError(`ddict ${this.name}: checkpointId must be a non-negative integer (got ${c})`)
    this.#checkpoint = c
    this.#rolledBackOnto = undefined
  }
  /** The shard every key of this handle goes to, for a handle from manager(i). */
  get pinnedShard(): number | undefined {
    return this.#pinned
  }

  // ---- the dict protocol

  async get<D = never>(key: DDictKey, options: GetOptions<D> = {}): Promise<unknown | D> {
    const plan = this.#plan(key, 'get')
    const c = this.#checkpoint
    const wss = this.#shared.base.workingSetSize
    // A waiting read is DragonHPC's wait_for_keys read: the value written AT this checkpoint, so
    // a reader that moved to c waits for the writer's write at c instead of taking the one at
    // c - 1 (as waitFor does). A non-waiting read sees the newest version in the working set.
    const exact = c > 0 && wss > 1 && (options.wait ?? (this.#waitForKeys && !('default' in options)))
    const reply = await plan.link.read('get', plan.label, this.#shared.frozen, (cm) =>
      c === 0 || wss === 1 || exact ? cm.sendCommand<Buffer | null>(['GET', this.#name(c, plan.text)]) : evalScript<Buffer | null>(cm, 'vget', versionKeys(this.id, c, wss, plan.text), []),
      plan.lane,
    )
    if (reply !== null) return decodeValue(reply)
    if (options.wait ?? (this.#waitForKeys && !('default' in options))) return this.#waitAt(plan, options.timeoutMs, 'get (waiting) of')
    if ('default' in options) return options.default as D
    throw new DDictKeyNotFound(this.name, plan.label, c === 0 ? undefined : `at checkpoint ${c}`)
  }

  async set(key: DDictKey, value: unknown): Promise<void> {
    const plan = this.#plan(key, 'set')
    const bytes = encodeValue(value)
    await plan.link.call('set', plan.label, (cm) => this.#write(cm, plan.text, bytes), plan.lane)
    // Only after a success: a failed command's buffer may still sit in a dead socket's queue.
    releaseEncoded(bytes)
  }

  async has(key: DDictKey): Promise<boolean> {
    const plan = this.#plan(key, 'has')
    const names = versionKeys(this.id, this.#checkpoint, this.#shared.base.workingSetSize, plan.text)
    return (await plan.link.read('has', plan.label, this.#shared.frozen, (cm) => cm.sendCommand<number>(['EXISTS', ...names]), plan.lane)) > 0
  }

  /** Removes the key (its versions in this handle's working set); whether it existed. */
  async delete(key: DDictKey): Promise<boolean> {
    const plan = this.#plan(key, 'delete')
    const names = versionKeys(this.id, this.#checkpoint, this.#shared.base.workingSetSize, plan.text)
    const n = await plan.link.call('delete', plan.label, (cm) => evalScript<number>(cm, 'del', [this.#meta.frozen, ...names], []), plan.lane)
    return n > 0
  }

  /** get + delete in one atomic step. */
  async pop<D = never>(key: DDictKey, options: { default?: D } = {}): Promise<unknown | D> {
    const plan = this.#plan(key, 'pop')
    const names = versionKeys(this.id, this.#checkpoint, this.#shared.base.workingSetSize, plan.text)
    const reply = await plan.link.call('pop', plan.label, (cm) => evalScript<Buffer | null>(cm, 'pop', [this.#meta.frozen, ...names], []), plan.lane)
    if (reply !== null) return decodeValue(reply)
    if ('default' in options) return options.default as D
    throw new DDictKeyNotFound(this.name, plan.label)
  }

  /** Adds `n` to the integer at `key` (a missing key counts as 0) atomically; the value BEFORE adding. */
  async fetchAdd(key: DDictKey, n = 1): Promise<number> {
    if (!Number.isSafeInteger(n)) throw new UsageError(`fetchAdd(${keyLabel(key)}, n): n must be a safe integer (got ${n})`)
    const plan = this.#plan(key, 'fetchAdd')
    const c = this.#checkpoint
    const wss = this.#shared.base.workingSetSize
    try {
      const after = await plan.link.call('fetchAdd', plan.label, (cm) =>
        c === 0
          ? evalScript<number>(cm, 'incr', [this.#meta.frozen, this.#name(0, plan.text), this.#marker(plan.text)], [String(n), String(wss)])
          : evalScript<number>(cm, 'vincr', [...this.#versionedKeys(plan.text), ...versionKeys(this.id, c, wss, plan.text).slice(1)], [String(n), ...this.#versionedArgs(plan.text)]),
        plan.lane,
      )
      return Number(after) - n
    } catch (error) {
      if (isReplyError(error) && /not an integer|out of range|overflow/.test(error.message)) {
        throw new UsageError(`ddict ${this.name}: fetchAdd of key ${plan.label} needs an integer value (a safe integer put with set, or a key fetchAdd made); it holds something else or would overflow`, { cause: error })
      }
      throw this.#retired(error, plan.label)
    }
  }

  /** Waits until the key exists at this handle's checkpoint and returns its value (DDictTimeout after timeoutMs). */
  async waitFor(key: DDictKey, options: { timeoutMs?: number } = {}): Promise<unknown> {
    return this.#waitAt(this.#plan(key, 'waitFor'), options.timeoutMs, 'waitFor of')
  }

  /** Puts many entries: one round trip per shard, the shards in parallel. */
  async setMany(entries: Entries): Promise<void> {
    const byLane = new Map<number, { plan: KeyPlan; bytes: Buffer }[]>()
    for (const [key, value] of entriesOf(entries)) {
      const plan = this.#plan(key, 'setMany')
      const at = plan.shard * LANES + plan.lane
      const list = byLane.get(at) ?? byLane.set(at, []).get(at)!
      list.push({ plan, bytes: encodeValue(value) })
    }
    await Promise.all(
      [...byLane.values()].map(async (items) => {
        const first = items[0]!.plan
        await first.link.call('setMany', batchLabel(items.map((i) => i.plan)), (cm) => Promise.all(items.map((item) => this.#write(cm, item.plan.text, item.bytes))), first.lane)
        for (const item of items) releaseEncoded(item.bytes)
      }),
    )
  }

  /** `setMany` of an object's entries, a Map or a list of [key, value]. */
  update(entries: Entries): Promise<void> {
    return this.setMany(entries)
  }

  /** Values of many keys in their order: one round trip per shard; a missing key fails unless `default` is given. */
  async getMany<D = never>(keys: readonly DDictKey[], options: { default?: D } = {}): Promise<(unknown | D)[]> {
    const plans = keys.map((key) => this.#plan(key, 'getMany'))
    const replies = await this.#fetch(plans)
    return replies.map((reply, i) => {
      if (reply !== null) return decodeValue(reply)
      if ('default' in options) return options.default as D
      throw new DDictKeyNotFound(this.name, plans[i]!.label, this.#checkpoint === 0 ? undefined : `at checkpoint ${this.#checkpoint}`)
    })
  }

  /** The keys visible at this handle's checkpoint, shard after shard (SCAN pages, never KEYS). */
  async *keys(): AsyncGenerator<DDictKey> {
    this.#check('keys')
    for (const shard of this.#shardIndexes()) yield* this.#shardKeys(shard)
  }

  async *#shardKeys(shard: number): AsyncGenerator<DDictKey> {
    for await (const page of scanKeys(this.#shared.links[shard]!.primary, this.id, this.#checkpoint, this.#shared.base.workingSetSize)) for (const [key] of page) yield key
  }

  async *values(): AsyncGenerator<unknown> {
    for await (const [, value] of this.entries()) yield value
  }

  /** [key, value] pairs; the values of a SCAN page are read in one round trip. A key deleted meanwhile is skipped. */
  async *entries(): AsyncGenerator<[DDictKey, unknown]> {
    this.#check('entries')
    for (const shard of this.#shardIndexes()) {
      const link = this.#shared.links[shard]!
      for await (const page of scanKeys(link.primary, this.id, this.#checkpoint, this.#shared.base.workingSetSize)) {
        const plans = page.map(([key, text]) => ({ key, text, shard, lane: laneOf(text), link, label: keyLabel(key) }))
        const replies = await this.#fetch(plans)
        for (let i = 0; i < plans.length; i++) if (replies[i] !== null) yield [plans[i]!.key, decodeValue(replies[i]!)]
      }
    }
  }

  /** How many keys are visible at this handle's checkpoint (a SCAN of every shard). */
  async length(): Promise<number> {
    this.#check('length')
    const counts = await Promise.all(
      this.#shardIndexes().map(async (shard) => {
        let n = 0
        for await (const page of scanKeys(this.#shared.links[shard]!.primary, this.id, this.#checkpoint, this.#shared.base.workingSetSize)) n += page.length
        return n
      }),
    )
    return counts.reduce((a, b) => a + b, 0)
  }

  /**
   * Removes every key this handle sees, at its checkpoint and before (UNLINK in batches; refused
   * while frozen). Versions other handles wrote at later checkpoints stay, as in DragonHPC.
   */
  async clear(): Promise<void> {
    this.#check('clear')
    await clearDict(this.#shared, this.#shardIndexes(), this.#checkpoint)
  }

  // ---- freezing

  /** Makes the dictionary read-only for every client (writes fail with DDictFrozen) and waits for the replicas to catch up. */
  async freeze(): Promise<void> {
    this.#check('freeze')
    await freezeDict(this.#shared)
  }

  async unfreeze(): Promise<void> {
    this.#check('unfreeze')
    await unfreezeDict(this.#shared)
  }

  async isFrozen(): Promise<boolean> {
    this.#check('isFrozen')
    return isFrozenDict(this.#shared)
  }

  // ---- checkpoints

  /** Moves this handle to the next checkpoint; its writes go there, its reads see it and the working set before it. */
  checkpoint(): number {
    this.#check('checkpoint', true)
    ++this.#checkpoint
    if (this.#rolledBackOnto && this.#checkpoint >= this.#rolledBackOnto.oldest) this.#rolledBackOnto = undefined
    return this.#checkpoint
  }

  /**
   * Moves this handle one checkpoint back (at 0 it stays at 0), as DragonHPC's rollback does: a
   * rollback onto a retired checkpoint is not refused itself; the handle's next call is, naming the
   * working set, until checkpoint(), advance() or checkpointId moves it to a live one.
   */
  async rollback(): Promise<number> {
    this.#check('rollback', true)
    if (this.#checkpoint === 0) return 0
    const target = this.#checkpoint - 1
    const newest = await newestCheckpoint(this.#shared)
    const oldest = newest - this.#shared.base.workingSetSize + 1
    this.#checkpoint = target
    this.#rolledBackOnto =
      target < oldest
        ? { oldest, message: `ddict ${this.name}: this handle was rolled back to checkpoint ${target}, which was retired (the newest checkpoint written is ${newest}, workingSetSize ${this.#shared.base.workingSetSize} keeps ${Math.max(0, oldest)}..${newest}); move it with checkpoint(), advance() or checkpointId first` }
        : undefined
    return target
  }

  /** Moves this handle to the newest checkpoint any client wrote (never backwards). */
  async advance(): Promise<number> {
    this.#check('advance', true)
    const newest = await newestCheckpoint(this.#shared)
    this.#checkpoint = Math.max(this.#checkpoint, newest)
    if (this.#rolledBackOnto && this.#checkpoint >= this.#rolledBackOnto.oldest) this.#rolledBackOnto = undefined
    return this.#checkpoint
  }

  /** DragonHPC's name for advance() (its own `advance()` replays persisted checkpoints, which tsflow has not). */
  syncToNewestCheckpoint(): Promise<number> {
    return this.advance()
  }

  // ---- placement

  /** The shard `key` goes to through this handle (its pin, else the hash): DragonHPC's which_manager. */
  whichManager(key: DDictKey): number {
    return this.#plan(key, 'whichManager').shard
  }

  /** Indices of the shards whose server runs on this node. */
  localManagers(): number[] {
    return this.#shared.base.shards.filter((s) => isLocalHost(s.host)).map((s) => s.index)
  }

  /** The keys (visible at this checkpoint) whose shard runs on this node. */
  async localKeys(): Promise<DDictKey[]> {
    this.#check('localKeys')
    const local = new Set(this.localManagers())
    const out: DDictKey[] = []
    for (const shard of this.#shardIndexes().filter((i) => local.has(i))) for await (const key of this.#shardKeys(shard)) out.push(key)
    return out
  }

  /**
   * A handle pinned to shard `index`: every key it touches goes to that shard. A key put through a
   * pinned handle is found only through a handle pinned to the same shard.
   */
  manager(index: number): DDict {
    this.#check('manager')
    if (!Number.isInteger(index) || index < 0 || index >= this.shardCount) throw new UsageError(`ddict ${this.name}: manager(${index}): there are shards 0..${this.shardCount - 1}`)
    return new DDict(this.#shared, this.#checkpoint, index, this.#waitForKeys)
  }

  /** Per shard (only its own for a pinned handle, as DragonHPC's): address, node, keys of this dictionary at this checkpoint, used and limit bytes. */
  async stats(): Promise<ShardStats[]> {
    this.#check('stats')
    return shardStats(this.#shared, this.#checkpoint, this.#shardIndexes())
  }

  // ---- lifetime

  /** Ends this handle; the process's connections close with its last attached handle. Later use: E_USAGE. */
  async detach(): Promise<void> {
    if (this.#detached) return
    this.#detached = true
    await release(this.#shared)
  }

  /**
   * Destroys the dictionary: servers tsflow started are stopped (by the handle that created
   * them; elsewhere, and on an existing deployment, the dictionary's keys are deleted). Every
   * handle in this process then fails with DDictDestroyed. A detached handle may destroy too.
   */
  async destroy(): Promise<void> {
    if (this.#shared.context.destroyed) throw new DDictDestroyed(this.name, 'destroy')
    // A detached handle may still destroy (as DragonHPC's detach() then destroy()).
    this.#detached = true
    await destroyDict(this.#shared)
  }

  // ---- internals

  get #meta() {
    return metaKeys(this.id)
  }

  #name(c: number, text: string): string {
    return redisKey(this.id, c, text)
  }

  #check(operation: string, moving = false): void {
    if (this.#shared.context.destroyed) throw new DDictDestroyed(this.name, operation)
    if (this.#detached) throw new UsageError(`ddict ${this.name}: ${operation} on a detached handle; attach again (DDict.attach(descriptor)) to use the dictionary`)
    if (this.#rolledBackOnto && !moving) throw new UsageError(`${this.#rolledBackOnto.message} (${operation} refused)`)
  }

  #plan(key: DDictKey, operation: string): KeyPlan {
    this.#check(operation)
    let text: string
    try {
      text = keyText(key)
    } catch (error) {
      // DragonHPC keys may be any picklable value (tuples are common); here they are strings or numbers.
      throw new UsageError(`ddict ${this.name}: ${operation}: ${(error as Error).message}; for a composite key (a DragonHPC tuple key) use a string, e.g. JSON.stringify([12, 34])`, { cause: error })
    }
    const shard = this.#pinned ?? shardOf(text, this.#shared.links.length)
    return { key, text, shard, lane: laneOf(text), link: this.#shared.links[shard]!, label: keyLabel(key) }
  }

  #shardIndexes(): number[] {
    return this.#pinned !== undefined ? [this.#pinned] : this.#shared.links.map((_, i) => i)
  }

  #versionedKeys(text: string): string[] {
    return [this.#meta.frozen, this.#meta.newest, this.#name(this.#checkpoint, text), this.#marker(text)]
  }

  /** The key's newest-checkpoint marker (scripts.ts). */
  #marker(text: string): string {
    return `${this.id}:#m:${text}`
  }

  #versionedArgs(text: string): string[] {
    return [String(this.#checkpoint), String(this.#shared.base.workingSetSize), `${this.id}:`, text]
  }

  /**
   * The write of one encoded value at this handle's checkpoint (checkpoint 0: the plain script).
   * A value of STAGE_BYTES or more is SET under a staging key first and moved by the script.
   */
  #write(cm: Commands, text: string, bytes: Buffer): Promise<unknown> {
    const c = this.#checkpoint
    if (bytes.length < STAGE_BYTES) {
      const written = c === 0 ? evalScript(cm, 'set', [this.#meta.frozen, this.#name(0, text), this.#marker(text)], [bytes, String(this.#shared.base.workingSetSize)]) : evalScript(cm, 'vset', this.#versionedKeys(text), [bytes, ...this.#versionedArgs(text)])
      return written.catch((error) => {
        throw this.#retired(error, keyLabel(keyFromText(text)))
      })
    }
    const staging = stagingKey(this.id)
    const staged = cm.sendCommand(['SET', staging, bytes, 'PX', String(STAGING_TTL_MS + this.#shared.base.timeoutMs)])
    const moved =
      c === 0
        ? evalScript(cm, 'stagedSet', [this.#meta.frozen, this.#name(0, text), this.#marker(text), staging], ['', String(this.#shared.base.workingSetSize)])
        : evalScript(cm, 'stagedVset', [...this.#versionedKeys(text), staging], ['', ...this.#versionedArgs(text)])
    // The SET's refusal (OOM) is the one to report; the move then fails for want of the staged key.
    return Promise.all([staged, moved]).catch(async (error) => {
      const first = await staged.then(
        () => undefined,
        (e: unknown) => e,
      )
      throw this.#retired(first ?? error, keyLabel(keyFromText(text)))
    })
  }

  #retired(error: unknown, label: string): unknown {
    if (isReplyError(error) && error.message.startsWith(RETIRED_REPLY)) {
      const newest = Number(error.message.split(' ')[1])
      return new UsageError(
        `ddict ${this.name}: write of key ${label} at checkpoint ${this.#checkpoint} refused: the key was written at checkpoint ${newest}, and workingSetSize ${this.#shared.base.workingSetSize} retired checkpoint ${this.#checkpoint}; advance() first`,
      )
    }
    return error
  }

  /** Raw replies of many keys (null: missing), one round trip per shard. */
  async #fetch(plans: KeyPlan[]): Promise<(Buffer | null)[]> {
    const out: (Buffer | null)[] = new Array(plans.length).fill(null)
    const byLane = new Map<number, number[]>()
    plans.forEach((plan, i) => {
      const at = plan.shard * LANES + plan.lane
      ;(byLane.get(at) ?? byLane.set(at, []).get(at)!).push(i)
    })
    const c = this.#checkpoint
    const wss = this.#shared.base.workingSetSize
    await Promise.all(
      [...byLane.values()].map(async (indexes) => {
        const { link, lane } = plans[indexes[0]!]!
        const label = batchLabel(indexes.map((i) => plans[i]!))
        const replies = await link.read('getMany', label, this.#shared.frozen, (cm) => {
          if (c === 0 || wss === 1) return cm.sendCommand<(Buffer | null)[]>(['MGET', ...indexes.map((i) => this.#name(c, plans[i]!.text))])
          const window = readWindow(c, wss).length
          const names = indexes.flatMap((i) => versionKeys(this.id, c, wss, plans[i]!.text))
          return evalScript<(Buffer | null | false)[]>(cm, 'vgetMany', names, indexes.map(() => String(window)))
        }, lane)
        indexes.forEach((index, j) => (out[index] = replies[j] || null))
      }),
    )
    return out
  }

  async #waitAt(plan: KeyPlan, timeoutMs: number | undefined, what: string): Promise<unknown> {
    const name = this.#name(this.#checkpoint, plan.text)
    const shared = this.#shared
    const link = plan.link
    let notify = shared.checkedNotifications.get(plan.shard)
    if (!notify) {
      notify = link.primary
        .run('CONFIG GET notify-keyspace-events', (cm) => cm.sendCommand<unknown>(['CONFIG', 'GET', 'notify-keyspace-events']))
        .then((reply) => notificationsOn(configValue(reply, 'notify-keyspace-events')))
        .catch((error) => {
          if (error instanceof TsflowError) {
            // The shard did not answer: ask again on the next wait.
            shared.checkedNotifications.delete(plan.shard)
            throw error
          }
          return false // CONFIG renamed or refused: poll
        })
      shared.checkedNotifications.set(plan.shard, notify)
    }
    link.notifications = await notify
    const found = await link.waitUntil(name, plan.label, timeoutMs ?? shared.base.timeoutMs, what, async () => {
      const reply = await link.call(what, plan.label, (cm) => cm.sendCommand<Buffer | null>(['GET', name]), plan.lane)
      return reply === null ? undefined : { value: decodeValue(reply) }
    })
    return found.value
  }
}

/** Values from this size on are staged (SET, then moved into place by the write script). */
export const STAGE_BYTES = 64 * 1024
/** A staged value's key expires after this (plus timeoutMs) if its writer died before moving it. */
const STAGING_TTL_MS = 60_000
const stagingToken = randomBytes(6).toString('hex')
let staged = 0

function stagingKey(id: string): string {
  return `${id}:#t:${stagingToken}:${staged++}`
}

/** The lane of a key: a hash of its text other than shardOf's (so lanes spread within a shard). */
function laneOf(text: string): number {
  return shardOf(`#${text}`, LANES)
}

function batchLabel(plans: KeyPlan[]): string {
  return plans.length === 1 ? plans[0]!.label : `${plans[0]!.label} (and ${plans.length - 1} more keys on the shard)`
}

// 0x2a: the codec's extension for a DDict (0x28 proxy, 0x29 locker, 0x2f store): it travels as
// its descriptor (checkpoint and pin included) and arrives as an attached, lazily connecting handle.
addExtension({
  Class: DDict,
  type: 0x2a,
  write: (dict: DDict) => dict.descriptor(),
  read: (descriptor: DDictDescriptor) => DDict.attach(descriptor),
})
