// A block that ends on its own is replaced as soon as the provider sees it end, not at the
// strategy's next period: the LocalProvider's onBlockEnd nudges the strategy into a tick.
// Build first: `npx tsc -p tsconfig.build.json`.

import { join } from 'node:path'

import t from 'tap'

import { LocalProvider } from '../../dist/providers/index.js'
import { BlockManager, Strategy } from '../../dist/scaling/index.js'
import { silentLogger } from '../../dist/util/logger.js'
import { alive, killQuietly, readPids, tempDir, waitFor } from '../providers/helpers.js'

async function localStrategy(t: { teardown(fn: () => unknown): void }, periodMs: number) {
  const { dir, remove } = tempDir('block-end')
  const provider = new LocalProvider({ initBlocks: 2, minBlocks: 2, maxBlocks: 2 })
    // Each block's command writes its pid to a file of its own: blocks start concurrently, so a shared file's order says nothing.
  const blocks = new BlockManager({ provider, command: () => 'echo $BASHPID >> "$T_DIR/pids"; echo $BASHPID > "$T_DIR/pid-$TSFLOW_BLOCK_ID"; exec sleep 1000', env: () => ({ T_DIR: dir }) })
  const strategy = new Strategy({ strategy: 'simple', blocks, workload: () => ({ outstandingTasks: 0, slotsPerBlock: 1 }), periodMs })
  t.teardown(async () => {
    await strategy.stop()
    await blocks.shutdown()
    for (const pid of readPids(join(dir, 'pids'))) killQuietly(pid)
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  const pidOf = (blockId: string) => readPids(join(dir, `pid-${blockId}`))[0]
  return { provider, blocks, strategy, pids: () => readPids(join(dir, 'pids')), pidOf }
}

t.test('LocalProvider: a block killed with SIGKILL is replaced at once although the period is a minute', async (t) => {
  const { blocks, strategy, pids, pidOf } = await localStrategy(t, 60_000)
  await strategy.start()
  await waitFor(() => pids().length === 2, 'both blocks running their command')
  const victim = blocks.blocks[0]!
  process.kill(Number(victim.jobId), 'SIGKILL')
  const killedAt = Date.now()
  await waitFor(() => blocks.blocks.length === 3 && pids().length === 3, 'a replacement block', 10_000)
  t.ok(Date.now() - killedAt < 5_000, `replaced after ${Date.now() - killedAt} ms, long before the 60 s period`)
  t.equal(blocks.blocks.find((block) => block.blockId === victim.blockId)?.state, 'failed', 'the killed block is recorded as failed')
  t.equal(blocks.activeCount, 2, 'two blocks in play again, not three')
  const killedPid = pidOf(victim.blockId)!
  await waitFor(() => !alive(killedPid), `the killed block's command ${killedPid} gone`)
})

t.test('after stop(), a block that ends starts no tick and no replacement', async (t) => {
  const { blocks, strategy, pids, pidOf } = await localStrategy(t, 60_000)
  await strategy.start()
  await waitFor(() => pids().length === 2, 'both blocks running their command')
  await strategy.stop()
  const victim = blocks.blocks[1]!
  const killedPid = pidOf(victim.blockId)!
  process.kill(Number(victim.jobId), 'SIGKILL')
  await waitFor(() => !alive(killedPid), `the killed block's command ${killedPid} gone`)
  // Give a (wrong) nudge the time a replacement took in the test above.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(blocks.blocks.length, 2, 'no block was submitted after stop()')
})

t.test('nudges while a tick runs coalesce into one more tick after it', async (t) => {
  const { blocks, strategy } = await localStrategy(t, 60_000)
  await strategy.start()
  let polls = 0
  const poll = blocks.poll.bind(blocks)
  blocks.poll = async () => {
    polls++
    await new Promise((resolve) => setTimeout(resolve, 50))
    return poll()
  }
  const running = strategy.tick()
  strategy.nudge()
  strategy.nudge()
  strategy.nudge()
  await running
  await waitFor(() => polls === 2, 'one tick after the running one')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(polls, 2, 'three nudges during a tick ran exactly one more tick')
})

t.test('blocks that fail as soon as they start are not resubmitted in a loop: at most one extra tick per period', async (t) => {
  const { dir, remove } = tempDir('block-end-failing')
  const provider = new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 1 })
  const blocks = new BlockManager({ provider, command: () => 'echo $BASHPID >> "$T_DIR/pids"; exit 3', env: () => ({ T_DIR: dir }) })
  const strategy = new Strategy({ strategy: 'simple', blocks, workload: () => ({ outstandingTasks: 0, slotsPerBlock: 1 }), periodMs: 60_000 })
  t.teardown(async () => {
    await strategy.stop()
    await blocks.shutdown()
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  await strategy.start()
  // The replacement's own failure is recorded at the next poll (a period away); that it ran is in the pid file.
  await waitFor(() => blocks.blocks.length === 2 && blocks.blocks[0]!.state === 'failed' && readPids(join(dir, 'pids')).length === 2, 'the first block failed and its one immediate replacement ran')
  // A loop would have started many more by now.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(blocks.blocks.length, 2, 'no further block within the period')
})
