// Shared by the tsflow-perf tests: run the built bin as a real process, make scratch dirs from
// which a config module can import 'tsflow', read the result lines.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const PERF_BIN = join(PROJECT_ROOT, 'dist', 'bin', 'perf.js')

/** A scratch directory removed at the end of `t`; `node_modules/tsflow` points at this checkout. */
export function scratchDir(t: Test, prefix = 'tsflow-perf-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(PROJECT_ROOT, join(dir, 'node_modules', 'tsflow'), 'dir')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Writes a config module using a ThreadPoolExecutor with two threads; returns its path. */
export function writeThreadsConfig(dir: string, name = 'threads.mjs'): string {
  const file = join(dir, name)
  writeFileSync(
    file,
    `import { ThreadPoolExecutor } from 'tsflow'\n` +
      `export default { executors: [new ThreadPoolExecutor({ maxThreads: 2 })], runDir: ${JSON.stringify(join(dir, 'runinfo'))} }\n`,
  )
  return file
}

/** The environment the bin runs in: no loaders from the test runner, no MLflow from the host. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '', ...extra }
  if (!('MLFLOW_TRACKING_URI' in extra)) delete env.MLFLOW_TRACKING_URI
  return env
}

export interface Finished {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface Running {
  child: ChildProcess
  /** output so far */
  readonly stdout: string
  readonly stderr: string
  finished: Promise<Finished>
}

/** Starts `node dist/bin/perf.js args` in `cwd`; killed at the end of `t` if still running. */
export function startPerf(t: Test, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Running {
  const child = spawn(process.execPath, [PERF_BIN, ...args], { cwd: options.cwd, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const timeoutMs = options.timeoutMs ?? 60_000
  const finished = new Promise<Finished>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tsflow-perf ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      // 'close' follows once the pipes are drained; a grandchild holding them must not stall us.
      const done = () => resolve({ code, signal, stdout, stderr })
      child.on('close', done)
      setTimeout(done, 2000).unref()
    })
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    finished,
  }
}

/** Runs the bin to the end. */
export function runPerf(t: Test, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Finished> {
  return startPerf(t, args, options).finished
}

/** The JSON records in DIR/tsflow-perf.jsonl. */
export function readRecords(resultsDir: string): Record<string, any>[] {
  const file = join(resultsDir, 'tsflow-perf.jsonl')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, any>)
}

/** Processes whose command line mentions `needle` (Linux /proc), excluding this one. */
export function processesMentioning(needle: string): number[] {
  if (!existsSync('/proc')) return []
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(Number(entry))
    } catch {
      // gone already
    }
  }
  return found
}

import { waitFor } from '../helpers/wait.js'

export { waitFor }
