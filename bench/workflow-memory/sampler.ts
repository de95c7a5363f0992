/**
 * The memory sampler: a process of its own (so its work and memory are not the workflow's), started
 * by bench/workflow-memory with an IPC channel. It appends one results-memory.csv line every
 * interval as it goes, and stops on SIGTERM/SIGINT or when the channel closes (the bench ended or
 * died), so it never outlives the bench. With a second file, it also records the resident memory
 * of the bench's own process tree (the bench, its workers, interchange, a private redis-server),
 * which other tenants of the machine do not disturb, and the bytes the store holds in files
 * (file connector directories, shm segments; a JSON list of { directory, prefix }).
 *
 *   node out/bench/workflow-memory/sampler.js <interval seconds> <results-memory.csv> [<results-process-memory.csv> [<places JSON>]]
 */
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs'
import { MEMORY_COLUMNS, memoryLine, sampleMemory, storedBytes, TREE_COLUMNS, treeRss, type StoredPlace } from '../lib/meminfo.js'

const [intervalText, file, treeFile, placesJson] = process.argv.slice(2)
const places = JSON.parse(placesJson ?? '[]') as StoredPlace[]
const intervalMs = Number(intervalText) * 1000
if (!file || !Number.isFinite(intervalMs) || intervalMs <= 0) {
  console.error('usage: sampler.js <interval seconds> <csv file>')
  process.exit(2)
}

function open(path: string, columns: readonly string[]): number {
  const fresh = !existsSync(path) || statSync(path).size === 0
  const fd = openSync(path, 'a')
  if (fresh) writeSync(fd, `${columns.join(',')}\n`)
  return fd
}
const fd = open(file, MEMORY_COLUMNS)
const treeFd = treeFile ? open(treeFile, TREE_COLUMNS) : undefined
const root = process.ppid

function sample(): void {
  writeSync(fd, memoryLine(sampleMemory()))
  if (treeFd !== undefined) {
    const tree = treeRss(root, process.pid)
    writeSync(treeFd, `${(Date.now() / 1000).toFixed(3)},${tree.rss},${tree.processes},${storedBytes(places)}\n`)
  }
}
let timer: NodeJS.Timeout | undefined
let stopped = false

function stop(): void {
  if (stopped) return
  stopped = true
  clearTimeout(timer)
  // One last sample, so the end of the last run is covered.
  sample()
  closeSync(fd)
  if (treeFd !== undefined) closeSync(treeFd)
  process.disconnect?.()
  process.exit(0)
}

let next = Date.now()
function tick(): void {
  sample()
  next += intervalMs
  // Keeps the schedule (no drift from the write time); a late tick runs at once.
  timer = setTimeout(tick, Math.max(0, next - Date.now()))
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop)
process.on('disconnect', stop)
tick()
process.send?.({ ready: true, pid: process.pid })
