/**
 * What tsflow-perf prints. On a terminal each iteration is one line updated in place (carriage
 * return + erase line) while it runs, then replaced by its summary; otherwise (a pipe, a file,
 * CI) only plain summary lines are written, with no control characters.
 */
import type { ProgressState, RunHooks } from './run.js'
import type { IterationResult } from './results.js'

export interface Output {
  write(text: string): unknown
  /** terminal width, when the output is a terminal */
  readonly columns?: number
}

const ERASE_LINE = '\r\x1b[2K'

export class Reporter implements RunHooks {
  private live = false

  constructor(
    private readonly out: Output,
    private readonly err: Output,
    private readonly tty: boolean,
  ) {}

  line(text: string): void {
    this.clearLive()
    this.out.write(`${text}\n`)
  }

  warn(text: string): void {
    this.clearLive()
    this.err.write(`tsflow-perf: warning: ${text}\n`)
  }

  error(text: string): void {
    this.clearLive()
    this.err.write(`tsflow-perf: ${text}\n`)
  }

  iterationStart(iteration: number, tasks: number): void {
    // Plain output gets one line per iteration, written when it ends.
    if (this.tty) this.progress({ iteration, tasks, submitted: 0, completed: 0, elapsedSeconds: 0 })
  }

  progress(state: ProgressState): void {
    if (!this.tty) return
    const { iteration, tasks, submitted, completed, elapsedSeconds } = state
    const submitting = submitted < tasks ? `, submitted ${formatCount(submitted)}` : ''
    const text =
      `iteration ${iteration}: ${formatCount(completed)} / ${formatCount(tasks)} tasks completed${submitting}, ` +
      `${formatSeconds(elapsedSeconds)}, ${formatRate(elapsedSeconds > 0 ? completed / elapsedSeconds : 0)} tasks/s`
    // A line wider than the terminal wraps, and \r would then rewrite only its last row.
    const width = this.out.columns
    const fitted = width && width > 10 && text.length >= width ? `${text.slice(0, width - 4)}...` : text
    this.out.write(`${ERASE_LINE}${fitted}`)
    this.live = true
  }

  iterationEnd(result: IterationResult): void {
    this.line(iterationLine(result))
  }

  private clearLive(): void {
    if (!this.live) return
    this.out.write(ERASE_LINE)
    this.live = false
  }
}

/** "iteration 2: 5,000 tasks; submitted 48,000 tasks/s (0.104 s); completed 9,876 tasks/s (0.506 s)" */
export function iterationLine(result: IterationResult): string {
  const head = result.partial
    ? `iteration ${result.iteration} (interrupted): ${formatCount(result.completed)} of ${formatCount(result.tasks)} submitted tasks completed`
    : `iteration ${result.iteration}: ${formatCount(result.tasks)} tasks`
  const failed = result.failed > 0 ? `; ${formatCount(result.failed)} failed` : ''
  return (
    `${head}; submitted ${formatRate(result.submittedPerSec)} tasks/s (${formatSeconds(result.submitSeconds)}); ` +
    `completed ${formatRate(result.completedPerSec)} tasks/s (${formatSeconds(result.completeSeconds)})${failed}`
  )
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

/** Whole numbers from 100/s up, else 3 significant digits. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return String(perSecond)
  if (perSecond >= 100) return formatCount(perSecond)
  return Number(perSecond.toPrecision(3)).toLocaleString('en-US', { maximumFractionDigits: 3 })
}

export function formatSeconds(seconds: number): string {
  if (seconds >= 100) return `${Math.round(seconds)} s`
  if (seconds >= 10) return `${seconds.toFixed(1)} s`
  return `${seconds.toFixed(3)} s`
}
