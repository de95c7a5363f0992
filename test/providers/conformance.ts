// The provider conformance suite: behaviour every ExecutionProvider must show, whatever runs its
// blocks. A provider's test file calls providerConformance(t, { name, create }) with a factory
// taking raw options. Blocks here run real commands on this machine, so a provider under test
// must run its blocks locally (LocalProvider, or a scheduler provider against a local mock).
// Not a test file itself: tap reports it as "no tests found" when run alone.

import { join } from 'node:path'
import type { Test } from 'tap'

import { ConfigError, ProviderError } from 'tsflow'
import type { BlockStatus, ExecutionProvider } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { alive, killQuietly, readPids, tempDir, waitFor } from './helpers.js'

export interface ConformanceTarget {
  name: string
  create(options: Record<string, unknown>): ExecutionProvider
  /**
   * Options under which a submitted block stays pending (a held job, an impossible start time),
   * for "shutdown with blocks pending". Omitted for providers whose blocks start at once (local).
   */
  pendingOptions?: Record<string, unknown>
  /** How long a block may take to reach a state (a scheduler's cycle); default 10 s. */
  stateTimeoutMs?: number
}

/** Starts the command's pid file and a sleeping child, then beats a heartbeat file until stopped. */
const HEARTBEAT =
  'echo $BASHPID >> "$T_DIR/pids-$TSFLOW_BLOCK_ID"; sleep 1000 & echo $! >> "$T_DIR/pids-$TSFLOW_BLOCK_ID"; ' +
  'while true; do date +%s%N > "$T_DIR/heartbeat-$TSFLOW_BLOCK_ID"; sleep 0.05; done'

const FINAL = new Set(['completed', 'failed', 'cancelled'])

interface Harness {
  provider: ExecutionProvider
  dir: string
  pidsOf(blockId: string): number[]
  statusOf(jobId: string): Promise<BlockStatus>
  waitForState(jobId: string, accept: (state: string) => boolean, what: string): Promise<BlockStatus>
}

