// runtime/execute.ts hands results over before its batch ends, but keeps a batch of no-op tasks
// as one answer (the throughput path).
import t, { type Test } from 'tap'
import { runBatch, type BatchHooks } from '../../dist/runtime/execute.js'
import type { ResultWire, TaskBatchWire } from '../../dist/protocol/task.js'

function batchOf(...ms: number[]): TaskBatchWire {
  // A source function: busy-waits its argument, then returns it.
  const source = 'function wait(ms) { const end = Date.now() + ms; while (Date.now() < end) {} return ms }'
  return {
    fns: [{ t: 'src', source, name: 'wait' }],
    tasks: ms.map((value, id) => ({ id, try: 0, fn: 0, kind: 0, args: [value] })),
  } as TaskBatchWire
}

function recording(): { hooks: BatchHooks; sent: number[][]; sentIndexes: number[]; slowest: number[] } {
  const sent: number[][] = []
  const sentIndexes: number[] = []
  const slowest: number[] = []
  return {
    sent,
    sentIndexes,
    slowest,
    hooks: {
      results: (indexes: number[], results: ResultWire[]) => {
        sent.push(results.map((result) => result.value as number))
        sentIndexes.push(...indexes)
      },
      slowest: (ms: number) => slowest.push(ms),
    },
  }
}

/** Each task is answered exactly once: early, or in the returned array. */
function answeredOnce(t: Test, size: number, sentIndexes: number[], results: (ResultWire | undefined)[]): void {
  const seen = new Array<number>(size).fill(0)
  for (const index of sentIndexes) seen[index]!++
  results.forEach((result, index) => result !== undefined && seen[index]!++)
  t.same(seen, new Array<number>(size).fill(1), 'every task answered exactly once')
}

t.test('1,000 no-op tasks in one synchronous run come back (nearly) as one answer', async (t) => {
  const { hooks, sent, sentIndexes, slowest } = recording()
  const results = await runBatch(batchOf(...new Array<number>(1000).fill(0)), hooks)
  // Quiet machine: no early message at all. A loaded one may preempt a task for over 1 ms, which
  // sends what is held; still far from one message per task.
  t.ok(sent.length <= 10, `${sent.length} early messages for 1,000 no-op tasks`)
  answeredOnce(t, 1000, sentIndexes, results)
  t.equal(slowest.length, 1)
})

t.test('a task that takes 20 ms sends the results held before the next task starts', async (t) => {
  const { hooks, sent, sentIndexes, slowest } = recording()
  const results = await runBatch(batchOf(0, 20, 0, 0), hooks)
  t.same(sentIndexes.slice(0, 2), [0, 1], 'the results up to the slow task went early')
  t.same(sent.flat().slice(0, 2), [0, 20])
  t.equal(results[3]?.value, 0, 'the last result is in the answer')
  answeredOnce(t, 4, sentIndexes, results)
  // The task busy-waits on Date.now(), whose millisecond steps may end it just short of 20 ms.
  t.ok(slowest[0]! >= 15, `the slowest task time is reported (${slowest[0]} ms)`)
})

t.test('the last task of a batch is never sent early (its answer carries it)', async (t) => {
  const { hooks, sent } = recording()
  const results = await runBatch(batchOf(20), hooks)
  t.same(sent, [])
  t.equal(results[0]?.value, 20)
})
