// BlockManager and the Strategy runner against an in-memory provider (every state under the
// test's control), then one run against LocalProvider with real processes.
// Build first: `npx tsc -p tsconfig.build.json`.

import { join } from 'node:path'

import t from 'tap'

import { ConfigError, ProviderError } from 'tsflow'
import { object } from '../../dist/util/schema.js'
import { LocalProvider, type BlockState, type BlockStatus, type ExecutionProvider, type SubmitOptions } from '../../dist/providers/index.js'
import { SingleNodeLauncher } from 'tsflow'
import { BlockManager, Strategy, strategyOptionShape, type BlockActivity, type BlockInfo } from '../../dist/scaling/index.js'
import { alive, readPids, tempDir, waitFor, killQuietly } from '../providers/helpers.js'

interface FakeJob {
  blockId: string
  command: string
  env: Record<string, string> | undefined
  state: BlockState
}

/** An in-memory provider: submit records a job, the test sets its state. */
class FakeProvider implements ExecutionProvider {
  readonly label = 'fake'
  readonly nodesPerBlock = 1
  readonly launcher = new SingleNodeLauncher()
  readonly jobs = new Map<string, FakeJob>()
  readonly calls: string[] = []
  failSubmits = 0
  failStatus = false
  polls = 0
  private next = 100

  constructor(
    readonly initBlocks = 1,
    readonly minBlocks = 0,
    readonly maxBlocks = 4,
    readonly parallelism = 1,
  ) {}

  validate(): void {}
  async init(): Promise<void> {}
  async submit(command: string, blockId: string, options: SubmitOptions = {}): Promise<string> {
    this.calls.push(`submit ${blockId}`)
    if (this.failSubmits > 0) {
      this.failSubmits--
      throw new Error('sbatch: command not found')
    }
    const jobId = `job${this.next++}`
    this.jobs.set(jobId, { blockId, command, env: options.env ? { ...options.env } : undefined, state: 'pending' })
    return jobId
  }
  async status(jobIds: readonly string[]): Promise<BlockStatus[]> {
    this.polls++
    if (this.failStatus) throw new ProviderError(this.label, 'squeue timed out')
    return jobIds.map((jobId) => {
      const job = this.jobs.get(jobId)
      if (!job) return { blockId: '', jobId, state: 'unknown' }
      return { blockId: job.blockId, jobId, state: job.state, ...(job.state === 'failed' ? { message: 'exited with code 3: boom', exitCode: 3 } : {}) }
    })
  }
  async cancel(jobIds: readonly string[]): Promise<void> {
    this.calls.push(`cancel ${jobIds.join(',')}`)
    for (const jobId of jobIds) {
      const job = this.jobs.get(jobId)
      if (job && !['completed', 'failed', 'cancelled'].includes(job.state)) job.state = 'cancelled'
    }
  }
  async shutdown(): Promise<void> {
    this.calls.push('shutdown')
    await this.cancel([...this.jobs.keys()])
  }
  describe(): Record<string, unknown> {
    return { type: this.label }
  }
  setState(blockId: string, state: BlockState): void {
    for (const job of this.jobs.values()) if (job.blockId === blockId) job.state = state
  }
}

function manager(provider: FakeProvider, extra: Partial<ConstructorParameters<typeof BlockManager>[0]> = {}) {
  const clock = { now: 1_000_000 }
  const ended: BlockInfo[] = []
  const activity = new Map<string, BlockActivity>()
  const blocks = new BlockManager({
    provider,
    command: (blockId) => `manager --block ${blockId}`,
    env: (blockId) => ({ MY_BLOCK: blockId }),
    activity: (blockId) => activity.get(blockId),
    onBlockEnded: (block) => ended.push(block),
    clock: () => clock.now,
    ...extra,
  })
  return { blocks, clock, ended, activity }
}

t.test('BlockManager.scaleOut submits numbered blocks with their command and env, within maxBlocks', async (t) => {
  const provider = new FakeProvider(1, 0, 3)
  const { blocks } = manager(provider)
  t.same(await blocks.scaleOut(2), ['0', '1'])
  t.same([...provider.jobs.values()].map((job) => [job.blockId, job.command, job.env?.MY_BLOCK]), [
    ['0', 'manager --block 0', '0'],
    ['1', 'manager --block 1', '1'],
  ])
  t.same(await blocks.scaleOut(5), ['2'], 'only one more fits under maxBlocks 3')
  t.same(blocks.blocks.map((block) => [block.blockId, block.jobId, block.state]), [
    ['0', 'job100', 'pending'],
    ['1', 'job101', 'pending'],
    ['2', 'job102', 'pending'],
  ])
})

