import { readFileSync } from 'node:fs'

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
