import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux almost always). */
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

export interface ProcInfo {
  pid: number
  ppid: number
  cmdline: string
}

function readStat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces; the fields after its closing ')' are plain.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** utime + stime of a live process, in microseconds (undefined once it is gone). */
export function cpuMicros(pid: number): number | undefined {
  const fields = readStat(pid)
  if (!fields) return undefined
  // After ')': state(3) ppid(4) ... utime(14) stime(15) -> indexes 11 and 12 here.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
}

/** Every live descendant of `root` (children, grandchildren, ...), from /proc. */
export function descendants(root: number): ProcInfo[] {
  const all: ProcInfo[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    const fields = readStat(pid)
    if (!fields) continue
    let cmdline = ''
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
    } catch {
      continue
    }
    all.push({ pid, ppid: Number(fields[1]), cmdline })
  }
  const found: ProcInfo[] = []
  const frontier = [root]
  while (frontier.length > 0) {
    const parent = frontier.pop()!
    for (const info of all) {
      if (info.ppid === parent) {
        found.push(info)
        frontier.push(info.pid)
      }
    }
  }
  return found
}
