/**
 * bench/slurm-first-result: load() to the first task's result when the blocks are Slurm jobs, on
 * the two-node test cluster (test/setup/slurm-up.sh; root). Each cold start is a new kernel: the
 * interchange starts, the block is submitted with sbatch, Slurm starts it, srun starts a manager
 * on each node, the managers register over TCP (CURVE) and the first task runs.
 *
 *   node out/bench/slurm-first-result.js [--cold-starts 5] [--nodes 2] [--partition debug] [--address 10.201.0.1]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HighThroughputExecutor, SlurmProvider, app, load, main } from 'tsflow'
import { appendResult, parseFlags, percentile } from './lib/results.js'

export const hostOf = app(function hostOf() {
  return process.pid
})

main(import.meta, async () => {
  const flags = parseFlags(process.argv.slice(2), { 'cold-starts': '5', nodes: '2', partition: 'debug', address: '10.201.0.1' })
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-bench-slurm-'))
  try {
    const times: number[] = []
    for (let i = 0; i < Number(flags['cold-starts']); i++) {
      const started = performance.now()
      const kernel = await load({
        runDir: scratch,
        executors: [
          new HighThroughputExecutor({
            address: flags.address,
            maxWorkersPerNode: 1,
            provider: new SlurmProvider({ partition: flags.partition, nodesPerBlock: Number(flags.nodes), launcher: 'srun' }),
          }),
        ],
      })
      await hostOf()
      times.push(performance.now() - started)
      await kernel.cleanup()
    }
    const sorted = [...times].sort((a, b) => a - b)
    const row = { nodes: Number(flags.nodes), coldStarts: times.length, firstResultMedianMs: Math.round(percentile(sorted, 50)), firstResultMinMs: Math.round(sorted[0]!), firstResultMaxMs: Math.round(sorted.at(-1)!) }
    console.log(`load() to first result on Slurm (${flags.nodes}-node block, srun): median ${row.firstResultMedianMs} ms, min ${row.firstResultMinMs}, max ${row.firstResultMaxMs} over ${times.length} cold starts`)
    console.log(`appended to ${appendResult('slurm-first-result', row)}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
