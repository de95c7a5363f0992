// Batching at every hop: 1,000 no-op tasks sent in one message come back in a handful of result
// messages, in both worker modes. Prints the rate of each round (the first one is cold: JIT,
// module imports under the test's TypeScript loader).
import t from 'tap'

import { FakeInterchange, spawnManager, task, waitFor } from './harness.js'

const ROUNDS = 8
const N = 1000

for (const mode of ['threads', 'processes'] as const) {
  t.test(`${mode}: ${N} no-op tasks come back in far fewer messages than tasks`, async (t) => {
    const ix = await FakeInterchange.start(t)
    const manager = spawnManager(t, ix, { workerMode: mode, workers: 2, prefetchCapacity: N })
    await waitFor(() => ix.registered > 0, 'registration')
    // The first task on each worker imports the fixture module; keep that out of the rounds.
    await ix.sendTasks([task(-1, 'whoamiAfter', [100]), task(-2, 'whoamiAfter', [100])])
    await ix.outcomesOf([-1, -2])
    const rates: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const ids = Array.from({ length: N }, (_, i) => round * N + i + 1)
      const tasks = ids.map((id) => task(id, 'noop'))
      const messagesBefore = ix.resultMessages
      const started = process.hrtime.bigint()
      await ix.sendTasks(tasks)
      const outcomes = await ix.outcomesOf(ids)
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const messages = ix.resultMessages - messagesBefore
      t.ok(outcomes.every((o) => o.ok), `round ${round + 1}: all ${N} succeeded`)
      t.ok(messages <= N / 20, `round ${round + 1}: ${N} results in ${messages} messages`)
      rates.push(Math.round(N / seconds))
      t.comment(`${mode} round ${round + 1}: ${N} no-op tasks in ${(seconds * 1000).toFixed(1)} ms = ${rates.at(-1)} tasks/s in ${messages} result messages`)
    }
    await ix.send({ t: 'shutdown' })
    t.equal((await manager.exit).code, 0)
  })
}
