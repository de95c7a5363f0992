// flow.ts: run with `npx tsx flow.ts` (tsx comes with tsflow)
import { app, bashApp, joinApp, load, main, File, type TaskContext } from 'tsflow'

// Define apps at the top level of a module: workers import the module to find them.
const simulate = app((seed: number) => {
  let x = seed
  for (let i = 0; i < 1e6; i++) x = (x * 1103515245 + 12345) % 2 ** 31
  return x / 2 ** 31
})
const mean = app((values: number[]) => values.reduce((a, b) => a + b, 0) / values.length)
const archive = bashApp(function (this: TaskContext, value: number) {
  return `echo ${value} > ${this.outputs[0]}`
})
const ensemble = joinApp((n: number) => mean(Array.from({ length: n }, (_, i) => simulate(i))))

main(import.meta, async () => {
  await using kernel = await load() // embedded local default: one thread per CPU
  const m = ensemble(64) // returns at once; runs 64 simulations in parallel
  const saved = archive.with({ outputs: [new File('mean.txt')] })(m) // waits for m
  console.log('mean', await m, 'exit code', await saved, 'run directory', kernel.runDir)
}) // cleanup() runs when `kernel` goes out of scope
