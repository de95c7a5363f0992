import type { QueuedTask } from './pool.js'

/**
 * The manager's task queue: priority (higher first), then arrival. Unlike util/task-queue.ts it
 * can peek, which lets the scheduler stop a batch before a task that must run alone instead of
 * skipping over it, and it has a front lane for tasks coming back from a lost worker (they were
 * already started once, so they go first).
 */
export class TaskQueue {
  private readonly front = new Fifo<QueuedTask>()
  private readonly lanes = new Map<number, Fifo<QueuedTask>>()
  /** priorities with a lane, highest first */
  private order: number[] = []
  private count = 0

  get size(): number {
    return this.count
  }

  push(task: QueuedTask): void {
    let lane = this.lanes.get(task.priority)
    if (!lane) {
      lane = new Fifo()
      this.lanes.set(task.priority, lane)
      this.order.push(task.priority)
      this.order.sort((a, b) => b - a)
    }
    lane.push(task)
    this.count++
  }

  /** Puts tasks back ahead of everything else. */
  pushFront(tasks: readonly QueuedTask[]): void {
    for (const task of tasks) this.front.push(task)
    this.count += tasks.length
  }

  peek(): QueuedTask | undefined {
    return this.lane()?.peek()
  }

  shift(): QueuedTask | undefined {
    const task = this.lane()?.shift()
    if (task) this.count--
    return task
  }

  /** Removes and returns every task matching `predicate` (cancellation; O(n)). */
  removeWhere(predicate: (task: QueuedTask) => boolean): QueuedTask[] {
    const removed = [...this.front.removeWhere(predicate)]
    for (const lane of this.lanes.values()) removed.push(...lane.removeWhere(predicate))
    this.count -= removed.length
    return removed
  }

  drain(): QueuedTask[] {
    return this.removeWhere(() => true)
  }

  private lane(): Fifo<QueuedTask> | undefined {
    if (this.front.size > 0) return this.front
    for (const priority of this.order) {
      const lane = this.lanes.get(priority)!
      if (lane.size > 0) return lane
    }
    return undefined
  }
}

/** An array-backed FIFO with O(1) shift; compacts once the consumed head dominates. */
class Fifo<T> {
  private items: (T | undefined)[] = []
  private head = 0

  get size(): number {
    return this.items.length - this.head
  }

  push(item: T): void {
    this.items.push(item)
  }

  peek(): T | undefined {
    return this.items[this.head]
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  removeWhere(predicate: (item: T) => boolean): T[] {
    const kept: T[] = []
    const removed: T[] = []
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i] as T
      ;(predicate(item) ? removed : kept).push(item)
    }
    if (removed.length > 0) {
      this.items = kept
      this.head = 0
    }
    return removed
  }
}
