// PBSProProvider end to end through the PBS shim (test/fixtures/pbs-shim: qsub/qstat/qdel that
// translate to the REAL Slurm on this machine; no PBS server can be installed here). The provider
// runs the commands from PATH exactly as it would on a PBS login node. The parser on recorded
// real PBS outputs is tested in pbspro-parse.test.ts.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'

import { ConfigError, DataFlowKernel, HighThroughputExecutor, PBSProProvider, ProviderError } from 'tsflow'
import type { BlockStatus, ExecutionProvider } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { providers } from '../../dist/providers/index.js'
import * as apps from '../fixtures/apps.js'
import { whereAmI } from '../fixtures/hosts.js'
import { providerConformance } from './conformance.js'
import { tempDir, waitFor } from './helpers.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { useShim } from './pbs-shim.js'

// Options every block of these tests gets: one CPU (the Slurm nodes advertise a few) and a
// walltime, so a test that fails half way leaves no job running for long.
const SMALL = { coresPerNode: 1, walltime: '00:10:00' }

t.test('options: validation, the select/place rules and the default launcher (no scheduler needed)', async (t) => {
  const check = (options: Record<string, unknown>): PBSProProvider => {
    const provider = new PBSProProvider(options)
    provider.validate('executors[0].provider')
    return provider
  }
  t.equal(check({}).launcher.type, 'single_node', 'one node: no MPI needed')
  t.equal(check({ nodesPerBlock: 2 }).launcher.type, 'mpiexec', 'several nodes: mpiexec starts a manager on each')
  t.equal(check({ nodesPerBlock: 2, launcher: 'single_node' }).launcher.type, 'single_node', 'the user choice wins')
  t.match(check({ queue: 'workq', account: 'p7', select: '2:ncpus=8', nodesPerBlock: 2 }).describe(), {
    type: 'pbspro',
    queue: 'workq',
    account: 'p7',
    select: '2:ncpus=8',
    nodesPerBlock: 2,
  })
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ queue: 'work q' }, 'queue', /one word without spaces/],
    [{ account: '' }, 'account', /non-empty string/],
    [{ select: '2:ncpus=8' }, 'select', /asks for 2 chunk\(s\), but nodesPerBlock is 1; .* set nodesPerBlock: 2/],
    [{ select: '1:ncpus=8', coresPerNode: 4 }, 'coresPerNode', /cannot be combined with select/],
    [{ select: '1:ncpus=8', memPerNode: 4 }, 'memPerNode', /cannot be combined with select/],
    [{ plac: 'pack' }, 'plac', /did you mean 'place'/],
    [{ type: 'slurm' }, 'type', /must be one of/],
  ]
  for (const [options, key, message] of cases) {
    const error = t.throws(() => check(options), ConfigError, JSON.stringify(options)) as ConfigError
    t.equal(error.path, `executors[0].provider.${key}`)
    t.match(error.message, message)
  }
  t.doesNotThrow(() => check({ select: '4:ncpus=8', place: 'pack' }), 'with pack placement chunks need not be nodes')
  t.equal(providers.option({ type: 'pbs', queue: 'q1' }, 'p').label, 'pbspro', "the alias 'pbs' builds a PBSProProvider")
})

