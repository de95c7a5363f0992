import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'

/** One line of results-memory.csv (the seed's columns). */
export interface MemorySample {
  unix_timestamp: number
  total_bytes: number
  available_bytes: number
  used_bytes: number
  free_bytes: number
}

export const MEMORY_COLUMNS = ['unix_timestamp', 'total_bytes', 'available_bytes', 'used_bytes', 'free_bytes'] as const

/**
 * System memory from /proc/meminfo. `used` is what psutil (the seed's profiler) reports, total -
 * free - buffers - page cache - reclaimable slab, with one difference: shared memory (tmpfs,
 * /dev/shm, which the kernel counts as page cache) is counted as used, because objects the shm
 * connector (or a file connector on tmpfs) holds cannot be reclaimed and are exactly what the
 * benchmark must see.
 */
export function sampleMemory(text = readFileSync('/proc/meminfo', 'utf8')): MemorySample {
  const kb = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^(\w+(?:\(\w+\))?):\s+(\d+)/.exec(line)
    if (match) kb.set(match[1]!, Number(match[2]) * 1024)
  }
  const field = (name: string) => kb.get(name) ?? 0
  const total = field('MemTotal')
  const free = field('MemFree')
  const cache = field('Cached') + field('SReclaimable') - field('Shmem')
  let used = total - free - field('Buffers') - cache
  if (used < 0) used = total - free
  return { unix_timestamp: Date.now() / 1000, total_bytes: total, available_bytes: field('MemAvailable') || free, used_bytes: used, free_bytes: free }
}

export function memoryLine(sample: MemorySample): string {
  return `${sample.unix_timestamp.toFixed(3)},${sample.total_bytes},${sample.available_bytes},${sample.used_bytes},${sample.free_bytes}\n`
}

const PAGE_SIZE = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096
  } catch {
    return 4096
  }
})()

/** One line of results-process-memory.csv: the bench's own processes, immune to other tenants. */
export const TREE_COLUMNS = ['unix_timestamp', 'tree_rss_bytes', 'processes', 'stored_bytes'] as const

/**
 * The resident memory of `root` and all its descendants (workers, interchange, a private
 * redis-server), except `exclude` (the sampler itself), from one read of /proc/<pid>/stat each.
 */
export function treeRss(root: number, exclude: number): { rss: number; processes: number } {
  const parents = new Map<number, number>()
  const rss = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let text: string
    try {
      text = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue
    }
    // Fields after the command name's closing ')': state ppid ... rss is field 24 overall.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    parents.set(Number(entry), Number(fields[1]))
    rss.set(Number(entry), Number(fields[21]) * PAGE_SIZE)
  }
  let total = 0
  let processes = 0
  const frontier = [root]
  const seen = new Set<number>()
  while (frontier.length > 0) {
    const pid = frontier.pop()!
    if (seen.has(pid)) continue
    seen.add(pid)
    if (pid !== exclude && rss.has(pid)) {
      total += rss.get(pid)!
      processes++
    }
    for (const [child, parent] of parents) if (parent === pid) frontier.push(child)
  }
  return { rss: total, processes }
}

/** Where a connector keeps its objects as files: a directory, and the name prefix of ours in it. */
export interface StoredPlace {
  directory: string
  prefix: string
}

/** Bytes held in files under each place (file connector directories, shm segments in /dev/shm). */
export function storedBytes(places: readonly StoredPlace[]): number {
  let total = 0
  for (const { directory, prefix } of places) {
    let names: string[]
    try {
      names = readdirSync(directory)
    } catch {
      continue
    }
    for (const name of names) {
      if (!name.startsWith(prefix)) continue
      try {
        total += statSync(`${directory}/${name}`).size
      } catch {
        // evicted while we looked
      }
    }
  }
  return total
}
