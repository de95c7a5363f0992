// The terminal progress view (docs/monitoring.md "Terminal progress"): a real workflow process
// on a real pseudo-terminal (node-pty), on pipes, and switched off; the option's checks.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ConfigError, DataFlowKernel, ThreadPoolExecutor, resolveConfig, type Config } from 'tsflow'
import * as apps from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'

interface Pty {
  pid: number
  onData(listener: (data: string) => void): void
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): void
  write(data: string): void
  kill(signal?: string): void
}
const nodePty = createRequire(import.meta.url)('node-pty') as { spawn(file: string, args: string[], options: Record<string, unknown>): Pty }

const projectRoot = fileURLToPath(new URL('..', import.meta.url))
const workflow = join(projectRoot, 'test', 'fixtures', 'workflows', 'progress.mjs')
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-progress-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
let runs = 0

/** The workflow's environment: no loaders from the test runner, no progress setting inherited. */
function env(extra: Record<string, string>): Record<string, string> {
  const base = { ...process.env, NODE_OPTIONS: '', RUN_DIR: join(scratch, `run-${++runs}`), ...extra } as Record<string, string>
  if (!('TSFLOW_PROGRESS' in extra)) delete base.TSFLOW_PROGRESS
  return base
}

interface Run {
  /** everything the process wrote so far (a terminal merges stdout and stderr) */
  readonly output: string
  readonly stderr: string
  readonly exited: Promise<number | null>
  /** a line on the workflow's stdin (it waits for one with WAIT_FOR_GO=1) */
  go(): void
}

function onPty(t: Test, extra: Record<string, string>): Run {
  const term = nodePty.spawn(process.execPath, [workflow], { name: 'xterm-256color', cols: 200, rows: 40, cwd: projectRoot, env: env(extra) })
  let output = ''
  let alive = true
  t.teardown(() => {
    if (alive) term.kill('SIGKILL')
  })
  term.onData((data) => (output += data))
  const exited = new Promise<number | null>((resolve) =>
    term.onExit(({ exitCode }) => {
      alive = false
      resolve(exitCode)
    }),
  )
  return {
    get output() {
      return output
    },
    get stderr() {
      return output
    },
    exited,
    go: () => term.write('go\r'),
  }
}

