import t from 'tap'
import { HighThroughputExecutor, LocalProvider } from 'tsflow'
import { kernelConformance } from './helpers/kernel-conformance.js'

// The kernel's behaviour suite once more, with the manager's workers as threads.
kernelConformance(t, (runDir) => ({
  runDir,
  executors: [
    new HighThroughputExecutor({
      workerMode: 'threads',
      maxWorkersPerNode: 2,
      heartbeatPeriodMs: 500,
      heartbeatThresholdMs: 3000,
      provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
    }),
  ],
}))
