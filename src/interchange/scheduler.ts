import type { TaskEnvelope } from '../protocol/messages.js'
import { DEFAULT_MANAGER_SELECTOR, MANAGER_SELECTORS, type ManagerSelectorName } from '../protocol/interchange.js'
import { splitBatch } from '../protocol/split.js'
import { PriorityQueue } from '../util/task-queue.js'
import type { ManagerRecord, ManagerRegistry } from './managers.js'

/**
 * Tasks waiting for a manager, highest priority first, then in arrival order. Cancelling is O(1):
 * the id leaves the `waiting` index and the entry left in the heap is skipped when it surfaces
 * (the heap's own removal is a linear scan).
 */
export class TaskQueue {
  private readonly heap = new PriorityQueue<TaskEnvelope>()
  private readonly waiting = new Map<number, TaskEnvelope>()

  get size(): number {
    return this.waiting.size
  }

  has(id: number): boolean {
    return this.waiting.has(id)
  }

  push(task: TaskEnvelope): void {
    // A second submission of a queued id (a new try) replaces the first.
    this.waiting.set(task.id, task)
    const priority = typeof task.pri === 'number' && Number.isFinite(task.pri) ? task.pri : 0
    this.heap.push(task, priority)
  }

  shift(): TaskEnvelope | undefined {
    for (let task = this.heap.shift(); task !== undefined; task = this.heap.shift()) {
      if (this.waiting.get(task.id) === task) {
        this.waiting.delete(task.id)
        return task
      }
    }
    return undefined
  }

  /** Puts tasks taken by shift() back at the front, in their order (they were not sent). */
  putBack(tasks: readonly TaskEnvelope[]): void {
    for (let i = tasks.length - 1; i >= 0; i--) {
      const task = tasks[i]!
      this.waiting.set(task.id, task)
      this.heap.unshift(task, typeof task.pri === 'number' && Number.isFinite(task.pri) ? task.pri : 0)
    }
  }

  remove(id: number): TaskEnvelope | undefined {
    const task = this.waiting.get(id)
    if (task) this.waiting.delete(id)
    return task
  }

  /** Empties the queue, returning what was waiting. */
  clear(): TaskEnvelope[] {
    const tasks = [...this.waiting.values()]
    this.waiting.clear()
    this.heap.drain()
    return tasks
  }
}

export interface DispatchTotals {
  tasks: number
  messages: number
}

/**
 * Which manager gets queued tasks next: the interchange's pluggable choice (as Parsl's manager
 * selector). Dispatch runs two passes, one task per idle worker first, then prefetch, and takes
 * managers from the registry's two rings (every manager that may have room, each once). A
 * selector orders those rings by ranking each manager as it enters them (higher first, FIFO among
 * equal ranks); ranks all 0 keep the rings plain O(1) FIFOs.
 */
export interface ManagerSelector {
  readonly name: ManagerSelectorName
  rank(record: ManagerRecord): number
}

export { MANAGER_SELECTORS, DEFAULT_MANAGER_SELECTOR, type ManagerSelectorName }

/**
 * Round robin over managers: in each pass, managers in the order they became ready. Work spreads
 * over every block, so no block goes idle while there is work, even a trickle.
 */
export class SpreadSelector implements ManagerSelector {
  readonly name = 'spread' as const
  rank(): number {
    return 0
  }
}

/**
 * Fills the oldest blocks first (as Parsl's block-id selector): in each pass, managers of the
 * block that registered first come first. Under a load smaller than the blocks, work stays on
 * the first blocks and the newer ones go idle long enough for the strategy to release them. Still
 * one pass per kind: an idle worker of any block is used before any prefetch, so a task never
 * waits behind a busy manager while a worker is free. With one block the rings stay FIFOs.
 */
export class PackedSelector implements ManagerSelector {
  readonly name = 'packed' as const
  rank(record: ManagerRecord): number {
    return -record.block.order
  }
}

