import { readFileSync, readdirSync } from 'node:fs'
import { CLOCK_TICKS } from './proc.js'

/** The monitoring writer thread's name (src/monitoring/writer-thread.ts names itself). */
export const WRITER_THREAD = 'tsflow-monitor'

/** CPU seconds (user + system) of each live thread of `pid`, by thread id, with its name. */
export function threadCpu(pid: number | 'self' = 'self'): Map<string, { name: string; cpuS: number }> {
  const threads = new Map<string, { name: string; cpuS: number }>()
  let ids: string[]
  try {
    ids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return threads
  }
  for (const tid of ids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
      threads.set(tid, { name: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')), cpuS: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS })
    } catch {
      // the thread ended
    }
  }
  return threads
}

/** The writer thread's CPU seconds in a threadCpu() reading (0 when there is none). */
export function writerCpu(threads: Map<string, { name: string; cpuS: number }>): number {
  let total = 0
  for (const thread of threads.values()) if (thread.name === WRITER_THREAD) total += thread.cpuS
  return total
}
