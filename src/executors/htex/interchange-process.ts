import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ExecutorError } from '../../errors.js'
import { workerExecArgv } from '../../runtime/exec-argv.js'
import { decodeHandshake, interchangeSpec, type InterchangeSpec } from '../../protocol/interchange.js'
import { parentPipeSpawn } from '../../transport/parent-watch.js'

export interface InterchangeSpawnOptions {
  label: string
  /** what the interchange is started with (its log goes to spec.logDir) */
  spec: InterchangeSpec
  startTimeoutMs?: number
}

export interface RunningInterchange {
  child: ChildProcess
  clientPort: number
  workerPort: number
  /** the interchange's Prometheus port, when `spec.metricsPort` was given */
  metricsPort?: number
  /** resolves with a description of how it ended */
  exited: Promise<string>
}

const INTERCHANGE_BIN = fileURLToPath(new URL('../../bin/interchange.js', import.meta.url))

/**
 * Starts the interchange as its own process and waits for its one-line JSON handshake with the
 * ports it bound. A failure to start reports what the process printed, so it explains itself.
 */
export function spawnInterchange(options: InterchangeSpawnOptions): Promise<RunningInterchange> {
  const args = [...workerExecArgv(), INTERCHANGE_BIN, ...interchangeSpec.encode(options.spec)]
  // Its stdin is a pipe we never write to: it reads end-of-file the moment this process ends,
  // however it ends (even SIGKILL), and stops with its managers (transport/parent-watch.ts).
  const parentPipe = parentPipeSpawn()
  const child = spawn(process.execPath, args, { stdio: [parentPipe.stdin, 'pipe', 'pipe'], env: parentPipe.env })
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exited with code ${code}`))
    child.once('error', (error) => resolve(`could not be started: ${error.message}`))
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000)
  })
  return new Promise<RunningInterchange>((resolve, reject) => {
    let stdout = ''
    const fail = (why: string) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(
        new ExecutorError(
          options.label,
          `the interchange ${why}${stderr.trim() ? `; it printed:\n${stderr.trim()}` : ''} (log: ${options.spec.logDir ?? 'none'}/interchange.log)`,
        ),
      )
    }
    const timer = setTimeout(() => fail(`did not report its ports within ${options.startTimeoutMs ?? 15_000} ms`), options.startTimeoutMs ?? 15_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8')
      const newline = stdout.indexOf('\n')
      if (newline < 0) return
      clearTimeout(timer)
      child.stdout!.removeAllListeners('data')
      child.stdout!.resume()
      // An idle interchange must not keep the workflow alive; the executor holds the event loop
      // only while tasks are outstanding (see HighThroughputExecutor).
      unrefChild(child)
      try {
        const ports = decodeHandshake(stdout.slice(0, newline))
        resolve({ child, ...ports, exited })
      } catch {
        fail(`sent an unreadable handshake line ${JSON.stringify(stdout.slice(0, newline).slice(0, 200))}`)
      }
    })
    void exited.then((how) => fail(how))
  })
}

/** Lets the event loop end with the child, its pipes included, still running. */
function unrefChild(child: ChildProcess): void {
  child.unref()
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.()
}
