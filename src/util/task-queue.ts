/**
 * A queue of items ordered by priority (higher first) and then by arrival. Most workflows never
 * set a priority, so the common case is a plain FIFO ring with O(1) push/shift; the heap is
 * only built once an item with a non-default priority arrives.
 */
export class PriorityQueue<T> {
  private fifo: T[] = []
  private head = 0
  private heap: { priority: number; seq: number; item: T }[] | null = null
  private seq = 0
  /** sequence numbers for items put back at the front: below every pushed one */
  private frontSeq = 0

  get size(): number {
    return this.heap ? this.heap.length : this.fifo.length - this.head
  }

  push(item: T, priority = 0): void {
    if (this.heap === null && priority === 0) {
      this.fifo.push(item)
      return
    }
    if (this.heap === null) this.convertToHeap()
    this.heapPush({ priority, seq: this.seq++, item })
  }

  /**
   * Puts an item back in front of every item of its priority (the reverse of shift()); items put
   * back in reverse order come out in their original order.
   */
  unshift(item: T, priority = 0): void {
    if (this.heap === null && priority === 0) {
      if (this.head > 0) this.fifo[--this.head] = item
      else this.fifo.unshift(item)
      return
    }
    if (this.heap === null) this.convertToHeap()
    this.heapPush({ priority, seq: --this.frontSeq, item })
  }

  shift(): T | undefined {
    if (this.heap) return this.heapPop()
    if (this.head >= this.fifo.length) return undefined
    const item = this.fifo[this.head]
    this.fifo[this.head++] = undefined as T
    // Compact occasionally so a long-running FIFO does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Removes the first item matching `predicate`; O(n), used only for cancellation. */
  remove(predicate: (item: T) => boolean): T | undefined {
    if (this.heap) {
      const index = this.heap.findIndex((entry) => predicate(entry.item))
      if (index < 0) return undefined
      const [entry] = this.heap.splice(index, 1)
      this.heapify()
      return entry?.item
    }
    for (let i = this.head; i < this.fifo.length; i++) {
      const item = this.fifo[i] as T
      if (predicate(item)) {
        this.fifo.splice(i, 1)
        return item
      }
    }
    return undefined
  }

  drain(): T[] {
    const items: T[] = []
    for (let item = this.shift(); item !== undefined; item = this.shift()) items.push(item)
    return items
  }

  private convertToHeap(): void {
    this.heap = []
    for (let i = this.head; i < this.fifo.length; i++) {
      this.heap.push({ priority: 0, seq: this.seq++, item: this.fifo[i] as T })
    }
    this.fifo = []
    this.head = 0
  }

  private before(a: { priority: number; seq: number }, b: { priority: number; seq: number }): boolean {
    return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq)
  }

  private heapPush(entry: { priority: number; seq: number; item: T }): void {
    const heap = this.heap!
    heap.push(entry)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  private heapPop(): T | undefined {
    const heap = this.heap!
    if (heap.length === 0) return undefined
    const top = heap[0]!
    const last = heap.pop()!
    if (heap.length > 0) {
      heap[0] = last
      this.siftDown(0)
    }
    return top.item
  }

  private siftDown(start: number): void {
    const heap = this.heap!
    let i = start
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let best = i
      if (left < heap.length && this.before(heap[left]!, heap[best]!)) best = left
      if (right < heap.length && this.before(heap[right]!, heap[best]!)) best = right
      if (best === i) return
      ;[heap[i], heap[best]] = [heap[best]!, heap[i]!]
      i = best
    }
  }

  private heapify(): void {
    for (let i = (this.heap!.length >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }
}
