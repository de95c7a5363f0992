// GridEngineProvider against a real Grid Engine (Debian's SGE 8.1.9 on this machine, brought up
// by test/setup/sge-up.sh through ensureGridEngine): the provider conformance suite, failures
// that must surface the scheduler's or the block's own words, finished jobs resolved through
// qacct, the resource directives as the job sees them, and HTEX running tasks on SGE blocks.
// Skips with the reason when Grid Engine cannot be brought up (not root, no apt).

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import t, { type Test } from 'tap'

import { DataFlowKernel, GridEngineProvider, HighThroughputExecutor, ProviderError } from 'tsflow'
import type { BlockStatus, GridEngineProviderOptions } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { inGridEngineJob } from '../fixtures/gridengine-apps.js'
import * as apps from '../fixtures/apps.js'
import { ensureGridEngine, type GridEngine } from '../helpers/gridengine.js'
import { providerConformance } from './conformance.js'
import { tempDir, waitFor } from './helpers.js'

const FINAL = new Set(['completed', 'failed', 'cancelled'])
/** A block's way through the scheduler (schedule interval 1 s, qacct flush 1 s) on a busy 2-core machine. */
const STATE_TIMEOUT_MS = 60_000

// Scheduler-bound (a bring-up on a fresh machine installs packages; every block waits for a
// scheduling cycle): more than the suite's default 180 s per file when CI runs files side by side.
t.setTimeout(900_000)
const engine = await ensureGridEngine()
if (typeof engine === 'string') {
  t.test('GridEngineProvider on a real Grid Engine', { skip: engine }, () => {})
} else {
  run(engine)
}

/** Jobs Grid Engine still lists, by number (all users: the tests run as root). */
function listedJobs(): Set<string> {
  const xml = execFileSync('qstat', ['-xml', '-u', '*'], { encoding: 'utf8' })
  return new Set([...xml.matchAll(/<JB_job_number>(\d+)<\/JB_job_number>/g)].map((match) => match[1]!))
}

