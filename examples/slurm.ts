/**
 * A tsflow config for a Slurm cluster: the high-throughput executor with its managers started as
 * Slurm batch jobs, one manager per node through srun. Copy it and set the values for your site
 * (partition, account, walltime, workerInit); the environment variables below let it run
 * unchanged on tsflow's own two-node test cluster (test/setup/slurm-up.sh).
 *
 *   measure it:      npx tsflow-perf --config examples/slurm.ts --time 5
 *   in a workflow:   import config from './slurm.js'; const kernel = await load(config)
 *
 * Run it on the cluster's login node (or any host the compute nodes can reach): the managers
 * connect back to the interchange at `address`, so it must be an address of this host that
 * the compute nodes can reach (on the test cluster: the bridge address, 10.201.0.1).
 */
import { HighThroughputExecutor, SlurmProvider, type Config } from 'tsflow'

const env = process.env

export const config: Config = {
  executors: [
    new HighThroughputExecutor({
      label: 'slurm',
      // Not loopback: managers on other nodes connect here, and traffic is encrypted (CURVE).
      address: env.TSFLOW_SLURM_ADDRESS ?? '10.201.0.1',
      // One worker per core of a node by default; uncomment to pin it.
      // maxWorkersPerNode: 16,
      provider: new SlurmProvider({
        partition: env.TSFLOW_SLURM_PARTITION ?? 'debug',
        // account: 'myproject',
        // qos: 'normal',
        // constraint: 'haswell',
        nodesPerBlock: Number(env.TSFLOW_SLURM_NODES ?? 2),
        // coresPerNode: 32,
        // memPerNode: 64, // GB
        walltime: env.TSFLOW_SLURM_WALLTIME ?? '00:30:00',
        // exclusive: true,
        // Shell lines run in the job before the managers start: load the site's Node.js here.
        // workerInit: ['module load nodejs/20', 'cd /path/to/my/workflow'],
        // schedulerOptions: ['#SBATCH --gres=gpu:1'],
        launcher: 'srun',
        initBlocks: 1,
        minBlocks: 0,
        maxBlocks: 1,
      }),
    }),
  ],
}

export default config
