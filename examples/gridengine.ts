/**
 * Running a workflow on a Grid Engine cluster (SGE, Son of Grid Engine, Univa/Altair Grid Engine,
 * Open Grid Scheduler). Copy this file next to your workflow and change the marked settings.
 *
 *   npx tsx examples/gridengine.ts                      run the small workflow below
 *   npx tsflow-perf --config examples/gridengine.ts     measure tasks/s on the cluster
 *
 * The workflow process (this one) runs the interchange; every block is one Grid Engine job
 * running one tsflow manager per node, which connects back to the interchange. Run it on a host
 * the compute nodes can reach (usually the login node), with tsflow installed on a filesystem
 * the nodes share. Each block's script is written to the run directory
 * (runinfo/NNN/htex/submit_scripts/block-<id>.sh): `qsub` it by hand to see exactly what the
 * block does.
 *
 * Tested on Debian's gridengine 8.1.9 brought up by test/setup/sge-up.sh (one host, queue
 * all.q, parallel environment smp); see docs/providers/gridengine.md.
 */
import { hostname } from 'node:os'
import { GridEngineProvider, HighThroughputExecutor, app, load, main, type Config } from 'tsflow'

/** One config per call, as tsflow-perf wants (`export const config` would also do). */
export function config(): Config {
  return {
    executors: [
      new HighThroughputExecutor({
        label: 'sge',
        // CHANGE: an address of this host that the compute nodes reach. Managers then connect
        // over TCP with CurveZMQ encryption on (it is on for any non-loopback address).
        // 127.0.0.1 only works when the jobs run on this very host, as on a one-host test cluster.
        address: process.env.TSFLOW_INTERCHANGE_ADDRESS ?? '127.0.0.1',
        maxWorkersPerNode: 4,
        provider: new GridEngineProvider({
          queue: process.env.SGE_QUEUE ?? 'all.q', // CHANGE: your queue (qconf -sql)
          pe: process.env.SGE_PE ?? 'smp', // CHANGE: a parallel environment with allocation_rule $pe_slots (qconf -spl)
          coresPerNode: 4, // -pe smp 4: the slots one block asks for
          // memPerNode: 48, // GB per node, written as -l h_vmem=<GB*1024/coresPerNode>M per slot. h_vmem caps
          // *virtual* memory and Node.js reserves a lot of it: TypeScript apps (run through tsx, which
          // uses WebAssembly) need more than 8 GB per process; see docs/providers/gridengine.md.
          walltime: '01:00:00', // -l h_rt; managers also learn their block's end from it
          initBlocks: 1,
          minBlocks: 0,
          maxBlocks: 4,
          // CHANGE: what a job needs before the manager can start
          workerInit: ['# module load nodejs/20'],
          // Any other qsub option, as directive lines (a project, a notification address, ...)
          schedulerOptions: ['#$ -j n'],
        }),
      }),
    ],
  }
}

// Apps are defined at the top level: the workers import this module to find them.
const whereAmI = app(function whereAmI(i: number) {
  return { i, host: hostname(), job: process.env.JOB_ID ?? '?', queue: process.env.QUEUE ?? '?' }
})

main(import.meta, async () => {
  const started = performance.now()
  await using kernel = await load(config())
  const first = await whereAmI(0)
  console.log(`first result after ${((performance.now() - started) / 1000).toFixed(1)} s:`, first)
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => whereAmI(i)))
  const perJob = new Map<string, number>()
  for (const result of all) perJob.set(`job ${result.job} on ${result.host}`, (perJob.get(`job ${result.job} on ${result.host}`) ?? 0) + 1)
  console.log('tasks per block:', Object.fromEntries(perJob), 'run directory:', kernel.runDir)
})
