/**
 * The manager's resource sampler (docs/monitoring.md "Resource sampling and manager events"):
 * every interval it reads /proc for each task running now, alone on its worker, and hands the
 * samples of that tick to the manager as one message. Tasks never measure themselves, and a
 * manager whose executor does not monitor has no sampler at all (no timer, no reads).
 *
 * What is read: `stat` (user and system CPU time, RSS) and `io` (bytes read from and written to
 * storage) of the worker process, `/proc/<pid>`, or of the worker thread, `/proc/<pid>/task/<tid>`
 * (then RSS is the whole manager process's: threads share one address space).
 */
import { closeSync, openSync, readSync } from 'node:fs'
import type { ResourceSampleWire } from '../protocol/messages.js'
import type { Logger } from '../util/logger.js'

/** A task running alone on a worker, and where its worker's counters are in /proc. */
export interface SampleTarget {
  taskId: number
  tryNumber: number
  /** `/proc/<pid>` (a worker process) or `/proc/<pid>/task/<tid>` (a worker thread) */
  proc: string
}

/** What a worker pool tells the sampler: the tasks running now, one per busy worker. */
export interface Sampled {
  sampleTargets(out: SampleTarget[]): void
}

interface Counters {
  /** clock ticks */
  utime: number
  stime: number
  rssPages: number
  readBytes: number
  writeBytes: number
}

/**
 * The unit of CPU times in /proc/<pid>/stat. The kernel fixes USER_HZ at 100 for this interface
 * on every architecture Node supports (it is not the kernel's internal HZ).
 */
const USER_HZ = 100
const buffer = Buffer.alloc(4096)

/** One small /proc file into the shared buffer; undefined once the process or thread is gone. */
function readProc(path: string): string | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return undefined
  }
  try {
    const n = readSync(fd, buffer, 0, buffer.length, 0)
    return buffer.toString('latin1', 0, n)
  } catch {
    return undefined
  } finally {
    closeSync(fd)
  }
}

/** utime, stime and rss of a `stat` line (fields 14, 15 and 24; the name in parentheses may hold spaces). */
export function parseStat(text: string): Pick<Counters, 'utime' | 'stime' | 'rssPages'> | undefined {
  const close = text.lastIndexOf(')')
  if (close < 0) return undefined
  // After ") " comes field 3 (state), so field n is at index n - 3.
  const fields = text.slice(close + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  const rssPages = Number(fields[21])
  return Number.isFinite(utime) && Number.isFinite(stime) && Number.isFinite(rssPages) ? { utime, stime, rssPages } : undefined
}

/** read_bytes and write_bytes of an `io` file (bytes that went to or came from storage). */
export function parseIo(text: string): Pick<Counters, 'readBytes' | 'writeBytes'> {
  const read = /^read_bytes: (\d+)$/m.exec(text)
  const write = /^write_bytes: (\d+)$/m.exec(text)
  return { readBytes: read ? Number(read[1]) : 0, writeBytes: write ? Number(write[1]) : 0 }
}

/**
 * The page size RSS is counted in, learned once: VmRSS (kB) of /proc/self/status over the resident
 * pages of /proc/self/statm, read back to back, rounded to a power of two (4096 on most machines,
 * 16 or 64 kB on some ARM ones). Node has no sysconf.
 */
export function pageSize(): number {
  const status = readProc('/proc/self/status')
  const statm = readProc('/proc/self/statm')
  const kb = status ? Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) : NaN
  const pages = statm ? Number(statm.split(' ')[1]) : NaN
  if (!(kb > 0 && pages > 0)) return 4096
  return 2 ** Math.round(Math.log2((kb * 1024) / pages))
}

export class ResourceSampler {
  private timer: NodeJS.Timeout | undefined
  /** the try each worker ran at the last tick, with its counters at the try's first sample */
  private seen = new Map<string, { taskId: number; tryNumber: number; base: Counters }>()
  private readonly targets: SampleTarget[] = []
  private readonly page = pageSize()
  private ioWarned = false
  /** ticks and samples taken, for the manager's log */
  ticks = 0
  samples = 0

  constructor(
    private readonly intervalMs: number,
    private readonly pool: Sampled,
    /** one call per tick with samples, never per task */
    private readonly emit: (timeMs: number, rows: ResourceSampleWire[]) => void,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => this.tick(), this.intervalMs)
    // The manager's socket keeps the process alive; the sampler must never be what does.
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  get running(): boolean {
    return this.timer !== undefined
  }

  /** One sampling pass: one read of stat and io per running task. */
  tick(): void {
    this.ticks++
    const targets = this.targets
    targets.length = 0
    this.pool.sampleTargets(targets)
    const next = new Map<string, { taskId: number; tryNumber: number; base: Counters }>()
    const rows: ResourceSampleWire[] = []
    for (const target of targets) {
      const counters = this.read(target.proc)
      if (!counters) continue // the worker ended between the pool's answer and the read
      const last = this.seen.get(target.proc)
      // Counters are the worker's since it started; a try counts from its own first sample.
      const base = last && last.taskId === target.taskId && last.tryNumber === target.tryNumber ? last.base : counters
      next.set(target.proc, { taskId: target.taskId, tryNumber: target.tryNumber, base })
      rows.push([
        target.taskId,
        target.tryNumber,
        (counters.utime - base.utime) / USER_HZ,
        (counters.stime - base.stime) / USER_HZ,
        counters.rssPages * this.page,
        counters.readBytes - base.readBytes,
        counters.writeBytes - base.writeBytes,
      ])
    }
    this.seen = next
    if (rows.length === 0) return
    this.samples += rows.length
    this.emit(Date.now(), rows)
  }

  private read(proc: string): Counters | undefined {
    const statText = readProc(`${proc}/stat`)
    const stat = statText === undefined ? undefined : parseStat(statText)
    if (!stat) return undefined
    const ioText = readProc(`${proc}/io`)
    if (ioText === undefined && !this.ioWarned) {
      // io needs ptrace-read access, which some containers deny even for our own children.
      this.ioWarned = true
      this.logger.warn(`cannot read ${proc}/io; resource samples report 0 bytes read and written`)
    }
    const io = ioText === undefined ? { readBytes: 0, writeBytes: 0 } : parseIo(ioText)
    return { ...stat, ...io }
  }
}
