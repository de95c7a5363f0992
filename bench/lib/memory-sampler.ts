import { fork, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { onCleanup } from './cleanup.js'
import type { StoredPlace } from './meminfo.js'

export interface SamplerHandle {
  pid: number
  stop(): Promise<void>
}

/**
 * Starts the memory sampler process (bench/workflow-memory/sampler.js) writing `file` (and the
 * process tree's memory to `treeFile`) every `intervalSeconds`; resolves once its first sample is written. The sampler stops when `stop()`
 * is called, on the bench's cleanup (Ctrl-C included), and by itself if this process dies (its IPC
 * channel closes). `stop()` waits until it has exited.
 */
export async function startMemorySampler(intervalSeconds: number, file: string, treeFile?: string, places: readonly StoredPlace[] = []): Promise<SamplerHandle> {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'workflow-memory', 'sampler.js')
  // Plain node, without the parent's execArgv (a loader or --inspect is not needed there).
  const child: ChildProcess = fork(script, [String(intervalSeconds), file, ...(treeFile ? [treeFile, JSON.stringify(places)] : [])], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  onCleanup(stop)
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`the memory sampler exited with ${code} before its first sample`)))
    child.once('error', reject)
  })
  return { pid: child.pid!, stop }
}
