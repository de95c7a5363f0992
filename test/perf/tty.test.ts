// On a terminal, each iteration is a single line updated in place while it runs.
import { createRequire } from 'node:module'
import t, { type Test } from 'tap'
import { cleanEnv, PERF_BIN, readRecords, scratchDir, writeThreadsConfig } from './helpers.js'
import { join } from 'node:path'

interface Pty {
  pid: number
  onData(listener: (data: string) => void): void
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): void
  kill(signal?: string): void
}
const nodePty = createRequire(import.meta.url)('node-pty') as {
  spawn(file: string, args: string[], options: Record<string, unknown>): Pty
}

function runUnderPty(t: Test, args: string[], cwd: string, cols = 160): Promise<{ output: string; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const term = nodePty.spawn(process.execPath, [PERF_BIN, ...args], { name: 'xterm-256color', cols, rows: 40, cwd, env: cleanEnv({ TERM: 'xterm-256color' }) })
    let output = ''
    let exited = false
    const timer = setTimeout(() => {
      term.kill('SIGKILL')
      reject(new Error(`no exit within 60 s; output so far: ${JSON.stringify(output)}`))
    }, 60_000)
    t.teardown(() => {
      clearTimeout(timer)
      if (!exited) term.kill('SIGKILL')
    })
    term.onData((data) => (output += data))
    term.onExit(({ exitCode }) => {
      exited = true
      clearTimeout(timer)
      resolve({ output, exitCode })
    })
  })
}

const ERASE = '\r\x1b[2K'

t.test('progress updates in place with carriage returns, then the iteration summary', async (t) => {
  const dir = scratchDir(t)
  const results = join(dir, 'results')
  const { output, exitCode } = await runUnderPty(t, ['--config', writeThreadsConfig(dir), '--iterate', '20,400000', '--results-dir', results], dir)
  t.equal(exitCode, 0, output)

  // Split into what the terminal shows as successive states of the current line.
  const frames = output.split(/\r\n|\r\x1b\[2K|\r/).filter((frame) => frame !== '')
  const progress = (n: number) => frames.filter((f) => f.startsWith(`iteration ${n}: `) && f.includes(' tasks completed'))
  const progressPattern = /^iteration \d: [\d,]+ \/ [\d,]+ tasks completed(, submitted [\d,]+)?, [\d.]+ s, [\d,.]+ tasks\/s$/
  for (const frame of [...progress(1), ...progress(2)]) t.match(frame, progressPattern)

  const big = progress(2)
  t.ok(big.length >= 3, `several updates during the long iteration (${big.length})`)
  const counts = big.map((frame) => Number(/: ([\d,]+) \//.exec(frame)![1]!.replace(/,/g, '')))
  t.same([...counts].sort((a, b) => a - b), counts, 'completed counts only grow')
  t.equal(counts.at(-1), 400_000, 'the last update shows all tasks completed')

  // All updates of an iteration are written over each other: no newline between them.
  const start = output.indexOf(`${ERASE}iteration 2: 0 / 400,000 tasks completed`)
  const summary = output.indexOf(`${ERASE}iteration 2: 400,000 tasks; submitted `)
  t.ok(start >= 0 && summary > start, 'the iteration starts as a progress line and ends as its summary')
  t.notMatch(output.slice(start, summary), /\n/, 'the progress of one iteration stays on one line')
  t.match(output.slice(summary), /^\r\x1b\[2Kiteration 2: 400,000 tasks; submitted [\d,.]+ tasks\/s \([\d.]+ s\); completed [\d,.]+ tasks\/s \([\d.]+ s\)\r\n/)
  t.match(output, /\r\ntsflow-perf: [\d,.]+ tasks\/s \(ThreadPoolExecutor threads, 2 threads, argsize 0, 400,000 tasks in [\d.]+ s\)\r\n/)
  t.equal(readRecords(results)[0]!.iterations.length, 2)
})

t.test('the live line is cut to the terminal width so it never wraps', async (t) => {
  const dir = scratchDir(t)
  const { output, exitCode } = await runUnderPty(t, ['--config', writeThreadsConfig(dir), '--iterate', '100000', '--results-dir', 'r'], dir, 40)
  t.equal(exitCode, 0, output)
  const frames = output.split(/\r\n|\r\x1b\[2K|\r/).filter((frame) => frame.startsWith('iteration 1: ') && !frame.includes('; submitted'))
  t.ok(frames.length > 0)
  for (const frame of frames) t.ok(frame.length < 40, `fits in 40 columns: ${JSON.stringify(frame)}`)
})