t.test('BlockManager.poll records state changes and reports each end once, replacing nothing', async (t) => {
  const provider = new FakeProvider()
  const { blocks, ended } = manager(provider)
  await blocks.scaleOut(2)
  provider.setState('0', 'running')
  await blocks.poll()
  t.same(blocks.blocks.map((block) => block.state), ['running', 'pending'])
  provider.setState('1', 'failed')
  await blocks.poll()
  await blocks.poll()
  t.equal(ended.length, 1, 'reported once')
  t.match(ended[0], { blockId: '1', state: 'failed', exitCode: 3, message: /boom/ })
  t.equal(blocks.activeCount, 1)
  t.same(provider.calls, ['submit 0', 'submit 1'], 'no replacement submitted')
})

t.test('BlockManager: a block unknown past the grace period with no manager is cancelled and ended as lost; one with a manager is kept', async (t) => {
  const provider = new FakeProvider()
  const { blocks, clock, ended, activity } = manager(provider, { unknownGraceMs: 60_000 })
  await blocks.scaleOut(2)
  provider.setState('0', 'running')
  provider.setState('1', 'running')
  await blocks.poll()
  provider.setState('0', 'unknown')
  provider.setState('1', 'unknown')
  activity.set('1', { connectedManagers: 1 })
  await blocks.poll()
  clock.now += 59_000
  await blocks.poll()
  t.equal(ended.length, 0, 'not before the grace period')
  clock.now += 2_000
  await blocks.poll()
  t.equal(ended.length, 1, 'only the block without a connected manager')
  t.match(ended[0], { blockId: '0', state: 'failed', message: /treated as lost: the provider could not tell its state for 60 s and none of its managers is connected/ })
  t.ok(provider.calls.includes('cancel job100'), 'cancelled in case it still exists')
  provider.setState('1', 'running')
  await blocks.poll()
  provider.setState('1', 'unknown')
  activity.set('1', { connectedManagers: 0 })
  clock.now += 30_000
  await blocks.poll()
  t.equal(ended.length, 1, 'a block that was seen again starts a new grace period')
})

t.test('BlockManager: a failed submission is a failed block and a ProviderError; later blocks are not tried', async (t) => {
  const provider = new FakeProvider()
  provider.failSubmits = 1
  const { blocks, ended } = manager(provider)
  const error = await blocks.scaleOut(3).catch((e: unknown) => e)
  t.ok(error instanceof ProviderError)
  t.match((error as Error).message, /provider fake: cannot submit block 0: sbatch: command not found/)
  t.same(provider.calls, ['submit 0'])
  t.match(ended, [{ blockId: '0', state: 'failed', jobId: undefined, message: /submitting the block failed: sbatch/ }])
  t.same(await blocks.scaleOut(1), ['1'], 'the next call tries again, with a new id')
})

t.test('BlockManager.scaleIn(n) prefers pending, then the longest idle, then the newest busy block', async (t) => {
  const provider = new FakeProvider(0, 0, 10)
  const { blocks, clock, activity } = manager(provider)
  for (let i = 0; i < 5; i++) {
    await blocks.scaleOut(1)
    clock.now += 1000
  }
  for (const id of ['0', '1', '2', '4']) provider.setState(id, 'running')
  await blocks.poll()
  activity.set('0', { connectedManagers: 1 }) // busy, oldest
  activity.set('1', { connectedManagers: 1, idleSinceMs: clock.now - 100 })
  activity.set('2', { connectedManagers: 1, idleSinceMs: clock.now - 500 })
  activity.set('4', { connectedManagers: 2 }) // busy, newest
  // '3' is pending
  t.same(await blocks.scaleIn(4), ['3', '2', '1', '4'])
  t.same(provider.calls.at(-1), 'cancel job103,job102,job101,job104')
  t.same(blocks.snapshotBlocks().map((block) => block.blockId), ['0'], 'blocks being scaled in are no longer capacity')
  t.equal(blocks.activeCount, 5, 'but they count against maxBlocks until they have ended')
  await blocks.poll()
  t.equal(blocks.activeCount, 1)
})

t.test('BlockManager.scaleIn(ids) drains first, skips unknown or ended ids, cancels even if drain fails', async (t) => {
  const provider = new FakeProvider(0, 0, 10)
  const order: string[] = []
  const { blocks } = manager(provider, {
    drain: async (ids) => {
      order.push(`drain ${ids.join(',')}`)
      throw new Error('interchange unreachable')
    },
  })
  await blocks.scaleOut(3)
  provider.setState('2', 'completed')
  await blocks.poll()
  t.same(await blocks.scaleIn(['1', '2', 'nope', '0']), ['1', '0'])
  t.same(order, ['drain 1,0'])
  t.equal(provider.calls.at(-1), 'cancel job101,job100')
  t.same(await blocks.scaleIn(['1']), [], 'already being stopped')
})

