import type { TaskEnvelope } from '../protocol/messages.js'
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
 * Hands queued tasks to ready managers in two passes: first one task per idle worker, across
 * every manager that has idle workers, then prefetch (capacity beyond the workers) from the ready
 * ring. So a short task never waits in a busy manager's prefetch while another manager has a
 * worker with nothing to do. Each manager still gets ONE message per flush, and work stays
 * proportional to the managers served and tasks sent, never to the number registered. A manager
 * left with spare capacity (the queue ran dry) stays in the ring for the next turn.
 */
export function dispatch(
  queue: TaskQueue,
  registry: ManagerRegistry,
  send: (record: ManagerRecord, tasks: TaskEnvelope[]) => void,
): DispatchTotals {
  const totals: DispatchTotals = { tasks: 0, messages: 0 }
  const batches = new Map<ManagerRecord, TaskEnvelope[]>()
  const take = (record: ManagerRecord, room: number): void => {
    let batch = batches.get(record)
    while (room > 0) {
      const task = queue.shift()
      if (!task) break
      registry.assign(record, task.id, task.try)
      if (!batch) batches.set(record, (batch = []))
      batch.push(task)
      record.announced--
      room--
    }
  }
  for (let record = queue.size > 0 ? registry.nextIdle() : undefined; record; record = queue.size > 0 ? registry.nextIdle() : undefined) {
    take(record, registry.idleWorkers(record))
  }
  while (queue.size > 0) {
    const record = registry.nextReady()
    if (!record) break
    const room = registry.capacity(record)
    take(record, room)
    registry.markReady(record)
    if (room === 0) break // cannot happen: nextReady returns managers with capacity; never spin
  }
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
