import t from 'tap'
import { PriorityQueue } from '../../dist/util/task-queue.js'

function shiftAll<T>(queue: PriorityQueue<T>): T[] {
  const out: T[] = []
  while (queue.size > 0) out.push(queue.shift() as T)
  return out
}

t.test('an empty queue', async (t) => {
  const queue = new PriorityQueue<string>()
  t.equal(queue.size, 0)
  t.equal(queue.shift(), undefined)
  t.same(queue.drain(), [])
  t.equal(queue.remove(() => true), undefined)
  t.equal(queue.size, 0, 'still empty after operations on an empty queue')
})

t.test('FIFO without priorities', async (t) => {
  const queue = new PriorityQueue<string>()
  queue.push('a')
  queue.push('b')
  queue.push('c', 0)
  t.equal(queue.size, 3)
  t.equal(queue.shift(), 'a')
  queue.push('d')
  t.equal(queue.size, 3)
  t.same(shiftAll(queue), ['b', 'c', 'd'])
  t.equal(queue.size, 0)
  t.equal(queue.shift(), undefined)
  queue.push('e')
  t.equal(queue.shift(), 'e', 'usable again after being emptied')
})

t.test('priorities: higher first, FIFO among equal', async (t) => {
  const queue = new PriorityQueue<string>()
  queue.push('low-1', 1)
  queue.push('high-1', 10)
  queue.push('low-2', 1)
  queue.push('negative', -5)
  queue.push('high-2', 10)
  queue.push('default')
  queue.push('low-3', 1)
  t.equal(queue.size, 7)
  t.same(shiftAll(queue), ['high-1', 'high-2', 'low-1', 'low-2', 'low-3', 'default', 'negative'])
})

t.test('fractional and large priorities', async (t) => {
  const queue = new PriorityQueue<number>()
  queue.push(1, 0.5)
  queue.push(2, Number.MAX_SAFE_INTEGER)
  queue.push(3, -Infinity)
  queue.push(4, Infinity)
  queue.push(5, 0.25)
  t.same(shiftAll(queue), [4, 2, 1, 5, 3])
})

t.test('switching from FIFO to priorities mid-stream', async (t) => {
  const queue = new PriorityQueue<string>()
  for (const item of ['f1', 'f2', 'f3', 'f4']) queue.push(item)
  t.equal(queue.shift(), 'f1', 'FIFO before any priority')
  queue.push('urgent', 5)
  t.equal(queue.size, 4, 'size is kept across the switch')
  queue.push('f5')
  queue.push('later', -1)
  queue.push('urgent-2', 5)
  t.same(
    shiftAll(queue),
    ['urgent', 'urgent-2', 'f2', 'f3', 'f4', 'f5', 'later'],
    'queued default-priority items keep their order behind higher priorities',
  )
  queue.push('x')
  queue.push('y')
  queue.push('z', 1)
  t.same(shiftAll(queue), ['z', 'x', 'y'], 'still ordered correctly after the heap emptied')
})

t.test('switching after the FIFO head has advanced a lot', async (t) => {
  const queue = new PriorityQueue<number>()
  for (let i = 0; i < 5000; i++) queue.push(i)
  let ordered = true
  for (let i = 0; i < 3000; i++) if (queue.shift() !== i) ordered = false // the FIFO compacts itself here
  t.ok(ordered, 'FIFO order while the head advances')
  queue.push(-1, 1)
  t.equal(queue.size, 2001)
  const rest = shiftAll(queue)
  t.equal(rest[0], -1)
  t.same(rest.slice(1), Array.from({ length: 2000 }, (_, i) => 3000 + i), 'the remaining FIFO items follow in order')
})

