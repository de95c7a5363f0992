// One kernel per executor kind for tests that must hold on each of them: the thread executor,
// and HTEX with worker processes and with worker threads.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { DataFlowKernel, HighThroughputExecutor, LocalProvider, ThreadPoolExecutor, type Executor, type ExecutorImportsOptions, type ExecutorProxyOptions } from 'tsflow'

export const EXECUTOR_KINDS = ['threads', 'htex-processes', 'htex-threads'] as const
export type ExecutorKind = (typeof EXECUTOR_KINDS)[number]

export interface KernelOptions {
  /** threads or workers per node (default 2) */
  workers?: number
  /** HTEX prefetchCapacity (default: the executor's) */
  prefetch?: number
  /** the executor option `proxy` (default: off) */
  proxy?: ExecutorProxyOptions
  /** the executor option `proxyImports` (default: off) */
  proxyImports?: ExecutorImportsOptions
}

export function makeExecutor(kind: ExecutorKind, options: KernelOptions = {}): Executor {
  const workers = options.workers ?? 2
  const proxy = { ...(options.proxy ? { proxy: options.proxy } : {}), ...(options.proxyImports ? { proxyImports: options.proxyImports } : {}) }
  if (kind === 'threads') return new ThreadPoolExecutor({ maxThreads: workers, ...proxy })
  return new HighThroughputExecutor({
    ...proxy,
    workerMode: kind === 'htex-threads' ? 'threads' : 'processes',
    maxWorkersPerNode: workers,
    ...(options.prefetch !== undefined ? { prefetchCapacity: options.prefetch } : {}),
    provider: new LocalProvider({ initBlocks: 1, maxBlocks: 1 }),
  })
}

/** A started kernel on a fresh executor of `kind`, cleaned up (with its run directory) when `t` ends. */
export async function startKernel(t: Test, kind: ExecutorKind, options: KernelOptions = {}): Promise<DataFlowKernel> {
  const scratch = mkdtempSync(join(tmpdir(), `tsflow-${kind}-`))
  let kernel: DataFlowKernel | undefined
  t.teardown(async () => {
    await kernel?.cleanup({ deadlineMs: 5000 })
    rmSync(scratch, { recursive: true, force: true })
  })
  kernel = await new DataFlowKernel({ runDir: join(scratch, 'runinfo'), executors: [makeExecutor(kind, options)] }).start()
  return kernel
}