t.test('BlockManager.snapshotBlocks merges the executor activity', async (t) => {
  const provider = new FakeProvider()
  const { blocks, activity, clock } = manager(provider)
  await blocks.scaleOut(1)
  activity.set('0', { connectedManagers: 2, idleSinceMs: 5 })
  t.same(blocks.snapshotBlocks(), [{ blockId: '0', status: 'pending', submittedAtMs: clock.now, connectedManagers: 2, idleSinceMs: 5 }])
  activity.delete('0')
  t.same(blocks.snapshotBlocks(), [{ blockId: '0', status: 'pending', submittedAtMs: clock.now, connectedManagers: 0 }])
})

t.test('BlockManager.shutdown shuts the provider down, records the outcome and refuses new blocks', async (t) => {
  const provider = new FakeProvider()
  const { blocks, ended } = manager(provider)
  await blocks.scaleOut(1)
  await blocks.shutdown()
  await blocks.shutdown()
  t.same(provider.calls, ['submit 0', 'shutdown', 'cancel job100'])
  t.match(ended, [{ blockId: '0', state: 'cancelled' }])
  await t.rejects(blocks.scaleOut(1), ProviderError)
})

t.test('Strategy.start starts initBlocks at once; later ticks follow the workload', async (t) => {
  const provider = new FakeProvider(2, 0, 4)
  const { blocks, clock, activity } = manager(provider)
  const workload = { outstandingTasks: 0, slotsPerBlock: 2 }
  const strategy = new Strategy({ strategy: 'htex_auto_scale', blocks, workload: () => workload, periodMs: Infinity, maxIdleTimeMs: 10_000 })
  t.teardown(() => strategy.stop())
  await strategy.start()
  t.same(provider.calls, ['submit 0', 'submit 1'], 'initBlocks started during start(), not a period later')

  workload.outstandingTasks = 7
  t.match(await strategy.tick(), { scaleOut: 2, scaleIn: [] })
  t.equal(blocks.activeCount, 4)
  t.match(await strategy.tick(), { scaleOut: 0 }, 'maxBlocks reached')

  for (const id of ['0', '1', '2', '3']) provider.setState(id, 'running')
  workload.outstandingTasks = 0
  for (const id of ['0', '1', '2', '3']) activity.set(id, { connectedManagers: 1, idleSinceMs: clock.now })
  t.match(await strategy.tick(), { scaleIn: [] }, 'just became idle')
  clock.now += 10_000
  const decision = await strategy.tick()
  t.same(decision.scaleIn, ['0', '1', '2', '3'])
  await strategy.tick()
  t.equal(blocks.activeCount, 0, 'all scaled in')
})

t.test("Strategy 'none' starts initBlocks and then never changes", async (t) => {
  const provider = new FakeProvider(1, 0, 4)
  const { blocks } = manager(provider)
  const strategy = new Strategy({ strategy: 'none', blocks, workload: () => ({ outstandingTasks: 100, slotsPerBlock: 1 }), periodMs: Infinity })
  await strategy.start()
  await strategy.tick()
  await strategy.tick()
  t.same(provider.calls, ['submit 0'])
})

t.test('Strategy: concurrent tick() calls share one tick', async (t) => {
  const provider = new FakeProvider(0, 0, 4)
  const { blocks } = manager(provider)
  const strategy = new Strategy({ blocks, workload: () => ({ outstandingTasks: 4, slotsPerBlock: 1 }), periodMs: Infinity })
  await strategy.start()
  const [a, b] = [strategy.tick(), strategy.tick()]
  t.equal(a, b)
  await a
  t.equal(blocks.activeCount, 4, 'scaled out once, not twice')
})

t.test('Strategy: the timer ticks every periodMs, reports errors and keeps going, and stop() ends it', async (t) => {
  const provider = new FakeProvider(1, 0, 4)
  const { blocks } = manager(provider)
  const errors: unknown[] = []
  const strategy = new Strategy({ blocks, workload: () => ({ outstandingTasks: 0, slotsPerBlock: 1 }), periodMs: 10, onError: (error) => errors.push(error) })
  t.teardown(() => strategy.stop())
  await strategy.start()
  await waitFor(() => provider.polls >= 3, 'three timer ticks', 5000)
  provider.failStatus = true
  await waitFor(() => errors.length >= 2, 'two failed ticks', 5000)
  t.match(errors[0], { code: 'E_PROVIDER', message: /squeue timed out/ })
  provider.failStatus = false
  const polls = provider.polls
  await waitFor(() => provider.polls > polls + 1, 'ticks to resume after the errors', 5000)
  await strategy.stop()
  const stoppedAt = provider.polls
  await new Promise((resolve) => setTimeout(resolve, 50)) // five periods: long enough to see a stray tick
  t.equal(provider.polls, stoppedAt, 'no tick after stop()')
})

