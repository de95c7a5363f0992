/**
 * The quick-start workflow: a small pipeline on the embedded local default (worker threads).
 *   npm start
 * It shows plain apps, a bash app writing a file, dependencies by passing futures, a join app
 * fanning out, a retried flaky task, and a failure that explains itself.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { File, app, bashApp, joinApp, load, main, type TaskContext } from 'tsflow'

// Apps are defined at the top level, so workers find them by importing this module.
const square = app((x: number) => x * x, { name: 'square' })
const total = app((values: number[]) => values.reduce((sum, v) => sum + v, 0), { name: 'total' })

const report = bashApp(function report(this: TaskContext, value: number) {
  return `echo "sum of squares: ${value}" > ${this.outputs[0]}`
})

const sumOfSquares = joinApp((n: number) => total(Array.from({ length: n }, (_, i) => square(i + 1))), { name: 'sumOfSquares' })

const sometimesFails = app(
  function sometimesFails(this: TaskContext) {
    if (this.tryNumber < 2) throw new Error(`try ${this.tryNumber} failed (simulated)`)
    return `succeeded on try ${this.tryNumber}`
  },
  { retries: 2 },
)

const divide = app((a: number, b: number) => {
  if (b === 0) throw new RangeError('division by zero')
  return a / b
}, { name: 'divide' })

main(import.meta, async () => {
  const kernel = await load()
  const started = performance.now()

  const squares = await Promise.all([1, 2, 3, 4, 5].map((x) => square(x)))
  console.log('squares:', squares.join(' '))

  const sum = sumOfSquares(100)
  // Into the run directory, not /tmp: the quick start leaves nothing behind outside runinfo/.
  const out = new File(join(kernel.runDir, 'sum-of-squares.txt'))
  const written = report.with({ outputs: [out] })(sum)
  await written.outputs[0]
  console.log('bash app wrote:', readFileSync(out.path, 'utf8').trim())

  console.log('retries:', await sometimesFails())

  const chained = divide(square(3), divide(1, 0))
  try {
    await chained
  } catch (error) {
    console.log(`failure explained: ${(error as Error).message}`)
  }

  const many = await Promise.all(Array.from({ length: 20_000 }, (_, i) => square(i)))
  console.log(`20,000 tasks done, last = ${many[many.length - 1]}`)
  console.log(`workflow finished in ${Math.round(performance.now() - started)} ms; run directory ${kernel.runDir}`)
  await kernel.cleanup()
})
