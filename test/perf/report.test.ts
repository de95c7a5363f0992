// What tsflow-perf prints: number formats, iteration lines, the final line, terminal rendering.
import t from 'tap'
import { formatRate, formatSeconds, iterationLine, Reporter } from '../../dist/perf/report.js'
import { finalLine } from '../../dist/perf/cli.js'
import { finalRate, type IterationResult } from '../../dist/perf/results.js'

const it = (over: Partial<IterationResult>): IterationResult => ({
  iteration: 1,
  tasks: 1000,
  completed: 1000,
  failed: 0,
  submitSeconds: 0.01,
  completeSeconds: 0.5,
  submittedPerSec: 100_000,
  completedPerSec: 2000,
  ...over,
})

t.test('numbers: grouped rates, three significant digits below 100/s, seconds by size', async (t) => {
  t.equal(formatRate(21_345.4), '21,345')
  t.equal(formatRate(47.71), '47.7')
  t.equal(formatRate(0.01234), '0.012')
  t.equal(formatRate(0), '0')
  t.equal(formatSeconds(0.0004), '0.000 s')
  t.equal(formatSeconds(8.4261), '8.426 s')
  t.equal(formatSeconds(12.34), '12.3 s')
  t.equal(formatSeconds(123.4), '123 s')
})

t.test('iteration lines: complete, failed, interrupted', async (t) => {
  t.equal(iterationLine(it({})), 'iteration 1: 1,000 tasks; submitted 100,000 tasks/s (0.010 s); completed 2,000 tasks/s (0.500 s)')
  t.match(iterationLine(it({ failed: 3 })), /; 3 failed$/)
  t.equal(
    iterationLine(it({ iteration: 3, completed: 10, partial: true, completedPerSec: 20 })),
    'iteration 3 (interrupted): 10 of 1,000 submitted tasks completed; submitted 100,000 tasks/s (0.010 s); completed 20 tasks/s (0.500 s)',
  )
})

t.test('the final rate and line come from the last complete iteration', async (t) => {
  const done = [it({ completedPerSec: 100 }), it({ iteration: 2, tasks: 45_848, completeSeconds: 8.4261, completedPerSec: 5441.2 })]
  t.equal(finalRate(done), 5441.2)
  const summary = 'HighThroughputExecutor htex, 1 block x 2 workers'
  t.equal(finalLine('finished', 5441.2, { iterations: done, stopReason: 'target reached' }, summary, 0), `tsflow-perf: 5,441 tasks/s (${summary}, argsize 0, 45,848 tasks in 8.43 s)`)
  const cut = [...done, it({ iteration: 3, partial: true, completed: 5 })]
  t.equal(finalRate(cut), 5441.2)
  t.equal(
    finalLine('interrupted', finalRate(cut), { iterations: cut, stopReason: 'interrupted' }, summary, 0),
    `tsflow-perf: interrupted; last complete iteration: 5,441 tasks/s (${summary}, argsize 0, 45,848 tasks in 8.43 s)`,
  )
  const none = [it({ partial: true })]
  t.equal(finalRate(none), null)
  t.equal(finalLine('interrupted', null, { iterations: none, stopReason: 'interrupted' }, summary, 16), `tsflow-perf: interrupted before any iteration completed (${summary}, argsize 16)`)
  t.equal(finalLine('failed', null, { iterations: [it({ failed: 1000 })], stopReason: 'failed' }, summary, 0), `tsflow-perf: failed before any iteration completed (${summary}, argsize 0)`)
})

t.test('plain output: one line per iteration; terminal output: updates in place', async (t) => {
  const sink = () => {
    const chunks: string[] = []
    return { chunks, write: (text: string) => chunks.push(text) }
  }
  const plainOut = sink()
  const plain = new Reporter(plainOut, sink(), false)
  plain.iterationStart(1, 1000)
  plain.progress({ iteration: 1, tasks: 1000, submitted: 500, completed: 100, elapsedSeconds: 0.1 })
  plain.iterationEnd(it({}))
  t.same(plainOut.chunks, [`${iterationLine(it({}))}\n`])

  const ttyOut = sink()
  const tty = new Reporter(ttyOut, sink(), true)
  tty.iterationStart(1, 1000)
  tty.progress({ iteration: 1, tasks: 1000, submitted: 500, completed: 100, elapsedSeconds: 0.1 })
  tty.iterationEnd(it({}))
  t.same(ttyOut.chunks, [
    '\r\x1b[2Kiteration 1: 0 / 1,000 tasks completed, submitted 0, 0.000 s, 0 tasks/s',
    '\r\x1b[2Kiteration 1: 100 / 1,000 tasks completed, submitted 500, 0.100 s, 1,000 tasks/s',
    '\r\x1b[2K',
    `${iterationLine(it({}))}\n`,
  ])
  const errOut = sink()
  const warned = new Reporter(sink(), errOut, true)
  warned.warn('careful')
  t.same(errOut.chunks, ['tsflow-perf: warning: careful\n'])
})
