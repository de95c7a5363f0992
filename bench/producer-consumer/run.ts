/**
 * One run of a producer-consumer program (examples/producer-consumer/<variant>.ts, built to
 * out/examples/producer-consumer/<variant>.js) as a child process, and what it printed.
 *
 * The programs print, per phase, `Done in X s` and `IO time: Y s` (or `IO time: NA`), the
 * `Training data size: X GB` line, and last a machine-readable `RESULT {json}` line. The parse
 * prefers RESULT and falls back to the human lines, so a program that printed only the seed's
 * lines still gives a row; anything else is an error quoting the output's tail.
 */
import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { onCleanup } from '../lib/cleanup.js'

/**
 * `filesystem` writes and reads its data on the local disk (here: the page cache); `filesystem-netfs`
 * is the same program (filesystem.js) with `--dir` inside a network file system mounted by the
 * bench (bench/lib/network-fs.ts), as on the seed's cluster, where the data went to shared Lustre.
 */
export const VARIANTS = ['futures', 'filesystem', 'filesystem-netfs', 'ddict'] as const
export type Variant = (typeof VARIANTS)[number]

/** The program (examples/producer-consumer/<name>.ts) a variant runs. */
export function programOf(variant: string): string {
  return variant === 'filesystem-netfs' ? 'filesystem' : variant
}

export interface ProgramResult {
  variant: string
  dataGB: number
  numSims: number | null
  gridSize: number | null
  simSeconds: number
  /** null: NA (futures) */
  simIOSeconds: number | null
  trainSeconds: number
  trainIOSeconds: number | null
  workers: number | null
  nodes: number | null
  executor: string | null
  /** 'RESULT' or 'lines': where the figures came from */
  parsedFrom: 'RESULT' | 'lines'
  /** the RESULT record as printed (empty when parsed from lines) */
  record: Record<string, unknown>
}

const numberOrNull = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : null)
const pick = (record: Record<string, unknown>, ...names: string[]) => {
  for (const name of names) if (record[name] !== undefined) return record[name]
  return undefined
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n') || '(nothing)'
}

/** The figures of one run, from its stdout. */
export function parseProgramOutput(stdout: string, variant: string): ProgramResult {
  const resultLine = stdout.split('\n').reverse().find((line) => line.startsWith('RESULT '))
  if (resultLine) {
    let record: Record<string, unknown>
    try {
      record = JSON.parse(resultLine.slice('RESULT '.length)) as Record<string, unknown>
    } catch (error) {
      throw new Error(`${variant}: its RESULT line is not JSON (${(error as Error).message}): ${resultLine.slice(0, 300)}`)
    }
    const required = (names: string[]) => {
      const value = numberOrNull(pick(record, ...names))
      if (value === null) throw new Error(`${variant}: its RESULT line has no number ${names[0]}: ${resultLine.slice(0, 300)}`)
      return value
    }
    return {
      variant: String(pick(record, 'variant') ?? variant),
      dataGB: required(['dataGB', 'data_gb']),
      numSims: numberOrNull(pick(record, 'numSims', 'num_sims')),
      gridSize: numberOrNull(pick(record, 'gridSize', 'grid_size')),
      simSeconds: required(['simSeconds', 'sim_s']),
      simIOSeconds: numberOrNull(pick(record, 'simIOSeconds', 'simIoSeconds', 'sim_io_s')),
      trainSeconds: required(['trainSeconds', 'train_s']),
      trainIOSeconds: numberOrNull(pick(record, 'trainIOSeconds', 'trainIoSeconds', 'train_io_s')),
      workers: numberOrNull(pick(record, 'workers')),
      nodes: numberOrNull(pick(record, 'nodes')),
      executor: typeof record.executor === 'string' ? record.executor : null,
      parsedFrom: 'RESULT',
      record,
    }
  }
  // The seed's lines: the size, then Done in / IO time for the simulation phase, then training.
  const size = /Training data size:\s*([\d.]+)\s*GB/i.exec(stdout)
  const done = [...stdout.matchAll(/Done in\s+([\d.]+)\s*s/gi)].map((m) => Number(m[1]))
  const io = [...stdout.matchAll(/IO time:\s*(NA|[\d.]+)/gi)].map((m) => (m[1]!.toUpperCase() === 'NA' ? null : Number(m[1])))
  if (!size || done.length < 2) throw new Error(`${variant}: no RESULT line, and not the seed's lines either (Training data size, Done in x2); its output ends with:\n${tail(stdout)}`)
  return {
    variant,
    dataGB: Number(size[1]),
    numSims: null,
    gridSize: null,
    simSeconds: done[0]!,
    simIOSeconds: io[0] ?? null,
    trainSeconds: done[1]!,
    trainIOSeconds: io[1] ?? null,
    workers: null,
    nodes: null,
    executor: null,
    parsedFrom: 'lines',
    record: {},
  }
}

export interface RunOptions {
  program: string
  args: string[]
  env: Record<string, string>
  cwd: string
  timeoutMs: number
  /** stdout and stderr go here as well */
  logFile: string
}

/**
 * Runs the program in a process group of its own (its kernel starts interchanges, managers and
 * Redis servers: on a timeout or the bench's Ctrl-C the whole group is ended), and returns its
 * stdout; a non-zero exit is an error quoting the output's tail and naming the log.
 */
export function runProgram(options: RunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(options.logFile)
    log.write(`$ node ${options.program} ${options.args.join(' ')}\n`)
    const child = spawn(process.execPath, [options.program, ...options.args], { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let ended = false
    /** Signals what is left of the child's group; true when something was. */
    const endGroup = (signal: NodeJS.Signals | 0): boolean => {
      if (ended || !child.pid) return false
      try {
        process.kill(-child.pid, signal)
        return true
      } catch {
        return false // the group is gone
      }
    }
    // On Ctrl-C: stop the group and wait for it (up to 5 s, then SIGKILL), so the cleanups after
    // this one (the network file system's unmount) do not find its files still open.
    onCleanup(async () => {
      if (!endGroup('SIGTERM')) return
      const deadline = Date.now() + 5000
      while (Date.now() < deadline && endGroup(0)) await new Promise((r) => setTimeout(r, 50))
      endGroup('SIGKILL')
    })
    const timer = setTimeout(() => {
      timedOut = true
      endGroup('SIGTERM')
      setTimeout(() => endGroup('SIGKILL'), 10_000).unref()
    }, options.timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      log.write(chunk)
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      log.write(chunk)
    })
    child.once('error', (error) => {
      clearTimeout(timer)
      log.end()
      reject(new Error(`cannot start ${options.program}: ${error.message}`))
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      // The program's own children (a kernel's interchange, managers, servers) must end with it.
      if (endGroup('SIGKILL')) log.write(`bench: processes of the run were left behind after it exited; they were killed\n`)
      ended = true
      log.end()
      if (code === 0) return resolve(stdout)
      const why = timedOut ? `did not finish within ${options.timeoutMs / 1000} s (--timeout)` : `exited with ${code ?? signal}`
      reject(new Error(`${options.program} ${why}; log ${options.logFile}; its output ends with:\n${tail(`${stdout}\n${stderr}`)}`))
    })
  })
}
