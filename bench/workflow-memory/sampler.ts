/**
 * The memory sampler: a process of its own (so its work and memory are not the workflow's), started
 * by bench/workflow-memory with an IPC channel. It appends one results-memory.csv line every
 * interval as it goes, and stops on SIGTERM/SIGINT or when the channel closes (the bench ended or
 * died), so it never outlives the bench.
 *
 *   node out/bench/workflow-memory/sampler.js <interval seconds> <results-memory.csv>
 */
import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs'
import { MEMORY_COLUMNS, memoryLine, sampleMemory } from '../lib/meminfo.js'

const [intervalText, file] = process.argv.slice(2)
const intervalMs = Number(intervalText) * 1000
if (!file || !Number.isFinite(intervalMs) || intervalMs <= 0) {
  console.error('usage: sampler.js <interval seconds> <csv file>')
  process.exit(2)
}

const fresh = !existsSync(file) || statSync(file).size === 0
const fd = openSync(file, 'a')
if (fresh) writeSync(fd, `${MEMORY_COLUMNS.join(',')}\n`)
let timer: NodeJS.Timeout | undefined
let stopped = false

function stop(): void {
  if (stopped) return
  stopped = true
  clearTimeout(timer)
  // One last sample, so the end of the last run is covered.
  writeSync(fd, memoryLine(sampleMemory()))
  closeSync(fd)
  process.disconnect?.()
  process.exit(0)
}

let next = Date.now()
function tick(): void {
  writeSync(fd, memoryLine(sampleMemory()))
  next += intervalMs
  // Keeps the schedule (no drift from the write time); a late tick runs at once.
  timer = setTimeout(tick, Math.max(0, next - Date.now()))
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop)
process.on('disconnect', stop)
tick()
process.send?.({ ready: true, pid: process.pid })
