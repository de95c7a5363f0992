// SlurmProvider against the real two-node Slurm of test/setup/slurm-up.sh (slurmctld here, one
// slurmd per network-namespace host): the conformance suite, then what only a real Slurm shows.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'

import { ProviderError, SlurmProvider } from 'tsflow'
import type { BlockStatus } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { ensureSlurm, type SlurmCluster } from '../helpers/slurm.js'
import { providerConformance } from './conformance.js'
import { tempDir, waitFor } from './helpers.js'

const FINAL = ['completed', 'failed', 'cancelled']
const cluster = ensureSlurm()

if (typeof cluster === 'string') {
  t.test('SlurmProvider on a real Slurm', { skip: cluster }, () => {})
} else {
  run(cluster)
}

/** squeue's or scontrol's view of one job, for checks that read Slurm directly. */
function scontrolJob(jobId: string): string {
  return execFileSync('scontrol', ['-o', 'show', 'job', jobId], { encoding: 'utf8' })
}

async function started(t: Test, cluster: SlurmCluster, options: Record<string, unknown> = {}, wrap?: (p: SlurmProvider) => SlurmProvider) {
  const { dir, remove } = tempDir('slurm')
  let provider = new SlurmProvider({ partition: cluster.partition, maxBlocks: 4, ...options })
  if (wrap) provider = wrap(provider)
  t.teardown(async () => {
    await provider.shutdown()
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  const statusOf = async (jobId: string): Promise<BlockStatus> => (await provider.status([jobId]))[0]!
  const until = async (jobId: string, accept: (s: BlockStatus) => boolean, what: string): Promise<BlockStatus> => {
    let last: BlockStatus | undefined
    await waitFor(async () => accept((last = await statusOf(jobId))), `job ${jobId} to be ${what} (last ${JSON.stringify(last)})`, 60_000)
    return last!
  }
  return { provider, dir, statusOf, until }
}

function run(cluster: SlurmCluster): void {
  providerConformance(t, {
    name: `SlurmProvider (partition ${cluster.partition})`,
    create: (options) => new SlurmProvider({ partition: cluster.partition, ...options }),
    pendingOptions: { schedulerOptions: '#SBATCH --hold' },
    stateTimeoutMs: 60_000,
  })

  t.test('a bad partition fails at submit with sbatch’s own message', async (t) => {
    const { provider } = await started(t, cluster, { partition: 'nosuchpartition' })
    const error = await provider.submit('true', 'badpart').then(
      () => undefined,
      (e: unknown) => e,
    )
    t.type(error, ProviderError)
    t.match((error as Error).message, /invalid partition specified: nosuchpartition/, 'sbatch’s stderr is in the message')
    t.match((error as Error).message, /sbatch --parsable/, 'the command line is named')
  })

  t.test('a block whose workerInit fails is failed with the failing line and its stderr', async (t) => {
    const { provider, until } = await started(t, cluster, { workerInit: ['echo preparing', 'source /nonexistent/tsflow-venv/bin/activate'] })
    const jobId = await provider.submit('echo "the command ran"', 'init')
    const status = await until(jobId, (s) => FINAL.includes(s.state), 'final')
    t.equal(status.state, 'failed')
    t.match(status.message, /ended during workerInit/, 'the message says workerInit failed')
    t.match(status.message, /nonexistent\/tsflow-venv/, 'it carries the stderr tail with the missing file')
    t.match(status.message, /slurm says FAILED/, 'and Slurm’s own state')
  })

  t.test('options become #SBATCH lines that Slurm applies; a held block is pending with the reason', async (t) => {
    const { provider, dir, until } = await started(t, cluster, {
      coresPerNode: 2,
      memPerNode: 1.5,
      walltime: '00:10:00',
      exclusive: true,
      account: 'tsflowacct',
      qos: 'normal',
      schedulerOptions: ['#SBATCH --hold', '#SBATCH --comment=tsflow-test'],
    })
    const jobId = await provider.submit('true', 'opts')
    const script = readFileSync(join(dir, 'scripts', 'block-opts.sh'), 'utf8')
    for (const line of [
      '#SBATCH --job-name=tsflow.opts',
      '#SBATCH --nodes=1',
      '#SBATCH --ntasks-per-node=1',
      '#SBATCH --cpus-per-task=2',
      '#SBATCH --mem=1536M',
      '#SBATCH --time=00:10:00',
      '#SBATCH --exclusive',
      `#SBATCH --partition=${cluster.partition}`,
      '#SBATCH --account=tsflowacct',
      '#SBATCH --qos=normal',
      '#SBATCH --hold',
    ]) {
      t.ok(script.split('\n').includes(line), `script has ${line}`)
    }
    t.ok(script.indexOf('#SBATCH --qos=normal') < script.indexOf('#SBATCH --hold'), 'schedulerOptions come after tsflow’s own directives')
    const status = await until(jobId, (s) => s.state !== 'unknown', 'known')
    t.equal(status.state, 'pending')
    t.match(status.message, /JobHeldUser/, 'the message has Slurm’s reason')
    t.match(status.message, /scontrol release/, 'and what to do about it')
    const shown = scontrolJob(jobId.split(';')[0]!)
    t.match(shown, /TimeLimit=00:10:00/, 'Slurm applied the walltime')
    t.match(shown, /MinMemoryNode=(1536M|1.50G)/, 'the memory')
    t.match(shown, /CPUs\/Task=2/, 'the cores')
    t.match(shown, /Account=tsflowacct/, 'the account')
    t.match(shown, /OverSubscribe=NO/, 'exclusive')
    t.match(shown, /Comment=tsflow-test/, 'and the verbatim schedulerOptions')
  })

  t.test('a block Slurm can never start fails at once with the reason, and its job is cancelled', async (t) => {
    const nodes = cluster.nodes.length + 1
    const { provider, until } = await started(t, cluster, { nodesPerBlock: nodes })
    const jobId = await provider.submit('true', 'toobig')
    const status = await until(jobId, (s) => FINAL.includes(s.state), 'final')
    t.equal(status.state, 'failed')
    t.match(status.message, /PartitionConfig|PartitionNodeLimit/, 'Slurm’s reason')
    t.match(status.message, /never start/, 'said in words')
    t.match(status.message, /tsflow cancelled it/)
    await waitFor(() => /JobState=CANCELLED/.test(scontrolJob(jobId)), 'the job to be cancelled in Slurm', 30_000)
  })

  t.test('a job Slurm does not know is unknown, never completed, alone or in a batch', async (t) => {
    // The job is submitted for real (its script, its sbatch), then replaced by an id Slurm never
    // gave out: what the provider sees when Slurm has forgotten a job (after MinJobAge) and the
    // block left no exit record. squeue exits 1 for one unknown id and leaves it out of a batch.
    const real: string[] = []
    // Held, so the real job never runs and leaves no exit record.
    const { provider, statusOf } = await started(t, cluster, { schedulerOptions: '#SBATCH --hold' }, (p) => {
      const submitJob = (p as unknown as { submitJob(b: unknown): Promise<string> }).submitJob.bind(p)
      Object.assign(p, {
        async submitJob(block: unknown) {
          const id = await submitJob(block)
          real.push(id)
          execFileSync('scancel', [id])
          return String(Number(id) + 50_000_000)
        },
      })
      return p
    })
    t.teardown(() => {
      if (real.length > 0) execFileSync('scancel', real)
    })
    const ghost = await provider.submit('sleep 300', 'ghost')
    const alone = await statusOf(ghost)
    t.equal(alone.state, 'unknown', alone.message ?? '')
    t.match(alone.message, /no longer lists/)
    t.match(alone.message, /no exit record/)

    const { provider: other, until } = await started(t, cluster)
    const live = await other.submit('sleep 300', 'live')
    await until(live, (s) => s.state === 'running', 'running')
    const ghost2 = await provider.submit('sleep 300', 'ghost2')
    const [a, b] = await provider.status([ghost, ghost2])
    t.same([a!.state, b!.state], ['unknown', 'unknown'], 'several unknown ids at once')
    t.equal((await other.status([live]))[0]!.state, 'running', 'a real job next to them is still seen')
  })

  t.test('a controller that does not answer: squeue is bounded by cmdTimeoutMs and the block is unknown, then known again', async (t) => {
    const { provider, dir, statusOf, until } = await started(t, cluster, { cmdTimeoutMs: 3000, schedulerOptions: '#SBATCH --hold' })
    const jobId = await provider.submit('true', 'deaf')
    await until(jobId, (s) => s.state === 'pending', 'pending')
    // The real client pointed at a port where no slurmctld listens: it retries for ~18 s.
    const { writeFileSync } = await import('node:fs')
    const conf = join(dir, 'slurm-deaf.conf')
    writeFileSync(conf, readFileSync('/etc/slurm/slurm.conf', 'utf8').replace(/^SlurmctldPort=\d+$/m, 'SlurmctldPort=6899'))
    const saved = process.env.SLURM_CONF
    process.env.SLURM_CONF = conf
    const restore = () => {
      if (saved === undefined) delete process.env.SLURM_CONF
      else process.env.SLURM_CONF = saved
    }
    t.teardown(restore)
    const deaf = await until(jobId, (s) => s.state !== 'pending', 'no longer pending')
    restore()
    t.equal(deaf.state, 'unknown', 'a failed query is unknown, not completed or failed')
    t.match(deaf.message, /squeue .* did not finish within cmdTimeoutMs \(3000 ms\)/)
    const back = await until(jobId, (s) => s.state !== 'unknown', 'known again')
    t.equal(back.state, 'pending', 'unknown is not final: the next poll sees the job again')
    t.equal((await statusOf(jobId)).state, 'pending')
  })

  t.test('the block script is in the run directory and can be submitted by hand with sbatch', async (t) => {
    const { provider, dir, until } = await started(t, cluster)
    const out = join(dir, 'by-hand')
    const jobId = await provider.submit(`echo "ran as $TSFLOW_BLOCK_ID on $(hostname)" >> ${out}`, 'hand')
    const status = await until(jobId, (s) => FINAL.includes(s.state), 'final')
    t.equal(status.state, 'completed', status.message ?? '')
    const script = join(dir, 'scripts', 'block-hand.sh')
    t.ok(existsSync(script))
    t.match(readFileSync(script, 'utf8'), new RegExp(`To submit it by hand: sbatch ${script}`))
    rmSync(out, { force: true })
    const byHand = execFileSync('sbatch', ['--parsable', script], { encoding: 'utf8' }).trim()
    t.teardown(() => execFileSync('scancel', [byHand]))
    await waitFor(() => /JobState=COMPLETED/.test(scontrolJob(byHand)), `job ${byHand} (submitted by hand) to complete`, 60_000)
    t.match(readFileSync(out, 'utf8'), /^ran as hand on tsfslurm\d\n$/, 'the hand-submitted script ran the block’s command with its environment')
  })
}
