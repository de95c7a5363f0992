/**
 * The terminal progress view (config `progress`, env TSFLOW_PROGRESS; docs/monitoring.md).
 *
 * It reads the kernel's per-state counters on a timer instead of subscribing to the task
 * channels: the kernel keeps those counters anyway, so the view costs nothing per task, only one
 * read of ten numbers per tick. On a terminal one line is redrawn in place (carriage return +
 * erase line) at most every TTY_TICK_MS and only when its text changed; elsewhere (a pipe, a
 * file, CI logs) a plain line is written every `intervalMs`. Both end with a summary line when
 * the kernel cleans up, or when the process exits without cleanup(). The timer is unref'd: the
 * view never keeps a process alive.
 */
import type { ProgressStream } from '../config/config.js'
import type { TaskStateValue } from './states.js'

/** At most ten redraws a second: faster is unreadable and costs the event loop for nothing. */
const TTY_TICK_MS = 100
/** The rate (and so the ETA) is measured over about this much recent time. */
const RATE_WINDOW_MS = 5_000
const ERASE_LINE = '\r\x1b[2K'

type Counts = Readonly<Record<TaskStateValue, number>>

/** The numbers one line shows. */
interface ProgressNumbers {
  submitted: number
  running: number
  done: number
  failed: number
  cancelled: number
  elapsedMs: number
  /** tasks finished per second, recently (live lines) or over the whole run (the summary) */
  perSecond: number
  /** ms until the tasks submitted so far are finished at that rate; undefined when unknown */
  etaMs: number | undefined
}

export class ProgressView {
  private timer: NodeJS.Timeout | undefined
  private readonly started: number
  private readonly tty: boolean
  /** (time, finished) pairs of recent ticks, oldest first, for the recent rate */
  private samples: { time: number; finished: number }[] = []
  private shown = ''
  private readonly onExit = () => this.stop()

  constructor(
    private readonly counts: () => Counts,
    private readonly intervalMs: number,
    private readonly stream: ProgressStream = process.stderr,
  ) {
    this.started = Date.now()
    this.tty = stream.isTTY === true
    this.samples.push({ time: this.started, finished: 0 })
    this.timer = setInterval(() => this.tick(), this.tty ? TTY_TICK_MS : intervalMs)
    this.timer.unref()
    // A workflow that ends without cleanup() still gets its summary, and a terminal's live line
    // is not left for the shell prompt to be printed after.
    process.once('exit', this.onExit)
  }

  /** Stops the timer and writes the summary line (replacing the live line on a terminal). */
  stop(): void {
    if (!this.timer) return
    clearInterval(this.timer)
    this.timer = undefined
    process.off('exit', this.onExit)
    const numbers = this.numbers(Date.now(), true)
    this.write(`${this.tty ? ERASE_LINE : ''}${summaryLine(numbers)}\n`)
  }

  private tick(): void {
    const now = Date.now()
    const numbers = this.numbers(now, false)
    if (this.tty) {
      let text = liveLine(numbers)
      // A line wider than the terminal wraps, and \r would then redraw only its last row.
      const width = this.stream.columns
      if (width && width > 10 && text.length >= width) text = `${text.slice(0, width - 4)}...`
      if (text === this.shown) return
      this.shown = text
      this.write(`${ERASE_LINE}${text}`)
    } else {
      this.write(`${plainLine(numbers)}\n`)
    }
  }

  private numbers(now: number, final: boolean): ProgressNumbers {
    const c = this.counts()
    const done = c.exec_done + c.memo_done
    const failed = c.failed + c.dep_fail
    const cancelled = c.cancelled
    const finished = done + failed + cancelled
    const submitted = finished + c.unsched + c.pending + c.launched + c.running + c.joining
    const elapsedMs = now - this.started
    let perSecond: number
    if (final) {
      perSecond = elapsedMs > 0 ? (finished * 1000) / elapsedMs : 0
    } else {
      this.samples.push({ time: now, finished })
      // Keep the newest sample older than the window as the base, so a slow tick still has one.
      while (this.samples.length > 2 && now - this.samples[1]!.time >= RATE_WINDOW_MS) this.samples.shift()
      const base = this.samples[0]!
      perSecond = now > base.time ? ((finished - base.finished) * 1000) / (now - base.time) : 0
    }
    const remaining = submitted - finished
    const etaMs = remaining === 0 ? 0 : perSecond > 0 ? (remaining * 1000) / perSecond : undefined
    return { submitted, running: c.running + c.joining, done, failed, cancelled, elapsedMs, perSecond, etaMs }
  }

  private write(text: string): void {
    try {
      this.stream.write(text)
    } catch {
      // A closed stream (EPIPE) must not fail the workflow: the view just stops.
      if (this.timer) clearInterval(this.timer)
      this.timer = undefined
      process.off('exit', this.onExit)
    }
  }
}

function counts(n: ProgressNumbers): string {
  const cancelled = n.cancelled > 0 ? `, ${formatCount(n.cancelled)} cancelled` : ''
  return (
    `${formatCount(n.submitted)} submitted, ${formatCount(n.running)} running, ` +
    `${formatCount(n.done)} done, ${formatCount(n.failed)} failed${cancelled}`
  )
}

/** "tsflow: 1,200 submitted, 8 running, 1,000 done, 2 failed, 350 tasks/s, ETA 1 s" */
function liveLine(n: ProgressNumbers): string {
  return `tsflow: ${counts(n)}, ${formatRate(n.perSecond)} tasks/s, ETA ${formatEta(n.etaMs)}`
}

/** The live line with the elapsed time, for logs read later. */
function plainLine(n: ProgressNumbers): string {
  return `tsflow progress at ${formatDuration(n.elapsedMs)}: ${counts(n)}, ${formatRate(n.perSecond)} tasks/s, ETA ${formatEta(n.etaMs)}`
}

/** "tsflow: finished in 12 s: 1,200 submitted, 0 running, 1,198 done, 2 failed, 100 tasks/s" */
function summaryLine(n: ProgressNumbers): string {
  return `tsflow: finished in ${formatDuration(n.elapsedMs)}: ${counts(n)}, ${formatRate(n.perSecond)} tasks/s`
}

function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

function formatRate(perSecond: number): string {
  if (perSecond >= 100) return formatCount(perSecond)
  return Number(perSecond.toPrecision(3)).toLocaleString('en-US', { maximumFractionDigits: 2 })
}

function formatEta(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '?' : formatDuration(ms)
}

/** "0.4 s", "12 s", "3 min 05 s", "2 h 10 min" */
function formatDuration(ms: number): string {
  const seconds = ms / 1000
  if (seconds < 10) return `${seconds.toFixed(1)} s`
  if (seconds < 60) return `${Math.round(seconds)} s`
  const totalSeconds = Math.round(seconds)
  if (totalSeconds < 3600) return `${Math.floor(totalSeconds / 60)} min ${String(totalSeconds % 60).padStart(2, '0')} s`
  const totalMinutes = Math.round(totalSeconds / 60)
  return `${Math.floor(totalMinutes / 60)} h ${String(totalMinutes % 60).padStart(2, '0')} min`
}
