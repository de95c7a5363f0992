// tsflow-perf as a real process: a threads config from a file, the default local HTEX, the
// estimate mode, bad config files, and Ctrl-C.
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { openDb } from '../helpers/sqlite.js'
import { cleanEnv, PERF_BIN, processesMentioning, readRecords, runPerf, scratchDir, startPerf, waitFor, writeThreadsConfig } from './helpers.js'

// No terminal: no carriage returns, no escape sequences.
const CONTROL = /[\r\x1b]/

t.test('threads config, explicit batches: plain lines and a complete JSON record', async (t) => {
  const dir = scratchDir(t)
  const config = writeThreadsConfig(dir)
  const results = join(dir, 'results')
  const run = await runPerf(t, ['--config', config, '--time', '0.5', '--iterate', '50,200', '--results-dir', results], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  t.notMatch(run.stdout, CONTROL, 'no control characters when stdout is not a terminal')
  const lines = run.stdout.trimEnd().split('\n')
  t.equal(lines.length, 5, run.stdout)
  t.match(lines[0], /^tsflow-perf \d+\.\d+\.\d+\S* on .+ \(\d+ CPUs, node v\d+\.\d+\.\d+\): ThreadPoolExecutor threads, 2 threads; batches of 50, 200 tasks, argsize 0$/)
  t.match(lines[1], /^iteration 1: 50 tasks; submitted [\d,.]+ tasks\/s \([\d.]+ s\); completed [\d,.]+ tasks\/s \([\d.]+ s\)$/)
  t.match(lines[2], /^iteration 2: 200 tasks; submitted [\d,.]+ tasks\/s \([\d.]+ s\); completed [\d,.]+ tasks\/s \([\d.]+ s\)$/)
  t.match(lines[3], /^tsflow-perf: [\d,.]+ tasks\/s \(ThreadPoolExecutor threads, 2 threads, argsize 0, 200 tasks in [\d.]+ s\)$/)
  t.equal(lines[4], `results appended to ${join(results, 'tsflow-perf.jsonl')}`)
  t.equal(run.stderr, '')

  const records = readRecords(results)
  t.equal(records.length, 1, 'one line per run')
  const record = records[0]!
  t.match(record, {
    record: 'tsflow-perf',
    status: 'finished',
    tsflowVersion: /^\d+\.\d+\.\d+/,
    timestamp: /^\d{4}-\d\d-\d\dT/,
    host: { hostname: String, cpuModel: String, cores: Number, memoryBytes: Number, node: process.version, platform: process.platform },
    config: { file: config, summary: 'ThreadPoolExecutor threads, 2 threads', executors: [{ type: 'threads', label: 'threads', class: 'ThreadPoolExecutor', maxThreads: 2 }] },
    parameters: { timeSeconds: 0.5, argsize: 0, iterate: [50, 200], resources: null, resultsDir: results },
    stopReason: 'list done',
  })
  t.equal(record.iterations.length, 2)
  record.iterations.forEach((it: Record<string, number>, index: number) => {
    t.equal(it.iteration, index + 1)
    t.equal(it.tasks, [50, 200][index])
    t.equal(it.completed, it.tasks)
    t.equal(it.failed, 0)
    for (const key of ['submitSeconds', 'completeSeconds', 'submittedPerSec', 'completedPerSec']) t.ok(it[key]! > 0, `${key} > 0`)
    t.ok(it.completeSeconds! >= it.submitSeconds!, 'completion ends after submission')
  })
  t.equal(record.tasksPerSecond, record.iterations[1].completedPerSec, 'the final rate is the last iteration')
})

t.test('--monitoring records the run: every record written, the figures in the output and the record', async (t) => {
  const dir = scratchDir(t)
  const config = writeThreadsConfig(dir)
  const results = join(dir, 'results')
  const dbPath = join(dir, 'mon', 'perf.db')
  const run = await runPerf(t, ['--config', config, '--iterate', '300', '--monitoring', '--resource-interval-ms', '500', '--monitoring-db', dbPath, '--results-dir', results], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /\nmonitoring: ([\d,]+) of \1 records written in [\d,]+ batches; writer lag \d+ ms at the end, \d+ ms at most\n/)
  t.ok(existsSync(dbPath), 'the database is where --monitoring-db says')
  const [record] = readRecords(results)
  t.match(record, { parameters: { monitoring: { resourceIntervalMs: 500, db: dbPath } }, monitoring: { errors: [] } })
  t.equal(record!.monitoring.written, record!.monitoring.sent, 'nothing lost')
  t.ok(record!.monitoring.sent >= 300, 'a record per task at least')
  // every task of the run is in the database, done, with its launch and end
  const db = openDb(t, dbPath)
  t.same(
    db.prepare("SELECT count(*) AS n, sum(state = 'exec_done' AND launched_ms > 0 AND end_ms >= launched_ms) AS complete FROM task").get(),
    { n: 300, complete: 300 },
    'a row per task, each done with its launch and end',
  )
})

t.test('the default config is the local HTEX; argsize and resources reach the record', async (t) => {
  const dir = scratchDir(t)
  const results = join(dir, 'out')
  const run = await runPerf(t, ['--time', '0.5', '--iterate', '100', '--argsize', '512', '--resources', '{"cores":1}', '--results-dir', results], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  t.notMatch(run.stdout, CONTROL)
  const workers = availableParallelism()
  const summary = `HighThroughputExecutor htex, 1 block x ${workers} worker${workers === 1 ? '' : 's'}`
  t.match(run.stdout, `: ${summary}; batches of 100 tasks, argsize 512, resources {"cores":1}\n`)
  t.match(run.stdout, /\niteration 1: 100 tasks; submitted /)
  t.match(run.stdout, new RegExp(`\\ntsflow-perf: [\\d,.]+ tasks/s \\(${summary}, argsize 512, 100 tasks in [\\d.]+ s\\)\\n`))
  const [record] = readRecords(results)
  t.match(record, {
    status: 'finished',
    config: {
      file: null,
      summary,
      executors: [{ type: 'htex', class: 'HighThroughputExecutor', workersPerNode: workers, provider: { type: 'local', initBlocks: 1, maxBlocks: 1, nodesPerBlock: 1 } }],
      runDir: new RegExp(`^${join(dir, 'runinfo')}`),
    },
    parameters: { argsize: 512, iterate: [100], resources: { cores: 1 } },
    iterations: [{ iteration: 1, tasks: 100, completed: 100, failed: 0, managers: 1, workers }],
  })
  t.ok(record!.tasksPerSecond > 0)
  t.same(processesMentioning(join(dir, 'runinfo')), [], 'no interchange or manager left behind')
})

t.test('estimate mode runs until a batch lasts most of --time', async (t) => {
  const dir = scratchDir(t)
  const results = join(dir, 'results')
  const run = await runPerf(t, ['--config', writeThreadsConfig(dir), '--time', '0.4', '--results-dir', results], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  const [record] = readRecords(results)
  const iterations = record!.iterations as { tasks: number; completeSeconds: number }[]
  t.equal(iterations[0]!.tasks, 20, 'starts with 20 tasks')
  t.ok(iterations.length >= 2, 'at least two iterations')
  if (record!.stopReason === 'target reached') t.ok(iterations.at(-1)!.completeSeconds >= 0.75 * 0.4, 'the last batch filled the target')
  else t.equal(record!.stopReason, 'iteration limit')
  t.match(run.stdout, /estimating batches to last 0.4 s/)
})

t.test('config file problems: exit 2 naming the file and what was expected', async (t) => {
  const dir = scratchDir(t)
  const results = join(dir, 'results')
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text)
    return name
  }
  const cases: [string, string, RegExp][] = [
    ['missing.mjs', '', /^tsflow-perf: --config missing.mjs: no such file \(looked for .*missing.mjs\)\nRun tsflow-perf --help for usage.\n$/],
    [write('noexport.mjs', 'export const other = 1\n'), '', /--config noexport.mjs: expected a default export \(or an export named 'config'\) holding a tsflow config such as \{ executors: \[new HighThroughputExecutor\(\)\] \}; the module exports other/],
    [write('number.mjs', 'export default 42\n'), '', /--config number.mjs: the default export must be a tsflow config object .*\(got number\)/],
    [write('broken.mjs', 'export default {\n'), '', /--config broken.mjs: the module failed to load: /],
    [write('invalid.mjs', "export const config = { executors: [{ type: 'nope' }] }\n"), '', /--config invalid.mjs: invalid config: executors\[0\]\.type must be one of 'threads', 'htex'/],
    [write('typo.mjs', 'export default { retry: 2 }\n'), '', /--config typo.mjs: invalid config: retry is not a known option; did you mean 'retries'\?/],
    [write('broken.ts', 'const x: number = \n'), '', /--config broken.ts: the module failed to load: /],
    [write('commonjs.ts', "import { ThreadPoolExecutor } from 'tsflow'\nexport default { executors: [new ThreadPoolExecutor()] }\n"), '', /--config commonjs.ts: the module failed to load: .*; tsx loads commonjs.ts as CommonJS because no package.json above it says "type": "module": rename it to .mts or add "type": "module"/],
  ]
  for (const [file, , message] of cases) {
    const run = await runPerf(t, ['--config', file, '--time', '0.1', '--iterate', '1', '--results-dir', results], { cwd: dir })
    t.equal(run.code, 2, `${file}: exit 2`)
    t.match(run.stderr, message, file)
    t.equal(run.stdout, '', `${file}: nothing on stdout`)
  }
  t.same(readRecords(results), [], 'no result line for a run that never started')
})

t.test('a TypeScript config runs with no loader flags (tsx is registered for it)', async (t) => {
  const dir = scratchDir(t)
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  writeFileSync(
    join(dir, 'typed.ts'),
    `import { ThreadPoolExecutor, type Config } from 'tsflow'\nenum Threads { Two = 2 }\nconst config: Config = { executors: [new ThreadPoolExecutor({ maxThreads: Threads.Two, label: 'typed' })], runDir: 'runinfo' }\nexport default config\n`,
  )
  const run = await runPerf(t, ['--config', 'typed.ts', '--iterate', '10', '--results-dir', 'r'], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /tsflow-perf: [\d,.]+ tasks\/s \(ThreadPoolExecutor typed, 2 threads, argsize 0, 10 tasks in/)
})

t.test('a config exported as a function (like fresh_config) is called', async (t) => {
  const dir = scratchDir(t)
  writeFileSync(join(dir, 'fresh.mjs'), `import { ThreadPoolExecutor } from 'tsflow'\nexport const config = async () => ({ executors: [new ThreadPoolExecutor({ maxThreads: 1, label: 'one' })], runDir: 'runinfo' })\n`)
  const run = await runPerf(t, ['--config', 'fresh.mjs', '--iterate', '10', '--results-dir', 'r'], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /tsflow-perf: [\d,.]+ tasks\/s \(ThreadPoolExecutor one, 1 thread, argsize 0, 10 tasks in/)
})

t.test('usage errors and --help', async (t) => {
  const dir = scratchDir(t)
  const bad = await runPerf(t, ['--time', 'soon'], { cwd: dir })
  t.equal(bad.code, 2)
  t.equal(bad.stderr, 'tsflow-perf: --time expects a number of seconds > 0, e.g. 120 or 0.5 (got "soon")\nRun tsflow-perf --help for usage.\n')
  const unknown = await runPerf(t, ['--workers', '4'], { cwd: dir })
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /^tsflow-perf: unknown flag --workers; known flags: /)
  const help = await runPerf(t, ['--help'], { cwd: dir })
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: tsflow-perf \[options\]/)
  const resultsIsFile = join(dir, 'file')
  writeFileSync(resultsIsFile, '')
  const unwritable = await runPerf(t, ['--results-dir', join(resultsIsFile, 'sub'), '--iterate', '1'], { cwd: dir })
  t.equal(unwritable.code, 2)
  t.match(unwritable.stderr, /--results-dir .*file\/sub: cannot create it: /)
})

t.test('importing the bin (as a worker or a test would) starts nothing', async (t) => {
  const dir = scratchDir(t)
  const script = join(dir, 'import-bin.mjs')
  writeFileSync(script, `await import(${JSON.stringify(PERF_BIN)})\nconsole.log('imported')\n`)
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, '--time', '1'], { cwd: dir, env: cleanEnv(), timeout: 30_000 })
  t.equal(stdout, 'imported\n')
  t.equal(stderr, '')
  t.notOk(existsSync(join(dir, 'perf-results')), 'no results directory')
  t.notOk(existsSync(join(dir, 'runinfo')), 'no kernel started')
})