function onPipes(t: Test, extra: Record<string, string>): Run {
  const child = spawn(process.execPath, [workflow], { cwd: projectRoot, env: env(extra), stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  let stderr = ''
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    get output() {
      return output
    },
    get stderr() {
      return stderr
    },
    exited,
    go: () => child.stdin!.end('go\n'),
  }
}

const ERASE = '\r\x1b[2K'
const COUNT = '[\\d,]+'
const LIVE = new RegExp(`^tsflow: (${COUNT}) submitted, (${COUNT}) running, (${COUNT}) done, (${COUNT}) failed, [\\d.,]+ tasks/s, ETA (\\?|[\\d.]+ s|\\d+ min \\d\\d s)$`)
const TOTALS = '61 submitted, 0 running, 60 done, 1 failed'

t.test('on a terminal: one live line redrawn in place, reaching the totals, then the summary', async (t) => {
  const run = onPty(t, { TSFLOW_PROGRESS: '1', WAIT_FOR_GO: '1' })
  // The tasks are done; the live line must catch up with them before cleanup() is asked for.
  await waitFor(() => run.output.includes(`${ERASE}tsflow: ${TOTALS}, `), `the live line to show ${TOTALS}`, 60_000)
  run.go()
  t.equal(await run.exited, 0, "exits 0", { output: run.output })
  const output = run.output

  const summaryAt = output.indexOf(`${ERASE}tsflow: finished in `)
  t.ok(summaryAt > 0, 'a summary line')
  t.match(output.slice(summaryAt), new RegExp(`^\\r\\x1b\\[2Ktsflow: finished in [\\d.]+ s: ${TOTALS}, [\\d.,]+ tasks/s\\r\\n`), 'the summary replaces the live line')
  const firstLive = output.indexOf(`${ERASE}tsflow: `)
  t.ok(firstLive >= 0 && firstLive < summaryAt)
  // Everything until the summary is redrawn over one line: no newline; the workflow's "go" echo
  // comes after the totals were shown, so cut there.
  const liveText = output.slice(firstLive, summaryAt).split('go')[0]!
  t.notMatch(liveText, /\n/, 'the live line never moves down')

  const frames = liveText.split(ERASE).filter((frame) => frame !== '')
  t.ok(frames.length >= 2, `several redraws (${frames.length})`)
  const done: number[] = []
  for (const frame of frames) {
    const match = LIVE.exec(frame)
    t.ok(match, `a live frame: ${JSON.stringify(frame)}`)
    if (match) done.push(Number(match[3]!.replace(/,/g, '')))
  }
  t.same([...done].sort((a, b) => a - b), done, 'done counts only grow')
  t.equal(done.at(-1), 60)
  t.equal(new Set(frames).size, frames.length, 'a frame is redrawn only when it changed')
  t.match(output, /results 60 1/)
})

t.test('not on a terminal: plain periodic lines, then the summary', async (t) => {
  const run = onPipes(t, { TSFLOW_PROGRESS: '1', PROGRESS_OPTION: JSON.stringify({ intervalMs: 100 }), WAIT_FOR_GO: '1' })
  const plain = () => run.stderr.split('\n').filter((line) => line.startsWith('tsflow progress at '))
  await waitFor(() => plain().some((line) => line.includes(TOTALS)), `a plain line with ${TOTALS}`, 60_000)
  run.go()
  t.equal(await run.exited, 0, "exits 0", { output: run.output })
  const lines = run.stderr.split('\n').filter((line) => line !== '')
  t.notMatch(run.stderr, /[\r\x1b]/, 'no terminal control characters')
  t.ok(plain().length >= 2, `periodic lines (${plain().length})`)
  for (const line of plain()) {
    t.match(line, new RegExp(`^tsflow progress at [\\d.]+ s: ${COUNT} submitted, ${COUNT} running, ${COUNT} done, ${COUNT} failed, [\\d.,]+ tasks/s, ETA `))
  }
  t.match(lines.at(-1), new RegExp(`^tsflow: finished in [\\d.]+ s: ${TOTALS}, [\\d.,]+ tasks/s$`), 'the last line is the summary')
})

t.test('the config option turns it on; its default interval writes only the summary of a short run', async (t) => {
  const run = onPipes(t, { PROGRESS_OPTION: 'true' })
  t.equal(await run.exited, 0, "exits 0", { output: run.output })
  t.match(run.stderr, new RegExp(`^tsflow: finished in [\\d.]+ s: ${TOTALS}, [\\d.,]+ tasks/s\\n$`))
})

t.test('a workflow that returns without cleanup() still ends by itself, with its summary', async (t) => {
  const run = onPipes(t, { TSFLOW_PROGRESS: '1', PROGRESS_OPTION: JSON.stringify({ intervalMs: 50 }), NO_CLEANUP: '1' })
  t.equal(await run.exited, 0, "exits 0", { output: run.output })
  t.match(run.stderr, new RegExp(`tsflow: finished in [\\d.]+ s: ${TOTALS}, [\\d.,]+ tasks/s\\n$`))
})

t.test('off: nothing is printed, on a terminal or not; TSFLOW_PROGRESS=0 wins over the config', async (t) => {
  for (const [where, extra] of [
    ['terminal, not set', {}],
    ['terminal, TSFLOW_PROGRESS=0 over progress: true', { TSFLOW_PROGRESS: '0', PROGRESS_OPTION: 'true' }],
  ] as const) {
    const run = onPty(t, extra)
    t.equal(await run.exited, 0, "exits 0", { output: run.output })
    t.equal(run.output, 'results 60 1\r\n', where)
  }
  const run = onPipes(t, { PROGRESS_OPTION: 'false' })
  t.equal(await run.exited, 0, "exits 0", { output: run.output })
  t.equal(run.stderr, '', 'pipes, progress: false')
})

t.test('a stream of the option gets the view; a terminal one has its line cut to its width', async (t) => {
  const written: string[] = []
  const stream = { isTTY: true, columns: 40, write: (text: string) => written.push(text) }
  const dfk = new DataFlowKernel({ runDir: join(scratch, 'in-process'), progress: { stream }, executors: [new ThreadPoolExecutor({ maxThreads: 1 })] })
  t.teardown(() => dfk.cleanup())
  await dfk.start()
  const spinning = apps.spin.with({ dfk })(300)
  await waitFor(() => written.length > 0, 'a live line')
  await spinning
  await dfk.cleanup()
  const frames = written.slice(0, -1)
  for (const frame of frames) {
    t.ok(frame.startsWith(ERASE), 'redrawn in place')
    t.ok(frame.length - ERASE.length < 40, `fits in 40 columns: ${JSON.stringify(frame)}`)
  }
  t.match(written.at(-1), /^\r\x1b\[2Ktsflow: finished in [\d.]+ s: 1 submitted, 0 running, 1 done, 0 failed, [\d.,]+ tasks\/s\n$/, 'the summary is not cut')
  const count = written.length
  await dfk.cleanup()
  t.equal(written.length, count, 'a second cleanup() writes nothing more')
})

/** The ConfigError resolveConfig throws for `config`, or fails the test. */
function configError(config: unknown): ConfigError {
  try {
    resolveConfig(config as Config)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(config)}`)
}

t.test('the option is checked once, errors naming its path', async (t) => {
  const saved = process.env.TSFLOW_PROGRESS
  t.teardown(() => {
    if (saved === undefined) delete process.env.TSFLOW_PROGRESS
    else process.env.TSFLOW_PROGRESS = saved
  })
  delete process.env.TSFLOW_PROGRESS
  t.equal(resolveConfig({}).progress, undefined, 'off by default')
  t.equal(resolveConfig({ progress: false }).progress, undefined)
  t.same(resolveConfig({ progress: true }).progress, { intervalMs: 10_000, stream: undefined })
  t.same(resolveConfig({ progress: { intervalMs: 500, stream: process.stdout } }).progress, { intervalMs: 500, stream: process.stdout })
  t.ok(Object.isFrozen(resolveConfig({ progress: true }).progress))

  t.match(configError({ progress: { intervalMs: 0 } }), { path: 'progress.intervalMs', message: /^progress\.intervalMs must be a whole number of ms from 1 to 2147483647 \(got 0\)$/ })
  t.match(configError({ progress: { intervalMs: Infinity } }), { path: 'progress.intervalMs' })
  t.match(configError({ progress: { intervalMs: 2.5 } }), { path: 'progress.intervalMs' })
  t.match(configError({ progress: { interval: 100 } }), { path: 'progress.interval', message: /did you mean 'intervalMs'\?/ })
  t.match(configError({ progress: { stream: 'stderr' } }), { path: 'progress.stream', message: /must be a writable stream/ })
  t.match(configError({ progress: 'yes' }), { path: 'progress', message: /^progress must be true, false or \{ intervalMs, stream \} \(got string\)$/ })
  t.match(configError({ progress: 1 }), { path: 'progress' })

  process.env.TSFLOW_PROGRESS = '1'
  t.same(resolveConfig({}).progress, { intervalMs: 10_000, stream: undefined }, 'TSFLOW_PROGRESS=1 turns it on')
  t.same(resolveConfig({ progress: { intervalMs: 300 } }).progress, { intervalMs: 300, stream: undefined }, 'with the options of the config')
  process.env.TSFLOW_PROGRESS = '0'
  t.equal(resolveConfig({ progress: true }).progress, undefined, 'TSFLOW_PROGRESS=0 turns it off')
  process.env.TSFLOW_PROGRESS = ''
  t.same(resolveConfig({ progress: true }).progress, { intervalMs: 10_000, stream: undefined }, 'empty means unset')
  process.env.TSFLOW_PROGRESS = 'yes'
  t.match(configError({}), { path: 'TSFLOW_PROGRESS', message: /must be 1 or 0 \(got "yes"\)/ })
})