t.test('remove()', async (t) => {
  const fifo = new PriorityQueue<{ id: number }>()
  for (let id = 1; id <= 5; id++) fifo.push({ id })
  t.equal(fifo.shift()?.id, 1)
  t.same(fifo.remove((item) => item.id === 3), { id: 3 }, 'returns the removed item (FIFO)')
  t.equal(fifo.size, 3)
  t.equal(fifo.remove((item) => item.id === 3), undefined, 'undefined when nothing matches')
  t.equal(fifo.remove((item) => item.id === 1), undefined, 'already shifted items are not found')
  t.same(
    shiftAll(fifo).map((item) => item.id),
    [2, 4, 5],
  )

  const first = new PriorityQueue<string>()
  first.push('dup')
  first.push('other')
  first.push('dup')
  t.equal(first.remove((item) => item === 'dup'), 'dup')
  t.same(shiftAll(first), ['other', 'dup'], 'only the first match is removed')

  const heap = new PriorityQueue<{ id: number }>()
  const priorities = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
  priorities.forEach((priority, id) => heap.push({ id }, priority))
  t.same(heap.remove((item) => item.id === 5), { id: 5 }, 'returns the removed item (heap)')
  t.same(heap.remove((item) => item.id === 0), { id: 0 })
  t.equal(heap.remove((item) => item.id === 99), undefined)
  t.equal(heap.size, priorities.length - 2)
  const expected = priorities
    .map((priority, id) => ({ priority, id }))
    .filter(({ id }) => id !== 5 && id !== 0)
    .sort((a, b) => b.priority - a.priority || a.id - b.id)
    .map(({ id }) => id)
  t.same(
    shiftAll(heap).map((item) => item.id),
    expected,
    'heap order is intact after removals',
  )
})

t.test('drain()', async (t) => {
  const fifo = new PriorityQueue<number>()
  for (let i = 0; i < 10; i++) fifo.push(i)
  fifo.shift()
  t.same(fifo.drain(), [1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.equal(fifo.size, 0)
  t.same(fifo.drain(), [], 'a second drain is empty')

  const heap = new PriorityQueue<string>()
  heap.push('a', 1)
  heap.push('b', 3)
  heap.push('c', 2)
  heap.push('d')
  t.same(heap.drain(), ['b', 'c', 'a', 'd'], 'drain returns items in priority order')
  t.equal(heap.size, 0)
})

t.test('size tracks every operation', async (t) => {
  const queue = new PriorityQueue<number>()
  let expected = 0
  for (let round = 0; round < 200; round++) {
    queue.push(round, round % 7 === 0 ? round % 3 : 0)
    expected++
    if (round % 3 === 0) {
      queue.shift()
      expected--
    }
    if (round % 11 === 0 && queue.remove((item) => item % 2 === 1) !== undefined) expected--
  }
  t.equal(queue.size, expected)
  t.equal(queue.drain().length, expected)
})

t.test('100k push/shift keeps FIFO order', async (t) => {
  const queue = new PriorityQueue<number>()
  const n = 100_000
  for (let i = 0; i < n; i++) queue.push(i)
  t.equal(queue.size, n)
  let ordered = true
  for (let i = 0; i < n / 2; i++) if (queue.shift() !== i) ordered = false
  for (let i = n; i < n + n / 2; i++) queue.push(i)
  t.equal(queue.size, n)
  for (let i = n / 2; i < n + n / 2; i++) if (queue.shift() !== i) ordered = false
  t.ok(ordered, 'every item came out in push order')
  t.equal(queue.size, 0)
  t.equal(queue.shift(), undefined)

  // Interleaved push/shift, as a steady stream of tasks would do.
  let next = 0
  let expected = 0
  let steady = true
  for (let i = 0; i < n; i++) {
    queue.push(next++)
    queue.push(next++)
    if (queue.shift() !== expected++) steady = false
  }
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) if (item !== expected++) steady = false
  t.ok(steady, 'interleaved push/shift keeps order')
  t.equal(expected, next, 'nothing was lost')
})

t.test('100k with random priorities come out sorted and stable', async (t) => {
  const queue = new PriorityQueue<{ priority: number; seq: number }>()
  const n = 100_000
  let seed = 12345
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
  for (let seq = 0; seq < n; seq++) {
    const priority = Math.floor(random() * 10) - 2
    queue.push({ priority, seq }, priority)
  }
  t.equal(queue.size, n)
  let previous = queue.shift()!
  let sorted = true
  let count = 1
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
    if (item.priority > previous.priority || (item.priority === previous.priority && item.seq < previous.seq)) sorted = false
    previous = item
    count++
  }
  t.equal(count, n, 'every item came out')
  t.ok(sorted, 'higher priority first, FIFO among equal priorities')
})
