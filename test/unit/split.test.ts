// The one byte-capped batch splitter, and the thread executor's use of it.
import t from 'tap'
import { MAX_BATCH_PAYLOAD_BYTES, firstPartLength, splitBatch } from '../../dist/protocol/split.js'
import { encodeTaskBatches } from '../../dist/executors/batch.js'
import type { ExecutorTask } from '../../dist/executors/base.js'
import type { TaskBatchWire } from '../../dist/protocol/task.js'
import { decode } from '../../dist/serialize/codec.js'

const size = (n: number) => n

t.test('splitBatch: by count, by bytes, a large item alone, one part is the input itself', async (t) => {
  const items = [1, 2, 3, 4, 5]
  t.equal(splitBatch(items, size, 10, 100)[0], items, 'one part is not a copy')
  t.same(splitBatch(items, size, 2, 100), [[1, 2], [3, 4], [5]], 'at most maxCount per part')
  t.same(splitBatch([40, 40, 40, 40], size, 100, 100), [[40, 40, 40], [40]], 'a part closes once it reaches the byte cap')
  t.same(splitBatch([10, 500, 10], size, 100, 100), [[10, 500], [10]], 'an item past the cap closes its part')
  t.same(splitBatch([500, 10], size, 100, 100), [[500], [10]], 'an item larger than the cap travels alone')
  t.same(splitBatch([], size), [], 'nothing to split')
  t.same(splitBatch([MAX_BATCH_PAYLOAD_BYTES, 1], size), [[MAX_BATCH_PAYLOAD_BYTES], [1]], 'the default cap is MAX_BATCH_PAYLOAD_BYTES')
})

t.test('firstPartLength follows the same rule', async (t) => {
  for (const [items, count, bytes] of [
    [[1, 2, 3, 4, 5], 2, 100],
    [[40, 40, 40, 40], 100, 100],
    [[500, 10], 100, 100],
    [[10, 500, 10], 100, 100],
  ] as [number[], number, number][]) {
    t.equal(firstPartLength(items, size, count, bytes), splitBatch(items, size, count, bytes)[0]!.length, JSON.stringify(items))
  }
})

t.test('the thread executor splits a batch whose encoding passes the byte cap', async (t) => {
  const third = Math.floor(MAX_BATCH_PAYLOAD_BYTES / 3) + 1
  const fn = { t: 'ref', module: 'file:///x.js', key: 'k', name: 'k' } as const
  const task = (id: number, bytes: number): ExecutorTask => ({ id, try: 0, appName: 'k', fn, kind: 0, args: [new Uint8Array(bytes)], priority: 0 })
  const tasks = [...Array.from({ length: 7 }, (_, i) => task(i, third)), task(7, 10)]
  const parts = encodeTaskBatches(tasks, () => t.fail('every task encodes'))
  t.same(parts.map((part) => part.sent.map((x) => x.id)), [[0, 1, 2], [3, 4, 5], [6, 7]], 'three large tasks per message at most')
  for (const part of parts) {
    t.ok(part.bytes.byteLength < MAX_BATCH_PAYLOAD_BYTES + third + 1024, `a message of ${part.bytes.byteLength} bytes`)
    const batch = decode<TaskBatchWire>(part.bytes)
    t.same(batch.tasks.map((x) => x.id), part.sent.map((x) => x.id), 'each part is a whole batch with its function table')
    t.equal(batch.fns.length, 1)
  }
  const small = Array.from({ length: 100 }, (_, i) => task(i, 10))
  t.equal(encodeTaskBatches(small, () => {}).length, 1, 'small batches stay one message')
})
