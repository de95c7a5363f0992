import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CheckpointError } from '../errors.js'
import { decode, encode } from '../serialize/codec.js'
import type { Logger } from '../util/logger.js'
import { listRuns } from './rundir.js'

// The modes are config values, defined with the config (a lower layer than the kernel).
import { CHECKPOINT_MODES, type CheckpointMode } from '../config/config.js'
export { CHECKPOINT_MODES, type CheckpointMode }

const FILE_NAME = 'tasks.jsonl'

/**
 * Writes results of cached tasks to `<runDir>/checkpoint/tasks.jsonl`, one JSON line per task
 * (the value msgpack-encoded, base64). Each line goes out in one write, and a reader skips a
 * torn last line, so a crash never leaves a half-written result that a later run would trust.
 */
export class Checkpointer {
  private readonly path: string
  private fd: number | undefined
  private buffer: string[] = []
  private timer: NodeJS.Timeout | undefined
  private written = 0

  constructor(
    runDir: string,
    readonly mode: CheckpointMode,
    periodMs: number,
    private readonly logger: Logger,
  ) {
    this.path = join(runDir, 'checkpoint', FILE_NAME)
    // Created (empty) at once: the run directory can be handed to a later run's
    // checkpointFiles even if this run checkpoints nothing, and a path that cannot be written
    // fails the start instead of the first checkpoint.
    if (mode !== 'none') this.open()
    if (mode === 'periodic') {
      this.timer = setInterval(() => this.flush(), periodMs)
      this.timer.unref()
    }
  }

  get file(): string {
    return this.path
  }

  get entriesWritten(): number {
    return this.written
  }

  /** A cached task finished: record it now (task_exit) or at the next flush. */
  record(key: string, appName: string, value: unknown): void {
    if (this.mode === 'none') return
    let line: string
    try {
      line = `${JSON.stringify({ k: key, app: appName, t: Date.now(), v: Buffer.from(encode(value)).toString('base64') })}\n`
    } catch (error) {
      this.logger.warn(`result of ${appName} not checkpointed: ${(error as Error).message}`)
      return
    }
    this.buffer.push(line)
    if (this.mode === 'task_exit') this.flush()
  }

  /** Writes buffered entries and syncs them to disk; returns how many were written. */
  flush(): number {
    if (this.buffer.length === 0) return 0
    const lines = this.buffer
    this.buffer = []
    try {
      const fd = this.open()
      writeSync(fd, lines.join(''))
      fsyncSync(fd)
    } catch (error) {
      if (error instanceof CheckpointError) throw error
      throw new CheckpointError(`could not write checkpoint ${this.path}: ${(error as Error).message}`, { cause: error })
    }
    this.written += lines.length
    return lines.length
  }

  private open(): number {
    if (this.fd !== undefined) return this.fd
    try {
      mkdirSync(join(this.path, '..'), { recursive: true })
      return (this.fd = openSync(this.path, 'a'))
    } catch (error) {
      throw new CheckpointError(`could not open checkpoint ${this.path}: ${(error as Error).message}`, { cause: error })
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.mode !== 'none') this.flush()
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }
}

/**
 * Reads checkpoint entries from files or run directories (a run directory means its
 * `checkpoint/tasks.jsonl`). Later entries win. A torn or corrupt line is skipped with a warning.
 */
export function loadCheckpoints(locations: readonly string[], logger: Logger): Map<string, unknown> {
  const entries = new Map<string, unknown>()
  for (const location of locations) {
    const file = checkpointFileOf(location)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      throw new CheckpointError(
        `checkpointFiles entry ${location} could not be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); ` +
          `give a checkpoint file or a run directory such as runinfo/000, or use getAllCheckpoints()`,
        { cause: error },
      )
    }
    const lines = text.split('\n')
    lines.forEach((line, index) => {
      if (!line) return
      try {
        const entry = JSON.parse(line) as { k: string; v: string }
        entries.set(entry.k, decode(Buffer.from(entry.v, 'base64')))
      } catch {
        logger.warn(`skipped unreadable checkpoint line ${index + 1} of ${file} (a write interrupted by a crash?)`)
      }
    })
  }
  return entries
}

function checkpointFileOf(location: string): string {
  const path = resolve(location)
  if (existsSync(path) && statSync(path).isDirectory()) return join(path, 'checkpoint', FILE_NAME)
  return path
}

/** Checkpoint files of every earlier run under `runDir` (default `runinfo`), oldest first. */
export function getAllCheckpoints(runDir = 'runinfo'): string[] {
  const root = resolve(runDir)
  return listRuns(root)
    .map((run) => join(root, run, 'checkpoint', FILE_NAME))
    .filter((file) => existsSync(file))
}

/** The checkpoint file of the latest earlier run that has one, as a one-element list (or empty). */
export function getLastCheckpoint(runDir = 'runinfo'): string[] {
  const all = getAllCheckpoints(runDir)
  return all.length ? [all[all.length - 1]!] : []
}