export function createManagerSelector(name: ManagerSelectorName = DEFAULT_MANAGER_SELECTOR): ManagerSelector {
  return name === 'spread' ? new SpreadSelector() : new PackedSelector()
}

/** What dispatch needs to know about time: only used when some manager has an end time. */
export interface DispatchClock {
  /** now, on the clock of the managers' `endMs` */
  now: number
  /** a task must end this long before its block does */
  marginMs: number
}

/** Tasks one take may set aside because they do not fit its manager's time left (bounds the work per flush). */
const MAX_SET_ASIDE = 1024

/**
 * Hands queued tasks to ready managers in two passes: first one task per idle worker, across
 * every manager that has idle workers, then prefetch (capacity beyond the workers) from the ready
 * ring; the selector's ranks order the managers within each pass. So a short task never waits
 * in a busy manager's prefetch while another manager has a worker with nothing to do. Each
 * manager still gets ONE message per flush, and work stays proportional to the managers served and tasks sent,
 * never to the number registered. A manager left with spare capacity (the queue ran dry) stays
 * in the ring for the next turn.
 *
 * Walltime: a manager whose block has an end time gets no task whose declared walltime (plus the
 * margin) exceeds the time its block has left, and none at all once its block is within the
 * margin of its end. Tasks it cannot take stay queued, in their order, for other managers.
 */
export function dispatch(
  queue: TaskQueue,
  registry: ManagerRegistry,
  send: (record: ManagerRecord, tasks: TaskEnvelope[]) => void,
  clock?: DispatchClock,
): DispatchTotals {
  const totals: DispatchTotals = { tasks: 0, messages: 0 }
  const batches = new Map<ManagerRecord, TaskEnvelope[]>()
  const take = (record: ManagerRecord, room: number): number => {
    let batch = batches.get(record)
    let taken = 0
    let setAside: TaskEnvelope[] | undefined
    // ms a task may take on this manager; Infinity when its block has no known end
    const left = record.endMs === undefined || clock === undefined ? Infinity : record.endMs - clock.now - clock.marginMs
    if (left <= 0) return 0
    while (room > 0) {
      const task = queue.shift()
      if (!task) break
      if (task.wt !== undefined && task.wt * 1000 > left) {
        ;(setAside ??= []).push(task)
        if (setAside.length >= MAX_SET_ASIDE) break
        continue
      }
      registry.assign(record, task.id, task.try)
      if (!batch) batches.set(record, (batch = []))
      batch.push(task)
      record.announced--
      room--
      taken++
    }
    if (setAside) queue.putBack(setAside)
    return taken
  }
  // Managers that took nothing although they had room (every queued task was too long for them):
  // they go back into the rings after this dispatch, not during it, or the passes would spin.
  let starved: ManagerRecord[] | undefined
  for (let record = queue.size > 0 ? registry.nextIdle() : undefined; record; record = queue.size > 0 ? registry.nextIdle() : undefined) {
    if (take(record, registry.idleWorkers(record)) === 0) (starved ??= []).push(record)
    // Still an idle worker (the queue ran dry): back in the idle ring now, in its rank's place,
    // rather than only at its next announcement.
    else if (registry.idleWorkers(record) > 0) registry.markReady(record)
  }
  while (queue.size > 0) {
    const record = registry.nextReady()
    if (!record) break
    if (take(record, registry.capacity(record)) === 0) (starved ??= []).push(record)
    else registry.markReady(record)
  }
  if (starved) for (const record of starved) registry.markReady(record)
  for (const [record, batch] of batches) {
    totals.tasks += batch.length
    // Usually one message; large payloads are split so no message grows past the byte cap.
    for (const part of splitBatch(batch, payloadBytes)) {
      send(record, part)
      totals.messages++
    }
  }
  return totals
}

function payloadBytes(envelope: { payload: Uint8Array }): number {
  return envelope.payload.byteLength
}