t.test('Ctrl-C: stops, cleans up the HTEX, prints and records the partial result, exits 130', async (t) => {
  const dir = scratchDir(t)
  const results = join(dir, 'results')
  const run = startPerf(t, ['--time', '60', '--results-dir', results], { cwd: dir })
  // Iteration 2 is sized from the start-up-heavy first one; the third is the long one.
  await waitFor(() => /\niteration 2: /.test(run.stdout), 'the second iteration to finish', 60_000)
  await waitFor(() => processesMentioning(join(dir, 'runinfo')).length > 0, 'the interchange and manager to be running')
  const signalled = Date.now()
  run.child.kill('SIGINT')
  const done = await run.finished
  t.equal(done.code, 130, done.stderr)
  t.ok(Date.now() - signalled < 15_000, 'stops promptly')
  t.match(done.stderr, /tsflow-perf: warning: SIGINT: stopping; cleaning up/)
  t.match(done.stdout, /\niteration 3 \(interrupted\): [\d,]+ of [\d,]+ submitted tasks completed; /)
  t.match(done.stdout, /\ntsflow-perf: interrupted; last complete iteration: [\d,.]+ tasks\/s \(HighThroughputExecutor htex, /)
  const [record] = readRecords(results)
  t.match(record, { status: 'interrupted', stopReason: 'interrupted' })
  t.equal(record!.iterations.length, 3)
  t.equal(record!.iterations[2].partial, true)
  t.equal(record!.tasksPerSecond, record!.iterations[1].completedPerSec)
  await waitFor(() => processesMentioning(join(dir, 'runinfo')).length === 0, 'the interchange and manager to exit', 10_000)
})
