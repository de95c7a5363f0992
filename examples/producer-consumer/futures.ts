/**
 * Producer-consumer, data through futures (the seed's Parsl + futures variant):
 *   npm run pc:futures -- --num-sims 32 --grid-size 512
 *   node out/examples/producer-consumer/futures.js [--config FILE] [--workers N] [--out DIR]
 * Each simulation returns its time levels (a Float64Array) as its task's result; every trainer
 * gets all the simulations' futures as arguments, so the kernel sends it all the data. No task
 * moves data itself, so `IO time` is NA: the transfer is inside the phases' times.
 */
import { join } from 'node:path'
import { app, main } from 'tsflow'
import { phase, printHeader, printResult, reportModels, runProgram, setup, type TrainerResult } from './common.js'
import { StencilTrainer, checksum, saveModel, simulate } from './wave.js'

// Apps at the top level: workers find them by importing this module.
const simulation = app((index: number, grid: number): Float64Array => simulate(index, grid), { name: 'simulation' })

const trainer = app(
  (trainer: number, grid: number, path: string, ...sims: Float64Array[]): TrainerResult => {
    const started = performance.now()
    const training = new StencilTrainer(grid)
    for (const levels of sims) training.add(levels)
    const model = training.fit()
    saveModel(path, model, { variant: 'futures', trainer, seconds: (performance.now() - started) / 1000 })
    return { trainer, model, checksums: sims.map(checksum), path }
  },
  { name: 'trainer' },
)

main(import.meta, () =>
  runProgram('futures', async (flags) => {
    const s = await setup('futures', flags)
    const trainers = flags.workers ?? s.workers
    printHeader('futures', flags, s, trainers)

    const sims = Array.from({ length: flags.numSims }, (_, i) => simulation(i, flags.gridSize))
    const produced = await phase(`Simulation phase: ${flags.numSims} simulations`, () => Promise.all(sims), undefined)
    // Each trainer's arguments are the futures themselves: the data go wherever the trainer runs.
    const trained = await phase(
      `Training phase: ${trainers} trainers`,
      () => Promise.all(Array.from({ length: trainers }, (_, i) => trainer(i, flags.gridSize, join(s.out, `futures-model-${i}.json`), ...sims))),
      undefined,
    )
    const error = reportModels(trained.results, produced.results.map(checksum))
    printResult('futures', flags, s, trainers, produced.timing, trained.timing, { schemeError: error, models: trained.results.map((t) => t.path) })
  }),
)