/** A validated, initialized provider whose teardown (registered first) leaves no process behind. */
async function harness(t: Test, target: ConformanceTarget, options: Record<string, unknown> = {}): Promise<Harness> {
  const { dir, remove } = tempDir('conformance')
  const provider = target.create({ maxBlocks: 4, ...options })
  const pidFiles = new Set<string>()
  t.teardown(async () => {
    await provider.shutdown()
    for (const file of pidFiles) for (const pid of readPids(file)) killQuietly(pid)
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  const statusOf = async (jobId: string): Promise<BlockStatus> => {
    const [status] = await provider.status([jobId])
    if (!status) throw new Error(`status() returned nothing for job ${jobId}`)
    return status
  }
  return {
    provider,
    dir,
    pidsOf(blockId) {
      const file = join(dir, `pids-${blockId}`)
      pidFiles.add(file)
      return readPids(file)
    },
    statusOf,
    async waitForState(jobId, accept, what) {
      let last: BlockStatus | undefined
      await waitFor(async () => accept((last = await statusOf(jobId)).state), `job ${jobId} to be ${what} (last: ${JSON.stringify(last)})`, target.stateTimeoutMs ?? 10_000)
      return last!
    },
  }
}

export function providerConformance(t: Test, target: ConformanceTarget): void {
  t.test(`${target.name}: a running block is reported running, and cancel stops its whole process tree`, async (t) => {
    const h = await harness(t, target)
    const jobId = await h.provider.submit(HEARTBEAT, 'hb', { env: { T_DIR: h.dir } })
    t.type(jobId, 'string')
    const { existsSync, readFileSync } = await import('node:fs')
    const script = join(h.dir, 'scripts', 'block-hb.sh')
    t.ok(existsSync(script), 'the block script is written to the script directory, to be rerun by hand')
    t.match(readFileSync(script, 'utf8'), /TSFLOW_BLOCK_ID=hb/, 'the script exports the block id itself')
    await h.waitForState(jobId, (state) => state === 'running', 'running')
    await waitFor(() => h.pidsOf('hb').length === 2, 'the block to record its pids', 10_000)
    const [leader, child] = h.pidsOf('hb') as [number, number]
    t.ok(alive(leader) && alive(child), 'the block and its child run')

    await h.provider.cancel([jobId])
    const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final')
    t.equal(status.state, 'cancelled')
    t.equal(status.blockId, 'hb')
    await waitFor(() => !alive(leader) && !alive(child) && !alive(-leader), 'the process group to be gone', 10_000)
    t.pass('the block, its child and its process group are gone')
  })

  t.test(`${target.name}: a block exiting with code 3 is failed, with its stderr tail`, async (t) => {
    const h = await harness(t, target)
    const jobId = await h.provider.submit('echo "tsflow-test: the frobnicator is missing" >&2; exit 3', 'bad')
    const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final')
    t.equal(status.state, 'failed')
    t.equal(status.exitCode, 3)
    t.match(status.message, /frobnicator is missing/, 'the message carries the stderr tail')
    t.match(status.message, /code 3/, 'the message says how it ended')
  })

  t.test(`${target.name}: a block exiting with code 0 is completed; cancelling it later is a no-op`, async (t) => {
    const h = await harness(t, target)
    const jobId = await h.provider.submit('echo done', 'ok')
    const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final')
    t.equal(status.state, 'completed')
    t.equal(status.exitCode, 0)
    await h.provider.cancel([jobId])
    t.equal((await h.statusOf(jobId)).state, 'completed', 'still completed after cancel')
  })

  t.test(`${target.name}: the block's environment has TSFLOW_BLOCK_ID and the submitted env`, async (t) => {
    const h = await harness(t, target)
    const jobId = await h.provider.submit('echo "$TSFLOW_BLOCK_ID $T_WORD" > "$T_DIR/env-out"', 'env-7', {
      env: { T_DIR: h.dir, T_WORD: "it's a 'quoted' $word" },
    })
    const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final')
    t.equal(status.state, 'completed', status.message ?? '')
    const { readFileSync } = await import('node:fs')
    t.equal(readFileSync(join(h.dir, 'env-out'), 'utf8'), "env-7 it's a 'quoted' $word\n")
  })

  t.test(`${target.name}: shutdown() stops every block still running and is idempotent`, async (t) => {
    const h = await harness(t, target)
    const jobs = [
      await h.provider.submit(HEARTBEAT, 's1', { env: { T_DIR: h.dir } }),
      await h.provider.submit(HEARTBEAT, 's2', { env: { T_DIR: h.dir } }),
    ]
    await waitFor(() => h.pidsOf('s1').length === 2 && h.pidsOf('s2').length === 2, 'both blocks to record their pids', 10_000)
    const pids = [...h.pidsOf('s1'), ...h.pidsOf('s2')]
    await h.provider.shutdown()
    await h.provider.shutdown()
    await waitFor(() => pids.every((pid) => !alive(pid)), 'every block process to be gone', 10_000)
    // A scheduler may take a moment to show the cancellation; a local provider shows it at once.
    for (const jobId of jobs) {
      const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final after shutdown')
      t.equal(status.state, 'cancelled', `job ${jobId} is cancelled`)
    }
    await t.rejects(h.provider.submit('true', 'late'), ProviderError, 'no submit after shutdown')
  })

  t.test(`${target.name}: shutdown() with a block still pending cancels it before it runs`, async (t) => {
    if (!target.pendingOptions) {
      t.pass(`${target.name} starts every block at once: no pending state to test`)
      return
    }
    const h = await harness(t, target, target.pendingOptions)
    const jobId = await h.provider.submit('echo ran > "$T_DIR/ran"', 'held', { env: { T_DIR: h.dir } })
    await h.waitForState(jobId, (state) => state === 'pending', 'pending')
    await h.provider.shutdown()
    const status = await h.waitForState(jobId, (state) => FINAL.has(state), 'final')
    t.equal(status.state, 'cancelled', status.message ?? '')
    const { existsSync } = await import('node:fs')
    t.notOk(existsSync(join(h.dir, 'ran')), 'the pending block never ran')
  })

  t.test(`${target.name}: status() of a job it never started is unknown`, async (t) => {
    const h = await harness(t, target)
    const [status] = await h.provider.status(['987654321'])
    t.equal(status?.state, 'unknown')
    t.equal(status?.jobId, '987654321')
  })

  t.test(`${target.name}: submit() before init() is a ProviderError`, async (t) => {
    const provider = target.create({})
    t.teardown(() => provider.shutdown())
    provider.validate('p')
    await t.rejects(provider.submit('true', 'x'), ProviderError)
  })

  t.test(`${target.name}: defaults and describe()`, async (t) => {
    const provider = target.create({})
    t.teardown(() => provider.shutdown())
    provider.validate('p')
    t.match(provider, { initBlocks: 1, minBlocks: 0, maxBlocks: 1, parallelism: 1 })
    t.equal(typeof provider.launcher.wrap, 'function')
    t.equal(provider.describe().type, provider.label)
  })

  t.test(`${target.name}: invalid options are ConfigErrors naming the option`, async (t) => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ maxBlocks: 0 }, 'maxBlocks', /positive integer/],
      [{ minBlocks: -1 }, 'minBlocks', /non-negative integer/],
      [{ initBlocks: 1.5 }, 'initBlocks', /non-negative integer/],
      [{ minBlocks: 3, maxBlocks: 2 }, 'minBlocks', /must not exceed maxBlocks \(2\)/],
      [{ initBlocks: 5 }, 'initBlocks', /must not exceed maxBlocks \(1, the default\)/],
      [{ parallelism: 1.5 }, 'parallelism', /from 0 to 1/],
      [{ nodesPerBlock: 0 }, 'nodesPerBlock', /positive integer/],
      [{ maxBlock: 2 }, 'maxBlock', /did you mean 'maxBlocks'/],
      [{ launcher: 'rocket' }, 'launcher', /must be a launcher/],
      [{ launcher: { type: 'rocket' } }, 'launcher.type', /must be one of/],
      [{ launcher: { type: 'srun', overides: '-N1' } }, 'launcher.overides', /did you mean 'overrides'/],
      [{ workerInit: 42 }, 'workerInit', /string or an array of strings/],
      [{ cmdTimeoutMs: 0 }, 'cmdTimeoutMs', /positive number/],
      [{ walltime: '90 minutes' }, 'walltime', /HH:MM:SS/],
      [{ walltime: '00:00:00' }, 'walltime', /longer than zero/],
      [{ coresPerNode: 0 }, 'coresPerNode', /positive integer/],
      [{ memPerNode: -4 }, 'memPerNode', /positive number/],
      [{ exclusive: 'yes' }, 'exclusive', /true or false/],
    ]
    for (const [options, key, message] of cases) {
      const provider = target.create(options)
      const error = t.throws(() => provider.validate('executors[0].provider'), ConfigError, JSON.stringify(options))
      t.equal((error as ConfigError).path, `executors[0].provider.${key}`, `path for ${JSON.stringify(options)}`)
      t.match((error as Error).message, message, `message for ${JSON.stringify(options)}`)
    }
  })
}
