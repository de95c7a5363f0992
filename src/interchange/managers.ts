import type { ManagerInfo } from '../protocol/messages.js'
import { PriorityQueue } from '../util/task-queue.js'

/**
 * What the interchange knows about one registered manager. `key` is the manager's ZeroMQ routing
 * id read as latin1, which maps every byte string to a distinct JS string and back.
 */
export interface ManagerRecord {
  readonly key: string
  readonly info: ManagerInfo
  /**
   * Capacity the manager last announced (`ready` / `results.capacity`) minus the tasks sent to
   * it since. The announcement may be stale by tasks still on the wire, so the usable capacity
   * is also bounded by workers + prefetch - held (see ManagerRegistry.capacity).
   */
  announced: number
  /** task id -> try, for every task sent to this manager and not answered yet */
  readonly held: Map<number, number>
  /** whether the record currently sits in the ready ring */
  inRing: boolean
  /** whether the record currently sits in the idle ring (it has workers with nothing to do) */
  inIdleRing: boolean
  /** set once the record left the registry; ring entries of removed records are skipped */
  removed: boolean
  /** function table ids this manager has been sent */
  readonly fns: Set<number>
  /** the manager's block, shared by its managers */
  readonly block: BlockEntry
  /**
   * When the manager's block reaches its walltime, on the interchange's clock (ms); undefined
   * when the manager did not say (no walltime known). Tasks that would not finish before it (less
   * the safety margin) are not sent to this manager.
   */
  endMs: number | undefined
}

/** The managers of one block and the tasks they hold together (whether the block is busy). */
export interface BlockEntry {
  readonly blockId: string
  /** blocks in the order their first manager registered: 0, 1, 2, ... */
  readonly order: number
  readonly managers: Set<ManagerRecord>
  /** tasks held by the block's managers */
  held: number
}

/**
 * The registered managers, plus the two indexes that keep scheduling flat in the number of
 * managers: a ready ring (FIFO of managers that may have spare capacity; a manager is in it at
 * most once) and a task-id -> manager placement map used by cancel and results.
 */
export class ManagerRegistry {
  private readonly byKey = new Map<string, ManagerRecord>()
  private readonly byBlock = new Map<string, BlockEntry>()
  private readonly placement = new Map<number, ManagerRecord>()
  // A PriorityQueue where every entry has priority 0 is a plain O(1) FIFO ring.
  private readonly ring = new PriorityQueue<ManagerRecord>()
  // Managers with idle workers: served first, so prefetched work never goes to a busy manager
  // while another has a worker with nothing to do.
  private readonly idleRing = new PriorityQueue<ManagerRecord>()
  /** blocks told to drain; a manager of such a block that registers later drains at once */
  readonly drainingBlocks = new Set<string>()
  private nextBlockOrder = 0
  /**
   * A manager's place in the rings: higher first, FIFO among equals. All 0 (the default) keeps
   * the rings plain O(1) FIFOs; the packed selector ranks managers by their block's age.
   */
  rank: (record: ManagerRecord) => number = () => 0

  get size(): number {
    return this.byKey.size
  }

  /** tasks currently held by managers */
  get placed(): number {
    return this.placement.size
  }

  get(key: string): ManagerRecord | undefined {
    return this.byKey.get(key)
  }

  all(): IterableIterator<ManagerRecord> {
    return this.byKey.values()
  }

  add(key: string, info: ManagerInfo, endMs?: number): ManagerRecord {
    let block = this.byBlock.get(info.blockId)
    if (!block) this.byBlock.set(info.blockId, (block = { blockId: info.blockId, order: this.nextBlockOrder++, managers: new Set(), held: 0 }))
    const record: ManagerRecord = {
      key,
      info,
      // Registering announces the full capacity; a manager not ready yet says `ready 0` next.
      announced: info.workers + info.prefetch,
      held: new Map(),
      inRing: false,
      inIdleRing: false,
      removed: false,
      fns: new Set(),
      block,
      endMs,
    }
    this.byKey.set(key, record)
    block.managers.add(record)
    return record
  }

  /** Drops the record and the placements pointing at it; its `held` map is left for the caller. */
  remove(record: ManagerRecord): void {
    if (record.removed) return
    record.removed = true
    if (this.byKey.get(record.key) === record) this.byKey.delete(record.key)
    const block = record.block
    block.managers.delete(record)
    block.held -= record.held.size
    if (block.managers.size === 0 && this.byBlock.get(block.blockId) === block) this.byBlock.delete(block.blockId)
    for (const id of record.held.keys()) {
      if (this.placement.get(id) === record) this.placement.delete(id)
    }
  }

  managersOfBlocks(blockIds: readonly string[]): ManagerRecord[] {
    const out: ManagerRecord[] = []
    for (const blockId of blockIds) {
      for (const record of this.byBlock.get(blockId)?.managers ?? []) out.push(record)
    }
    return out
  }

  capacity(record: ManagerRecord): number {
    const slots = record.info.workers + record.info.prefetch - record.held.size
    return Math.max(0, Math.min(record.announced, slots))
  }

  /** Records a capacity announcement and puts the manager in the ring if it can take work. */
  announce(record: ManagerRecord, capacity: number): void {
    record.announced = capacity
    this.markReady(record)
  }

  markReady(record: ManagerRecord): void {
    if (record.removed || record.info.draining || this.capacity(record) <= 0) return
    if (!record.inIdleRing && this.idleWorkers(record) > 0) {
      record.inIdleRing = true
      this.idleRing.push(record, this.rank(record))
    }
    if (record.inRing) return
    record.inRing = true
    this.ring.push(record, this.rank(record))
  }

  /** Workers of the manager with no task: at most its capacity, and 0 once it holds one per worker. */
  idleWorkers(record: ManagerRecord): number {
    return Math.min(this.capacity(record), Math.max(0, record.info.workers - record.held.size))
  }

  /** The next manager with an idle worker, leaving the idle ring (it stays in the ready ring). */
  nextIdle(): ManagerRecord | undefined {
    for (let record = this.idleRing.shift(); record !== undefined; record = this.idleRing.shift()) {
      record.inIdleRing = false
      if (!record.removed && !record.info.draining && this.idleWorkers(record) > 0) return record
    }
    return undefined
  }

  /** The next manager that can take tasks, leaving the ring; stale entries are dropped on the way. */
  nextReady(): ManagerRecord | undefined {
    for (let record = this.ring.shift(); record !== undefined; record = this.ring.shift()) {
      record.inRing = false
      if (!record.removed && !record.info.draining && this.capacity(record) > 0) return record
    }
    return undefined
  }

  assign(record: ManagerRecord, id: number, tryNumber: number): void {
    record.held.set(id, tryNumber)
    record.block.held++
    this.placement.set(id, record)
  }

  /** A result came back: the task no longer occupies the manager. */
  complete(record: ManagerRecord, id: number): void {
    if (!record.held.delete(id)) return
    record.block.held--
    if (this.placement.get(id) === record) this.placement.delete(id)
  }

  holder(id: number): ManagerRecord | undefined {
    return this.placement.get(id)
  }

  snapshot(record: ManagerRecord, lastHeartbeat: number | undefined): ManagerInfo {
    return {
      ...record.info,
      outstanding: record.held.size,
      lastHeartbeat: Math.round(lastHeartbeat ?? record.info.lastHeartbeat),
    }
  }
}
