/**
 * A workflow on a PBS Pro or OpenPBS cluster. Copy this file next to your workflow and change
 * the lines marked CHANGE.
 *
 *   npx tsx examples/pbs.ts                       run the small workflow below
 *   npx tsflow-perf --config examples/pbs.ts      measure tasks/s on the cluster
 *
 * This process (run it on the login node, where qsub, qstat and qdel work) runs the interchange.
 * Each block is one PBS job that starts one tsflow manager per node; the managers connect back
 * to this host, so tsflow must be installed where the compute nodes see it (a shared
 * filesystem). The script of every block is kept in the run directory
 * (runinfo/NNN/htex/submit_scripts/block-<id>.sh): `qsub` it by hand to see what a block does.
 *
 * What this was tested against: no PBS server runs in tsflow's test setup, so the tests submit
 * this config through a PBS-compatible qsub/qstat/qdel shim on a real Slurm cluster (see
 * docs/providers/pbspro.md, "What is emulated").
 */
import { hostname } from 'node:os'
import { HighThroughputExecutor, PBSProProvider, app, load, main, type Config } from 'tsflow'

/** A fresh config per call (tsflow-perf builds one per run). */
export function config(): Config {
  return {
    executors: [
      new HighThroughputExecutor({
        label: 'pbs',
        // CHANGE: an address (or interface name, e.g. 'ib0') of this host that compute nodes
        // can reach. For any non-loopback address the managers connect with CurveZMQ encryption.
        address: process.env.TSFLOW_INTERCHANGE_ADDRESS ?? '127.0.0.1',
        maxWorkersPerNode: 2,
        provider: new PBSProProvider({
          // CHANGE: your queue and project (`qstat -Q` lists the queues). Unset: the server's defaults.
          ...(process.env.PBS_QUEUE ? { queue: process.env.PBS_QUEUE } : {}),
          ...(process.env.PBS_ACCOUNT ? { account: process.env.PBS_ACCOUNT } : {}),
          nodesPerBlock: 1, // more than 1: the default launcher becomes mpiexec, one manager per node
          coresPerNode: 2, // -l select=1:ncpus=2:mem=4gb
          memPerNode: 4, // GB per node
          walltime: '01:00:00', // -l walltime; managers also learn their block's end time from it
          // place defaults to 'scatter' (one chunk per host); exclusive: true adds ':excl'.
          // select: '1:ncpus=64:ngpus=4' would replace the select built from the three lines above.
          initBlocks: 1,
          minBlocks: 0,
          maxBlocks: 4,
          // CHANGE: what a job needs before a manager can start (PBS jobs start with a login-like
          // environment in $HOME; the block then moves to the directory you submitted from).
          workerInit: ['# module load nodejs/20'],
          // Any other qsub option, as directive lines.
          schedulerOptions: ['#PBS -m n'],
        }),
      }),
    ],
  }
}

// Apps are defined at the top level: workers import this module to find them.
const whereAmI = app(function whereAmI(i: number) {
  return { i, host: hostname(), job: process.env.PBS_JOBID ?? '?' }
})

main(import.meta, async () => {
  const started = performance.now()
  await using kernel = await load(config())
  const first = await whereAmI(0)
  console.log(`first result after ${((performance.now() - started) / 1000).toFixed(1)} s:`, first)
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => whereAmI(i)))
  const perJob = new Map<string, number>()
  for (const { job, host } of all) perJob.set(`${job} on ${host}`, (perJob.get(`${job} on ${host}`) ?? 0) + 1)
  console.log('tasks per block:', Object.fromEntries(perJob), 'run directory:', kernel.runDir)
})
