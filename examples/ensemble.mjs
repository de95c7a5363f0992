// flow.mjs: run with `node flow.mjs`
import { app, bashApp, joinApp, load, main, File } from 'tsflow'

// Define apps at the top level of a module: workers import the module to find them.
const simulate = app((seed) => {
  let x = seed
  for (let i = 0; i < 1e6; i++) x = (x * 1103515245 + 12345) % 2 ** 31
  return x / 2 ** 31
})
const mean = app((values) => values.reduce((a, b) => a + b, 0) / values.length)
const archive = bashApp(function (value) {
  return `echo ${value} > ${this.outputs[0]}`
})
const ensemble = joinApp((n) => mean(Array.from({ length: n }, (_, i) => simulate(i))))

main(import.meta, async () => {
  const kernel = await load() // embedded local default: one thread per CPU
  try {
    const m = ensemble(64) // returns at once; runs 64 simulations in parallel
    const saved = archive.with({ outputs: [new File('mean.txt')] })(m) // waits for m
    console.log('mean', await m, 'exit code', await saved, 'run directory', kernel.runDir)
  } finally {
    await kernel.cleanup() // waits for running tasks, then stops the workers
  }
})
