/**
 * Producer-consumer, data through the file system (the seed's Parsl + file system variant):
 *   npm run pc:filesystem -- --num-sims 32 --grid-size 512
 *   node out/examples/producer-consumer/filesystem.js [--config FILE] [--dir DIR] [--fsync] [--keep]
 * Each simulation writes its time levels as raw float64 bytes (native byte order, no header) to
 * a file in a directory every worker sees, and returns the path; every trainer reads all the
 * files. `IO time` is the mean, over the tasks of a phase, of the time each spent writing
 * (simulations) or reading (trainers) its files, as measured by the task itself.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { app, main } from 'tsflow'
import { phase, printHeader, printResult, reportModels, runProgram, setup, type TrainerResult } from './common.js'
import { StencilTrainer, checksum, saveModel, simulate, simulationBytes } from './wave.js'

interface Written {
  path: string
  ioSeconds: number
  checksum: number
}

/** Writes all of `bytes` at the file's start (a write may be partial for large buffers). */
function writeAll(path: string, bytes: Uint8Array, fsync: boolean): void {
  const fd = openSync(path, 'w')
  try {
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done)
    if (fsync) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Reads a whole file into `into` (exactly its size, or an error naming the file). */
function readAll(path: string, into: Uint8Array): void {
  const fd = openSync(path, 'r')
  try {
    let done = 0
    while (done < into.length) {
      const n = readSync(fd, into, done, into.length - done, done)
      if (n === 0) throw new Error(`${path} is shorter than a simulation (${done} of ${into.length} bytes): was it written with another --grid-size, or cut short?`)
      done += n
    }
  } finally {
    closeSync(fd)
  }
}

// Apps at the top level: workers find them by importing this module.
const simulation = app(
  (index: number, grid: number, dir: string, fsync: boolean): Written => {
    const levels = simulate(index, grid)
    const path = join(dir, `sim-${index}.f64`)
    const started = performance.now()
    writeAll(path, new Uint8Array(levels.buffer, levels.byteOffset, levels.byteLength), fsync)
    return { path, ioSeconds: (performance.now() - started) / 1000, checksum: checksum(levels) }
  },
  { name: 'simulation' },
)

const trainer = app(
  (trainer: number, grid: number, path: string, files: string[]): TrainerResult => {
    const started = performance.now()
    const training = new StencilTrainer(grid)
    // One buffer for every file: memory stays at one simulation whatever the data size.
    const levels = new Float64Array(simulationBytes(grid) / 8)
    const bytes = new Uint8Array(levels.buffer)
    const checksums = new Array<number>(files.length)
    let io = 0
    // Trainers start at different files so that they do not all read the same one at once.
    for (let k = 0; k < files.length; k++) {
      const i = (k + trainer) % files.length
      const t = performance.now()
      readAll(files[i]!, bytes)
      io += performance.now() - t
      training.add(levels)
      checksums[i] = checksum(levels)
    }
    const model = training.fit()
    saveModel(path, model, { variant: 'filesystem', trainer, seconds: (performance.now() - started) / 1000, ioSeconds: io / 1000 })
    return { trainer, model, checksums, path, ioSeconds: io / 1000 }
  },
  { name: 'trainer' },
)

main(import.meta, () =>
  runProgram('filesystem', async (flags) => {
    const s = await setup('filesystem', flags)
    const trainers = flags.workers ?? s.workers
    const dir = resolve(flags.dir ?? join(s.out, 'data'))
    mkdirSync(dir, { recursive: true })
    printHeader('filesystem', flags, s, trainers)
    console.log(`Data directory: ${dir}${flags.fsync ? ' (each file fsync-ed)' : ''}`)
    try {
      const produced = await phase(
        `Simulation phase: ${flags.numSims} simulations`,
        () => Promise.all(Array.from({ length: flags.numSims }, (_, i) => simulation(i, flags.gridSize, dir, flags.fsync))),
        (w) => w.ioSeconds,
      )
      const files = produced.results.map((w) => w.path)
      const trained = await phase(
        `Training phase: ${trainers} trainers`,
        () => Promise.all(Array.from({ length: trainers }, (_, i) => trainer(i, flags.gridSize, join(s.out, `filesystem-model-${i}.json`), files))),
        (t) => t.ioSeconds ?? 0,
      )
      const error = reportModels(trained.results, produced.results.map((w) => w.checksum))
      printResult('filesystem', flags, s, trainers, produced.timing, trained.timing, { schemeError: error, models: trained.results.map((t) => t.path), dataDir: dir, fsync: flags.fsync })
    } finally {
      if (!flags.keep) rmSync(dir, { recursive: true, force: true })
    }
  }),
)
