import t from 'tap'
import { HighThroughputExecutor, LocalProvider } from 'tsflow'
import { kernelConformance } from './helpers/kernel-conformance.js'

// The same behaviour suite as the thread executor, through interchange, manager and worker
// processes (the default worker mode).
kernelConformance(t, (runDir) => ({
  runDir,
  executors: [
    new HighThroughputExecutor({
      maxWorkersPerNode: 2,
      heartbeatPeriodMs: 500,
      heartbeatThresholdMs: 3000,
      provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
    }),
  ],
}))