async function started(t: Test, engine: GridEngine, options: GridEngineProviderOptions = {}) {
  const { dir, remove } = tempDir('sge')
  const provider = new GridEngineProvider({ queue: engine.queue, maxBlocks: 4, ...options })
  t.teardown(async () => {
    await provider.shutdown()
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  const final = (jobId: string): Promise<BlockStatus> => stateOf(provider, jobId, (state) => FINAL.has(state), 'final')
  return { provider, dir, final }
}

/** Polls until the job's state passes `accept`; a timeout names the last status seen. */
async function stateOf(provider: GridEngineProvider, jobId: string, accept: (state: string) => boolean, what: string): Promise<BlockStatus> {
  let last: BlockStatus | undefined
  try {
    await waitFor(async () => accept((last = (await provider.status([jobId]))[0]!).state), `job ${jobId} to be ${what}`, STATE_TIMEOUT_MS, 200)
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`)
  }
  return last!
}

function run(engine: GridEngine): void {
  providerConformance(t, {
    name: 'gridengine',
    create: (options) => new GridEngineProvider({ queue: engine.queue, ...options }),
    // qsub -h: the job waits in hqw until released, which these tests never do
    pendingOptions: { schedulerOptions: '#$ -h' },
    stateTimeoutMs: STATE_TIMEOUT_MS,
  })

  t.test('an unknown queue fails at submit with qsub\'s own message', async (t) => {
    const { provider } = await started(t, engine, { queue: 'tsflow-no-such-queue' })
    const error = await provider.submit('true', 'badq').then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError, 'a ProviderError')
    t.match((error as Error).message, /block badq was not accepted: `qsub -terse .*block-badq\.sh` exited with code 1: Unable to run job: .*unknown queue "tsflow-no-such-queue"/)
  })

  t.test('an unknown parallel environment fails at submit with qsub\'s own message', async (t) => {
    const { provider } = await started(t, engine, { pe: 'tsflow-no-such-pe', coresPerNode: 2 })
    await t.rejects(provider.submit('true', 'badpe'), { message: /parallel environment "tsflow-no-such-pe" does not exist/ })
  })

  t.test('a request no queue could ever run fails at submit (qsub -w e), not pending forever', async (t) => {
    const { provider, dir } = await started(t, engine, { pe: engine.pe, coresPerNode: engine.slots + 1 })
    const error = await provider.submit('true', 'toobig').then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError, 'a ProviderError')
    t.match((error as Error).message, /block toobig was not accepted: `qsub -terse .*` exited with code 1: Unable to run job: error: no suitable queues/)
    t.match(readFileSync(join(dir, 'scripts', 'block-toobig.sh'), 'utf8'), /\n#\$ -w e\n/, 'the check is in the script, for a submit by hand too')
  })

  t.test('verifyRequests: false leaves such a job pending, with qsub accepting it', async (t) => {
    const { provider } = await started(t, engine, { pe: engine.pe, coresPerNode: engine.slots + 1, verifyRequests: false })
    const jobId = await provider.submit('true', 'toobig')
    const status = await stateOf(provider, jobId, (state) => state !== 'unknown', 'known')
    t.equal(status.state, 'pending', JSON.stringify(status))
  })

  t.test('a workerInit failure fails the block with the failing line and its stderr', async (t) => {
    const { provider, final } = await started(t, engine, { workerInit: ['echo preparing the node', 'source /nonexistent/tsflow-venv/bin/activate'] })
    const jobId = await provider.submit('echo the command ran', 'init')
    const status = await final(jobId)
    t.equal(status.state, 'failed')
    t.match(status.message, /ended during workerInit with exit code 1/)
    t.match(status.message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/)
    t.equal(status.exitCode, 1)
  })

  t.test('a job Grid Engine cannot start (error state Eqw) is failed with qstat -j\'s reason, and deleted', async (t) => {
    const { provider, final } = await started(t, engine, { workDir: '/nonexistent/tsflow-workdir' })
    const jobId = await provider.submit('echo never', 'eqw')
    const status = await final(jobId)
    t.equal(status.state, 'failed')
    t.match(status.message, /gridengine says Eqw: Grid Engine could not start the job \(error state Eqw\): error: can't chdir to \/nonexistent\/tsflow-workdir: No such file or directory; the job was deleted with qdel/)
    await waitFor(() => !listedJobs().has(jobId), `job ${jobId} to leave qstat`, STATE_TIMEOUT_MS, 200)
    t.pass('the job no longer sits in the queue')
  })

  t.test('a job that left qstat is resolved through qacct: completed with exit 0, failed with its code', async (t) => {
    const { provider, dir, final } = await started(t, engine)
    const ok = await provider.submit('echo fine', 'acct-ok')
    const bad = await provider.submit('echo "broken on purpose" >&2; exit 5', 'acct-bad')
    await waitFor(() => !listedJobs().has(ok) && !listedJobs().has(bad), 'both jobs to leave qstat', STATE_TIMEOUT_MS, 200)
    // Remove the blocks' own exit records: only Grid Engine's accounting can answer now.
    for (const id of ['acct-ok', 'acct-bad']) rmSync(join(dir, 'scripts', `block-${id}.exit`), { force: true })
    const okStatus = await final(ok)
    t.match(okStatus, { state: 'completed', exitCode: 0, message: 'gridengine says finished (qacct: failed 0, exit_status 0): the job ran to its end' })
    const badStatus = await final(bad)
    t.match(badStatus, { state: 'failed', exitCode: 5, message: /qacct: failed 0, exit_status 5\): the job ran to its end and its script failed \(exit code 5\).*broken on purpose/s })
  })

  t.test('a job that left qstat without an accounting record or an exit record is unknown, never completed', async (t) => {
    const { provider, dir } = await started(t, engine, { schedulerOptions: '#$ -h' })
    const jobId = await provider.submit('echo never', 'vanish')
    const [pending] = await provider.status([jobId])
    t.equal(pending?.state, 'pending')
    t.match(pending?.message, /held: it will not start until released \(qrls \d+\)/)
    // Deleted behind the provider's back while pending: Grid Engine keeps no accounting record.
    execFileSync('qdel', [jobId], { stdio: 'ignore' })
    await waitFor(() => !listedJobs().has(jobId), `job ${jobId} to leave qstat`, STATE_TIMEOUT_MS, 200)
    const last = await stateOf(provider, jobId, (state) => state !== 'pending', 'no longer pending')
    t.equal(last.state, 'unknown', JSON.stringify(last))
    t.match(last.message, /no longer lists job .* no record of how it ended/)
    t.match(readFileSync(join(dir, 'scripts', 'block-vanish.sh'), 'utf8'), /\n#\$ -h\n/, 'the hold came from schedulerOptions, after tsflow\'s own directives')
  })

  t.test('while qstat cannot reach qmaster the block is unknown with qstat\'s words, never completed or failed', async (t) => {
    const { provider, dir, final } = await started(t, engine)
    const jobId = await provider.submit('while [ ! -e "$T_DIR/go" ]; do sleep 0.1; done; exit 4', 'outage', { env: { T_DIR: dir } })
    await stateOf(provider, jobId, (state) => state === 'running', 'running')
    // The provider's commands inherit this process's environment: a wrong port is a qmaster
    // that does not answer, as far as qstat can tell.
    const port = process.env.SGE_QMASTER_PORT
    t.teardown(() => {
      if (port === undefined) delete process.env.SGE_QMASTER_PORT
      else process.env.SGE_QMASTER_PORT = port
    })
    process.env.SGE_QMASTER_PORT = '1'
    writeFileSync(join(dir, 'go'), '') // the block ends (exit 4) while nobody can ask
    const last = await stateOf(provider, jobId, (state) => state !== 'running', 'no longer running (the failed query)')
    t.equal(last.state, 'unknown', JSON.stringify(last))
    t.match(last.message, /the scheduler could not be asked: .*`qstat -xml -u \S+` exited with code 1: .*unable to send message to qmaster using port 1/s)
    await waitFor(() => existsSync(join(dir, 'scripts', 'block-outage.exit')), 'the block to end', STATE_TIMEOUT_MS, 200)
    t.equal((await provider.status([jobId]))[0]?.state, 'unknown', 'still unknown after the block ended: a failed query is no evidence')
    if (port === undefined) delete process.env.SGE_QMASTER_PORT
    else process.env.SGE_QMASTER_PORT = port
    t.match(await final(jobId), { state: 'failed', exitCode: 4 }, 'once qmaster answers again, the end is known')
  })

  t.test('walltime becomes h_rt: a block that outlives it is failed with qacct\'s reason', async (t) => {
    const { provider, final } = await started(t, engine, { walltime: '00:00:02' })
    const jobId = await provider.submit('sleep 120', 'rt')
    const status = await final(jobId)
    t.equal(status.state, 'failed')
    t.match(status.message, /failed 37 : qmaster enforced h_rt, h_cpu, or h_vmem limit.*walltime is h_rt/s)
  })

  t.test('coresPerNode, pe, memPerNode and exclusive reach the job as Grid Engine grants them', async (t) => {
    const { provider, dir, final } = await started(t, engine, { pe: engine.pe, coresPerNode: 2, memPerNode: 3, exclusive: true })
    const out = join(dir, 'granted')
    const jobId = await provider.submit(`echo "$NSLOTS $PE $(ulimit -v) $(pwd)" > ${out}`, 'res')
    const status = await final(jobId)
    t.equal(status.state, 'completed', status.message ?? '')
    // h_vmem is per slot: 3 GB per node over 2 slots = 1536 MB each, 3 GB for the job
    t.equal(readFileSync(out, 'utf8'), `2 ${engine.pe} ${3 * 1024 * 1024} ${process.cwd()}\n`)
    const script = readFileSync(join(dir, 'scripts', 'block-res.sh'), 'utf8')
    t.match(script, /#\$ -pe smp 2\n#\$ -l h_vmem=1536M\n#\$ -l exclusive=true/)
  })

  /** A kernel on HTEX over a Grid Engine provider with these options; cleaned up with `t`. */
  async function htexKernel(t: Test, name: string, options: GridEngineProviderOptions) {
    const { dir, remove } = tempDir(`sge-${name}`)
    const executor = new HighThroughputExecutor({
      maxWorkersPerNode: 1,
      // 'none' starts no replacement: one failed block must be enough to explain the failure
      strategy: 'none',
      strategyPeriodMs: 500,
      provider: new GridEngineProvider({ queue: engine.queue, initBlocks: 1, maxBlocks: 1, ...options }),
    })
    let kernel: DataFlowKernel | undefined
    t.teardown(async () => {
      await kernel?.cleanup({ deadlineMs: 10_000 })
      remove()
    })
    kernel = await new DataFlowKernel({ runDir: join(dir, 'runinfo'), executors: [executor] }).start()
    return kernel
  }

  async function taskError(kernel: DataFlowKernel): Promise<unknown> {
    return apps.double.with({ dfk: kernel })(1).then(
      () => undefined,
      (error: unknown) => error,
    )
  }

  t.test('HTEX on Grid Engine: a block rejected by qsub fails the waiting task with qsub\'s message', async (t) => {
    const failure = await htexKernel(t, 'badq', { queue: 'tsflow-no-such-queue' }).then(
      (kernel) => taskError(kernel),
      (error: unknown) => error,
    )
    t.ok(failure instanceof ProviderError, `a ProviderError, not a hang: ${String(failure)}`)
    t.match((failure as Error).message, /unknown queue "tsflow-no-such-queue"/)
  })

  t.test('HTEX on Grid Engine: a block whose workerInit fails fails the waiting task with the failing line', async (t) => {
    const kernel = await htexKernel(t, 'init', { workerInit: ['echo preparing', 'source /nonexistent/tsflow-venv/bin/activate'] })
    const failure = await taskError(kernel)
    t.ok(failure instanceof ProviderError, 'a ProviderError, not a hang')
    t.match((failure as Error).message, /ended during workerInit with exit code 1; the command did not start/)
    t.match((failure as Error).message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/)
  })

  t.test('HTEX on Grid Engine: a block Grid Engine cannot start (Eqw) fails the waiting task with the reason', async (t) => {
    const kernel = await htexKernel(t, 'eqw', { workDir: '/nonexistent/tsflow-workdir' })
    const failure = await taskError(kernel)
    t.ok(failure instanceof ProviderError, 'a ProviderError, not a hang')
    t.match((failure as Error).message, /error state Eqw\): error: can't chdir to \/nonexistent\/tsflow-workdir/)
  })

  t.test('HighThroughputExecutor runs tasks on Grid Engine blocks', async (t) => {
    const { dir, remove } = tempDir('sge-htex')
    const executor = new HighThroughputExecutor({
      maxWorkersPerNode: 2,
      provider: new GridEngineProvider({ queue: engine.queue, pe: engine.pe, coresPerNode: 2, initBlocks: 1, maxBlocks: 1, walltime: '00:10:00' }),
    })
    const submittedAt = performance.now()
    const kernel = await new DataFlowKernel({ runDir: join(dir, 'runinfo'), executors: [executor] }).start()
    t.teardown(async () => {
      await kernel.cleanup({ deadlineMs: 10_000 })
      remove()
    })
    const first = await inGridEngineJob.with({ dfk: kernel })(0)
    const firstMs = performance.now() - submittedAt
    t.comment(`submit to first result on Grid Engine: ${firstMs.toFixed(0)} ms (kernel start, qsub, scheduling, manager start, task)`)
    t.match(first, { host: engine.host, jobId: /^\d+$/, queue: engine.queue }, 'the task ran inside a Grid Engine job')
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => inGridEngineJob.with({ dfk: kernel })(i)))
    t.same(results.map((r) => r.i), Array.from({ length: 50 }, (_, i) => i), 'every task returned its own result')
    t.same([...new Set(results.map((r) => r.jobId))], [first.jobId], 'all in the one block (maxBlocks 1)')
  })
}

