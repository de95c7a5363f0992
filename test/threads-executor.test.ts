import t from 'tap'
import { ThreadPoolExecutor } from 'tsflow'
import { kernelConformance } from './helpers/kernel-conformance.js'

kernelConformance(t, (runDir) => ({ runDir, executors: [new ThreadPoolExecutor({ maxThreads: 2 })] }))