t.test('the written script: #PBS directives first, then the block (no scheduler needed)', async (t) => {
  const { dir, remove } = tempDir('pbs-script')
  t.teardown(remove)
  // qsub that only reports what it was given: enough to look at the script the provider wrote.
  const provider = new PBSProProvider({
    nodesPerBlock: 2,
    coresPerNode: 4,
    memPerNode: 8,
    walltime: '1-00:30:00',
    exclusive: true,
    queue: 'workq',
    account: 'proj7',
    schedulerOptions: ['#PBS -l software=tsflow', '#PBS -m n'],
    workerInit: 'module load node',
  })
  provider.validate('p')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  t.teardown(() => provider.shutdown())
  // Queue workq does not exist here (and without Slurm there is no qsub): submit fails either way,
  // after writing the script.
  await t.rejects(provider.submit('echo hi', 'b1'), ProviderError)
  const script = readFileSync(join(dir, 'scripts', 'block-b1.sh'), 'utf8')
  const lines = script.split('\n')
  t.equal(lines[0], '#!/bin/bash')
  t.same(lines.slice(1, 11), [
    '#PBS -N tsf.b1',
    `#PBS -o ${join(dir, 'scripts', 'block-b1.out')}`,
    `#PBS -e ${join(dir, 'scripts', 'block-b1.err')}`,
    '#PBS -l select=2:ncpus=4:mem=8gb',
    '#PBS -l walltime=24:30:00',
    '#PBS -l place=scatter:excl',
    '#PBS -q workq',
    '#PBS -A proj7',
    '#PBS -l software=tsflow',
    '#PBS -m n',
  ])
  t.match(script, /cd "\$PBS_O_WORKDIR"/)
  t.match(script, /module load node/)
  t.match(script, /mpiexec -n 2 -ppn 1 bash -c '.*echo hi/s, 'two nodes: one copy per node through mpiexec')
  t.ok(script.indexOf('export TSFLOW_BLOCK_ID=') > script.indexOf('#PBS -m n'), 'no command before the last directive (PBS stops reading them there)')
})

const slurm = ensureSlurm()
if (typeof slurm === 'string') {
  t.test('PBSProProvider through the PBS shim over Slurm', { skip: `skipped: ${slurm}` }, () => {})
} else {
  const cluster = slurm
  /** a host name of the cluster, as a regular expression source */
  const HOST = `(?:${cluster.nodes.map((node) => node.name).join('|')})`
  const shim = useShim()
  t.teardown(shim.restore)

  providerConformance(t, {
    name: 'pbspro (PBS shim over Slurm)',
    create: (options) => new PBSProProvider({ ...SMALL, ...options }),
    pendingOptions: { schedulerOptions: '#PBS -h' },
    stateTimeoutMs: 60_000,
  })

  /** A provider that is shut down when the test ends, and where it writes its scripts. */
  async function started(t: Test, options: Record<string, unknown> = {}): Promise<{ provider: ExecutionProvider; dir: string }> {
    const { dir, remove } = tempDir('pbspro')
    const provider = new PBSProProvider({ ...SMALL, maxBlocks: 4, ...options })
    t.teardown(async () => {
      await provider.shutdown()
      remove()
    })
    provider.validate('executors[0].provider')
    await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
    return { provider, dir }
  }

  async function finalStatus(provider: ExecutionProvider, jobId: string): Promise<BlockStatus> {
    let last: BlockStatus | undefined
    await waitFor(async () => ['completed', 'failed', 'cancelled'].includes((last = (await provider.status([jobId]))[0]!).state), `job ${jobId} to end (last: ${JSON.stringify(last)})`, 60_000, 200)
    return last!
  }

  t.test('a failing block: failed with its exit code, the PBS comment and its stderr tail', async (t) => {
    const { provider } = await started(t)
    const jobId = await provider.submit('echo "tsflow-test: no frobnicator on $(hostname)" >&2; exit 3', 'bad')
    t.match(jobId, /^[0-9]+\.pbsshim$/, 'the id qsub printed')
    const status = await finalStatus(provider, jobId)
    t.equal(status.state, 'failed')
    t.equal(status.exitCode, 3)
    t.match(status.message, new RegExp(`pbspro says F: job \\S+ exited with code 3; PBS comment: Job run at .* on \\(${HOST}:ncpus=1\\) and finished`))
    t.match(status.message, new RegExp(`no frobnicator on ${HOST}`), 'the stderr tail, written on the execution host')
  })

  t.test('a block whose workerInit fails names the failing line', async (t) => {
    const { provider } = await started(t, { workerInit: ['echo preparing', 'source /nonexistent/tsflow-venv/bin/activate'] })
    const status = await finalStatus(provider, await provider.submit('echo never', 'init'))
    t.equal(status.state, 'failed')
    t.match(status.message, /ended during workerInit with exit code 1/)
    t.match(status.message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/)
  })

  t.test('a block killed at its walltime is failed with the walltime reason (Exit_status -29)', async (t) => {
    // Slurm counts time limits in minutes, so this block runs about a minute before it is killed.
    const { provider } = await started(t, { walltime: '00:01:00' })
    const jobId = await provider.submit('sleep 600', 'long')
    let last: BlockStatus | undefined
    await waitFor(async () => ['completed', 'failed', 'cancelled'].includes((last = (await provider.status([jobId]))[0]!).state), `job ${jobId} to be killed at its walltime (last: ${JSON.stringify(last)})`, 240_000, 1000)
    t.equal(last!.state, 'failed')
    t.equal(last!.exitCode, -29)
    t.match(last!.message, /reached its walltime limit \(JOB_EXEC_KILL_WALLTIME\) \(Exit_status -29\)/)
  })

  t.test('one qstat per poll for every live block; a hung qstat is cut at cmdTimeoutMs and the blocks are unknown', async (t) => {
    const { provider, dir } = await started(t, { schedulerOptions: '#PBS -h', cmdTimeoutMs: 2000 })
    const jobs = [await provider.submit('true', 'h1'), await provider.submit('true', 'h2'), await provider.submit('true', 'h3')]
    const log = join(dir, 'shim.log')
    process.env.PBS_SHIM_LOG = log
    t.teardown(() => {
      delete process.env.PBS_SHIM_LOG
      delete process.env.PBS_SHIM_HANG
    })
    const statuses = await provider.status(jobs)
    t.same(statuses.map((status) => status.state), ['pending', 'pending', 'pending'])
    t.same(readFileSync(log, 'utf8').trim().split('\n'), [`qstat -f -F json -x ${jobs.join(' ')}`], 'one batched query')

    process.env.PBS_SHIM_HANG = 'qstat'
    let last: BlockStatus | undefined
    await waitFor(async () => (last = (await provider.status([jobs[0]!]))[0]!).state === 'unknown', 'the hung query to make the block unknown', 30_000, 200)
    t.match(last!.message, /the scheduler could not be asked: .*`qstat -f -F json -x .*` did not finish within cmdTimeoutMs \(2000 ms\)/)
    delete process.env.PBS_SHIM_HANG
    await waitFor(async () => (await provider.status([jobs[0]!]))[0]!.state === 'pending', 'the block to be pending again once qstat answers', 30_000, 200)
  })

  t.test('the script in the run directory can be submitted by hand with qsub and does the same', async (t) => {
    const { provider, dir } = await started(t)
    const jobId = await provider.submit('echo "ran as $PBS_JOBID in $PWD" >> "$T_DIR/hand.log"', 'hand', { env: { T_DIR: dir } })
    t.equal((await finalStatus(provider, jobId)).state, 'completed')
    const { execFileSync } = await import('node:child_process')
    const script = join(dir, 'scripts', 'block-hand.sh')
    const byHand = execFileSync('qsub', [script], { encoding: 'utf8', cwd: process.cwd() }).trim()
    t.match(byHand, /^[0-9]+\.pbsshim$/)
    await waitFor(() => readFileSync(join(dir, 'hand.log'), 'utf8').trim().split('\n').length === 2, 'the hand-submitted job to run', 60_000, 200)
    t.same(readFileSync(join(dir, 'hand.log'), 'utf8').trim().split('\n'), [
      `ran as ${jobId} in ${process.cwd()}`,
      `ran as ${byHand} in ${process.cwd()}`,
    ], 'same command, same environment, same directory')
  })

  t.test('a held block is pending with the scheduler comment as the reason', async (t) => {
    const { provider } = await started(t, { schedulerOptions: '#PBS -h' })
    const jobId = await provider.submit('true', 'held')
    let last: BlockStatus | undefined
    await waitFor(async () => /Job held by/.test((last = (await provider.status([jobId]))[0]!).message ?? ''), `job ${jobId} to be held (last: ${JSON.stringify(last)})`, 30_000, 200)
    t.equal(last!.state, 'pending')
    t.match(last!.message, /pbspro says H: job \S+ is held \(H\); PBS comment: Job held by /)
  })

  t.test('qsub refusing a block (unknown queue) is a ProviderError with its message', async (t) => {
    const { provider, dir } = await started(t, { queue: 'nosuchqueue' })
    const error = await provider.submit('true', 'q').then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError)
    t.match((error as Error).message, /block q was not submitted: `qsub \S+block-q.sh` exited with code 170: qsub: Unknown queue/)
    t.ok(existsSync(join(dir, 'scripts', 'block-q.sh')), 'the script stays for the user to look at')
  })

  t.test('a job the PBS server no longer knows: unknown without evidence, else what its exit record says', async (t) => {
    const { execFileSync } = await import('node:child_process')
    /** The PBS server loses a job: the shim's record of it is removed. */
    const forget = (jobId: string): void => rmSync(join(shim.stateDir, 'jobs', `${jobId.split('.')[0]}.json`))

    // Held, so it never runs and leaves no exit record.
    const held = await started(t, { schedulerOptions: '#PBS -h' })
    const lost = await held.provider.submit('true', 'lost')
    t.teardown(() => {
      try {
        execFileSync('scancel', [lost.split('.')[0]!])
      } catch {
        // already gone
      }
    })
    forget(lost)
    let last: BlockStatus | undefined
    await waitFor(async () => (last = (await held.provider.status([lost]))[0]!).state !== 'pending', 'the lost job to leave pending', 30_000, 200)
    t.equal(last!.state, 'unknown', 'never completed or failed without evidence')
    t.match(last!.message, /no longer lists job .* no exit record/)

    // Ran and ended: the exit records the scripts wrote decide, once the server has forgotten them.
    const { provider, dir } = await started(t)
    const ok = await provider.submit('echo fine', 'ok')
    const bad = await provider.submit('echo "tsflow-test: broken" >&2; exit 5', 'five')
    await waitFor(() => existsSync(join(dir, 'scripts', 'block-ok.exit')) && existsSync(join(dir, 'scripts', 'block-five.exit')), 'both exit records', 60_000, 200)
    forget(ok)
    forget(bad)
    const [okStatus, badStatus] = await provider.status([ok, bad])
    t.match(okStatus, { state: 'completed', exitCode: 0, message: /no longer lists job .* recorded exit code 0/ })
    t.match(badStatus, { state: 'failed', exitCode: 5, message: /recorded exit code 5.*tsflow-test: broken/s })
  })

  t.test('an HTEX executor with PBSProProvider runs tasks end to end on the Slurm hosts', async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pbspro-htex-'))
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
    const executor = new HighThroughputExecutor({
      // the managers run in the cluster's network namespaces and connect back over the bridge
      address: cluster.controllerAddress,
      maxWorkersPerNode: 2,
      heartbeatPeriodMs: 1000,
      heartbeatThresholdMs: 10_000,
      provider: new PBSProProvider({ ...SMALL, coresPerNode: 2, initBlocks: 1, maxBlocks: 1 }),
    })
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }))
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => apps.double.with({ dfk: kernel })(i)))
    t.same(results, Array.from({ length: 20 }, (_, i) => 2 * i))
    const places = await Promise.all(Array.from({ length: 10 }, (_, i) => whereAmI.with({ dfk: kernel })(i)))
    const hosts = new Set(places.map((place) => place.host))
    t.equal(hosts.size, 1, 'one block of one node')
    t.match([...hosts][0], new RegExp(`^${HOST}$`), 'the tasks ran on a Slurm host, started through qsub')
  })
  t.test('a two-node block with the mpiexec launcher runs a manager on each Slurm host', async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pbspro-2n-'))
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      maxWorkersPerNode: 1,
      heartbeatPeriodMs: 1000,
      heartbeatThresholdMs: 10_000,
      provider: new PBSProProvider({
        ...SMALL,
        nodesPerBlock: 2,
        // Debian's MPI is Open MPI; as root it must be told that root is fine
        launcher: { type: 'mpiexec', flavor: 'openmpi' },
        workerInit: 'export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1',
      }),
    })
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }))
    await waitFor(() => executor.managers().length === 2, 'managers on both hosts to register', 60_000, 100)
    t.same(executor.managers().map((m) => m.host).sort(), cluster.nodes.map((n) => n.name).sort(), 'one manager per host of the block')
    const places = await Promise.all(Array.from({ length: 40 }, (_, i) => whereAmI.with({ dfk: kernel })(i)))
    const seen = new Set(places.map((p) => `${p.host} ${p.address}`))
    for (const node of cluster.nodes) t.ok(seen.has(`${node.name} ${node.address}`), `tasks ran on ${node.name} (${node.address})`)
  })
  t.test('HTEX: a block failing in workerInit fails the waiting tasks with the PBS comment and its stderr', async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pbspro-fail-'))
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      maxWorkersPerNode: 1,
      strategy: 'none',
      strategyPeriodMs: 200,
      provider: new PBSProProvider({ ...SMALL, workerInit: ['echo preparing', 'source /nonexistent/tsflow-venv/bin/activate'] }),
    })
    const kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }))
    const error = await apps.double.with({ dfk: kernel })(1).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(error instanceof ProviderError, 'a ProviderError, not a hang')
    t.match((error as Error).message, /block \S+ failed before any manager connected/)
    t.match((error as Error).message, /pbspro says F: job \S+ exited with code 1; PBS comment: Job run at .* and finished/, "the scheduler's own account")
    t.match((error as Error).message, /nonexistent\/tsflow-venv\/bin\/activate: No such file or directory/, "bash's complaint, from the block's stderr")
  })

  t.test('HTEX: a block qsub refuses (unknown queue) stops the start with the qsub message', async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pbspro-queue-'))
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
    const executor = new HighThroughputExecutor({
      address: cluster.controllerAddress,
      provider: new PBSProProvider({ ...SMALL, queue: 'nosuchqueue' }),
    })
    const kernel = new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [executor] })
    t.teardown(() => kernel.cleanup({ deadlineMs: 10_000 }).catch(() => {}))
    await t.rejects(kernel.start(), /qsub: Unknown queue/)
  })
  t.test('examples/pbs.ts runs as a user runs it, through the shim', async (t) => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const cwd = mkdtempSync(join(tmpdir(), 'tsflow-pbs-example-'))
    t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
    const example = fileURLToPath(new URL('../../out/examples/pbs.js', import.meta.url))
    const env = { ...process.env, NODE_OPTIONS: '', TSFLOW_INTERCHANGE_ADDRESS: cluster.controllerAddress }
    const { stdout } = await promisify(execFile)(process.execPath, [example], { cwd, env, timeout: 120_000 })
    t.match(stdout, new RegExp(`first result after [\\d.]+ s: \\{ i: 0, host: '${HOST}', job: '\\d+\\.pbsshim' \\}`))
    t.match(stdout, new RegExp(`tasks per block: \\{ '\\d+\\.pbsshim on ${HOST}': 100 \\}`))
    t.ok(existsSync(join(cwd, 'runinfo')), 'the run directory is where the user ran it')
  })
}