t.test('Strategy.start rejects when the initial blocks cannot be submitted', async (t) => {
  const provider = new FakeProvider(1, 0, 4)
  provider.failSubmits = 1
  const { blocks } = manager(provider)
  const strategy = new Strategy({ blocks, workload: () => ({ outstandingTasks: 0, slotsPerBlock: 1 }), periodMs: Infinity })
  await t.rejects(strategy.start(), { code: 'E_PROVIDER', message: /sbatch: command not found/ })
  await strategy.stop()
})

t.test('Strategy options are checked, with paths for the executor schema', async (t) => {
  const { blocks } = manager(new FakeProvider())
  const workload = () => ({ outstandingTasks: 0, slotsPerBlock: 1 })
  t.throws(() => new Strategy({ blocks, workload, strategy: 'fast' as 'simple' }), { code: 'E_CONFIG', path: 'strategy' })
  t.throws(() => new Strategy({ blocks, workload, periodMs: 0 }), ConfigError)
  t.throws(() => new Strategy({ blocks, workload, maxIdleTimeMs: -1 }), { code: 'E_CONFIG', path: 'maxIdleTimeMs' })
  const schema = object(strategyOptionShape)
  t.throws(() => schema({ strategy: 'htex' }, 'executors[0]'), { code: 'E_CONFIG', path: 'executors[0].strategy', message: /'none', 'simple', 'htex_auto_scale'/ })
  t.throws(() => schema({ strategyPeriodMs: -5 }, 'executors[0]'), { code: 'E_CONFIG', path: 'executors[0].strategyPeriodMs' })
  t.throws(() => schema({ maxIdleTime: 5 }, 'executors[0]'), { code: 'E_CONFIG', path: 'executors[0].maxIdleTime', message: /did you mean 'maxIdleTimeMs'/ })
  t.same(schema({ strategy: 'none', strategyPeriodMs: 500, maxIdleTimeMs: 0 }, 'executors[0]'), { strategy: 'none', strategyPeriodMs: 500, maxIdleTimeMs: 0 })
})

t.test('end to end with LocalProvider: start, scale out, scale in idle blocks, shut down', async (t) => {
  const { dir, remove } = tempDir('scaling')
  const provider = new LocalProvider({ initBlocks: 1, minBlocks: 1, maxBlocks: 3 })
  const clock = { now: Date.now() }
  const blocks = new BlockManager({
    provider,
    command: () => 'echo $BASHPID >> "$T_DIR/pids"; exec sleep 1000',
    env: () => ({ T_DIR: dir }),
    clock: () => clock.now,
  })
  const workload = { outstandingTasks: 0, slotsPerBlock: 4 }
  const strategy = new Strategy({ strategy: 'simple', blocks, workload: () => workload, periodMs: Infinity, maxIdleTimeMs: 60_000 })
  t.teardown(async () => {
    await strategy.stop()
    await blocks.shutdown()
    for (const pid of readPids(join(dir, 'pids'))) killQuietly(pid)
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: (await import('../../dist/util/logger.js')).silentLogger })

  await strategy.start()
  await strategy.tick()
  t.same(blocks.blocks.map((block) => block.state), ['running'])

  workload.outstandingTasks = 9
  t.equal((await strategy.tick()).scaleOut, 2)
  await waitFor(() => readPids(join(dir, 'pids')).length === 3, 'three blocks running', 10_000)

  workload.outstandingTasks = 0
  clock.now += 60_000
  t.same((await strategy.tick()).scaleIn.length, 2, 'down to minBlocks')
  await strategy.tick()
  t.same(blocks.blocks.map((block) => block.state).sort(), ['cancelled', 'cancelled', 'running'])
  const pids = readPids(join(dir, 'pids'))
  t.equal(pids.filter((pid) => alive(pid)).length, 1, 'one block process left')

  await strategy.stop()
  await blocks.shutdown()
  await waitFor(() => pids.every((pid) => !alive(pid)), 'no block process left', 10_000)
  t.same(blocks.blocks.map((block) => block.state), ['cancelled', 'cancelled', 'cancelled'])
})
