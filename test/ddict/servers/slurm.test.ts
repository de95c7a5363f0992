// The provider placement on the real two-node Slurm of test/setup/slurm-up.sh: one job of two
// nodes, the srun launcher runs a shard host on each; the servers answer on the nodes' addresses;
// stop ends the job and leaves no process of the dictionary (the nodes are namespaces of this
// machine, so /proc shows theirs too).
import { execFileSync } from 'node:child_process'
import t from 'tap'
import 'tsflow/ddict'
import { DDictStartError, SlurmProvider } from 'tsflow'
import { redisMissing } from '../../helpers/redis.js'
import { ensureSlurm } from '../../helpers/slurm.js'
import { waitFor } from '../../helpers/wait.js'
import { noneLeft, placementModule, redisClient, uniqueId } from '../../helpers/ddict-servers.js'

const { startShards } = (await import(new URL(placementModule, import.meta.url).href)) as typeof import('../../../dist/ddict/servers/placement.js')

const cluster = redisMissing() ?? ensureSlurm()
if (typeof cluster === 'string') {
  t.test('ddict servers on Slurm', { skip: cluster }, () => {})
} else {
  t.test('one job of two nodes: a shard host per node through srun, servers on the node addresses', async (t) => {
    const id = uniqueId('sl')
    t.teardown(() => noneLeft(id, 30_000))
    const provider = new SlurmProvider({ partition: cluster.partition, nodesPerBlock: 2, walltime: '00:05:00' })
    t.teardown(() => provider.shutdown())
    const group = await startShards({ id, name: 'slurm', provider, managersPerNode: 2, advertiseAddress: cluster.controllerAddress, totalMem: 64 * 1024 * 1024, startTimeoutMs: 120_000 })
    t.teardown(() => group.stop())
    const nodes = cluster.nodes.map((n) => n.name).sort()
    t.same(
      group.shards.map((s) => s.node),
      [nodes[0], nodes[0], nodes[1], nodes[1]],
      'two servers on each node, ordered by node',
    )
    for (const shard of group.shards) {
      t.equal(shard.host, cluster.nodes.find((n) => n.name === shard.node)!.address, `shard ${shard.index} advertised at its node's address`)
      t.equal(shard.maxmemory, Math.floor((64 * 1024 * 1024) / 4 * 0.9))
      const client = await redisClient(t, shard.host, shard.port, group.password)
      await client.set('k', String(shard.index))
      t.equal(await client.get('k'), String(shard.index))
    }
    const [jobId] = (group.describe() as { jobs: string[] }).jobs
    await group.stop()
    await waitFor(() => !/RUNNING|PENDING|COMPLETING/.test(execFileSync('squeue', ['-h', '-j', jobId!, '-t', 'all', '-o', '%T'], { encoding: 'utf8' }).trim()), `job ${jobId} to end`, 30_000, 200)
    await noneLeft(id, 30_000)
    t.pass('job ended, nothing left on the nodes')
  })

  t.test('a job held in the queue past startTimeoutMs: DDictStartError with its state, and the job is cancelled', async (t) => {
    const id = uniqueId('sh')
    t.teardown(() => noneLeft(id, 30_000))
    const provider = new SlurmProvider({ partition: cluster.partition, schedulerOptions: '#SBATCH --hold', walltime: '00:05:00' })
    t.teardown(() => provider.shutdown())
    const error = await startShards({ id, name: 'held', provider, advertiseAddress: cluster.controllerAddress, startTimeoutMs: 3000 }).catch((e: unknown) => e)
    t.type(error, DDictStartError)
    t.match((error as Error).message, /only 0 of 1 shard host\(s\) reported within startTimeoutMs \(3000 ms\)/)
    t.match((error as Error).message, /slurm blocks: block 0 \(job (\d+)\) pending/, 'the block state is named')
    const jobId = /job (\d+)/.exec((error as Error).message)![1]!
    const state = execFileSync('squeue', ['-h', '-j', jobId, '-t', 'all', '-o', '%T'], { encoding: 'utf8' }).trim()
    t.notMatch(state, /PENDING|RUNNING/, `job ${jobId} is no longer queued (${state || 'purged'})`)
  })
}
