/** Until bench/funcx.ts lands: node out/bench/funcx/dev-entry.js <experiment> [flags]. */
import { BenchUsage } from '../lib/args.js'
import { runBench } from '../lib/cleanup.js'
import * as faultTolerance from './fault-tolerance.js'
import * as memoization from './memoization.js'
import * as prefetching from './prefetching.js'
import * as scaling from './scaling.js'

const EXPERIMENTS: Record<string, { run(argv: string[]): Promise<number> }> = { scaling, 'fault-tolerance': faultTolerance, prefetching, memoization }

await runBench('funcx', async ([name, ...rest]) => {
  const experiment = EXPERIMENTS[name ?? '']
  if (!experiment) throw new BenchUsage(`experiment ${name}: one of ${Object.keys(EXPERIMENTS).join(', ')}`)
  return experiment.run(rest)
}, BenchUsage)
