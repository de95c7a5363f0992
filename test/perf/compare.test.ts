// tsflow-perf compare: on a recorded history with several hosts and providers it prints the
// table and writes a well-formed SVG naming every configuration; a bad history fails with an
// error naming the file (and line). The SVG is parsed with a real XML parser (Python's minidom).

import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import t from 'tap'

import { configurationLabel, groupRuns, parseCompareArgs, readHistory, SVG_FILE } from '../../dist/perf/compare.js'
import { setupOf } from '../../dist/perf/results.js'
import { PROJECT_ROOT, readRecords, runPerf, scratchDir, writeThreadsConfig } from './helpers.js'

const FIXTURE = join(PROJECT_ROOT, 'test', 'fixtures', 'perf-compare', 'history.jsonl')

/** Parses `file` as XML; returns the text of its <text> elements, or throws with the parser's message. */
function svgTexts(file: string): string[] {
  const script = [
    'import sys, json, xml.dom.minidom as m',
    'doc = m.parse(sys.argv[1])',
    'assert doc.documentElement.tagName == "svg", doc.documentElement.tagName',
    'texts = ["".join(n.data for n in el.childNodes if n.nodeType == n.TEXT_NODE) for el in doc.getElementsByTagName("text")]',
    'print(json.dumps(texts))',
  ].join('\n')
  const result = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`not well-formed SVG: ${result.stderr}`)
  return JSON.parse(result.stdout) as string[]
}

const EXPECTED = [
  'k8s-client htex/kubernetes 1 node x 2 workers',
  'laptop htex/local 1 node x 8 workers',
  'slurm-login htex/slurm (srun) 1 node x 2 workers',
  'slurm-login htex/slurm (srun) 2 nodes x 4 workers',
  'vm threads 1 node x 2 workers',
  'vm htex/local 1 node x 2 workers',
]

t.test('compare on a recorded history: table by host, provider, nodes and workers, and an SVG plot', async (t) => {
  const dir = scratchDir(t, 'tsflow-compare-')
  const history = join(dir, 'history.jsonl')
  copyFileSync(FIXTURE, history)
  const svg = join(dir, 'plot.svg')
  const result = await runPerf(t, ['compare', history, '--svg', svg], { cwd: dir })
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /^15 finished runs in 6 configurations from .*history\.jsonl; 1 interrupted or failed run left out/)
  const lines = result.stdout.split('\n')
  const header = lines.find((line) => line.startsWith('host '))!
  t.match(header, /host +executor +provider +launcher +nodes +workers +runs +best tasks\/s +median tasks\/s +last run/)
  const rows = lines.slice(lines.indexOf(header) + 2).filter((line) => /^\S/.test(line) && !line.startsWith('plot'))
  t.same(
    rows.map((row) => row.split(/\s{2,}/).slice(0, 7).join('|')),
    [
      'k8s-client|htex|kubernetes|single_node|1|2|1',
      'laptop|htex|local|single_node|1|8|3',
      'slurm-login|htex|slurm|srun|1|2|1',
      'slurm-login|htex|slurm|srun|2|4|2',
      'vm|threads|-|-|1|2|1',
      'vm|htex|local|single_node|1|2|7',
    ],
    'one row per configuration, grouped and sorted by host',
  )
  // vm htex/local: 7 real runs; best and median from the recorded rates.
  const rates = readFileSync(FIXTURE, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.host.hostname === 'vm' && r.config.executors[0].type === 'htex' && r.status === 'finished').map((r) => r.tasksPerSecond as number).sort((a, b) => a - b)
  t.equal(rates.length, 7)
  const vmRow = rows.find((row) => row.startsWith('vm ') && row.includes('htex'))!.split(/\s{2,}/)
  t.equal(vmRow[7], Math.round(rates[6]!).toLocaleString('en-US'), 'best')
  t.equal(vmRow[8], Math.round(rates[3]!).toLocaleString('en-US'), 'median')
  t.match(result.stdout, `plot written to ${svg}`)

  const texts = svgTexts(svg)
  for (const label of EXPECTED) t.ok(texts.includes(label), `the plot names ${label}`)
  t.ok(texts.includes('tasks/s'), 'the axis is tasks/s')
  for (const host of ['vm', 'laptop', 'slurm-login', 'k8s-client']) t.ok(texts.includes(host), `the legend names host ${host}`)
  t.equal((readFileSync(svg, 'utf8').match(/<path[^>]*class="[^"]*"/g) ?? []).length > 0, true)
})

t.test('compare: defaults, a directory argument, --no-svg', async (t) => {
  const dir = scratchDir(t, 'tsflow-compare-')
  copyFileSync(FIXTURE, join(dir, 'tsflow-perf.jsonl'))
  t.same(parseCompareArgs([dir]), { files: [join(dir, 'tsflow-perf.jsonl')], svg: join(dir, SVG_FILE) })
  t.same(parseCompareArgs(['a.jsonl', 'b.jsonl', '--no-svg']), { files: ['a.jsonl', 'b.jsonl'], svg: null })
  t.same(parseCompareArgs([]), { files: ['perf-results/tsflow-perf.jsonl'], svg: join('perf-results', SVG_FILE) })
  const result = await runPerf(t, ['compare', dir], { cwd: dir })
  t.equal(result.code, 0, result.stderr)
  t.ok(existsSync(join(dir, SVG_FILE)), 'the plot goes next to the history by default')
  svgTexts(join(dir, SVG_FILE))
  const table = await runPerf(t, ['compare', '--no-svg', dir, join(dir, 'tsflow-perf.jsonl')], { cwd: dir })
  t.match(table.stdout, /30 finished runs in 6 configurations/, 'several files are read together')
  t.notMatch(table.stdout, /plot written/)
})

t.test('compare: bad arguments and bad files are usage errors naming the file', async (t) => {
  const dir = scratchDir(t, 'tsflow-compare-')
  const missing = await runPerf(t, ['compare', join(dir, 'nope.jsonl')], { cwd: dir })
  t.equal(missing.code, 2)
  t.match(missing.stderr, /tsflow-perf: compare: cannot read .*nope\.jsonl: no such file/)
  t.match(missing.stderr, /Run tsflow-perf compare --help/)

  const notJson = join(dir, 'broken.jsonl')
  writeFileSync(notJson, readFileSync(FIXTURE, 'utf8').split('\n')[0] + '\n{"record": "tsflow-perf", oops\n')
  const broken = await runPerf(t, ['compare', notJson], { cwd: dir })
  t.equal(broken.code, 2)
  t.match(broken.stderr, `compare: ${notJson}:2 is not a JSON line`)

  const other = join(dir, 'other.jsonl')
  writeFileSync(other, '{"hello": 1}\n')
  t.throws(() => readHistory([other]), { code: 'E_USAGE', message: `compare: ${other}:1 is not a tsflow-perf record` })
  const partial = join(dir, 'partial.jsonl')
  writeFileSync(partial, '{"record": "tsflow-perf", "timestamp": "x"}\n')
  t.throws(() => readHistory([partial]), { message: /partial\.jsonl:1: the tsflow-perf record lacks host\.hostname, config\.executors, iterations/ })
  const empty = join(dir, 'empty.jsonl')
  writeFileSync(empty, '\n')
  t.throws(() => readHistory([empty]), { message: /empty\.jsonl holds no tsflow-perf records/ })

  for (const [args, message] of [
    [['--svg'], /--svg needs a value/],
    [['--svg', '--no-svg'], /--svg needs a value/],
    [['--svg', 'x.svg', '--no-svg'], /contradict/],
    [['--sv', 'x'], /unknown flag --sv/],
  ] as const) {
    t.throws(() => parseCompareArgs(args), { code: 'E_USAGE', message }, args.join(' '))
  }
  const unwritable = await runPerf(t, ['compare', FIXTURE, '--svg', join(dir, 'no-such-dir', 'plot.svg')], { cwd: dir })
  t.equal(unwritable.code, 1, 'a plot that cannot be written fails the command')
  t.match(unwritable.stdout, /best tasks\/s/, 'after printing the table')
  t.match(unwritable.stderr, `could not write the plot to ${join(dir, 'no-such-dir', 'plot.svg')}`)
  const help = await runPerf(t, ['compare', '--help'], { cwd: dir })
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: tsflow-perf compare/)
})

t.test('every run records its setup, and compare reads a fresh history', async (t) => {
  const dir = scratchDir(t, 'tsflow-compare-')
  const config = writeThreadsConfig(dir)
  const results = join(dir, 'results')
  const run = await runPerf(t, ['--config', config, '--iterate', '200', '--results-dir', results], { cwd: dir })
  t.equal(run.code, 0, run.stderr)
  const [record] = readRecords(results)
  t.same(record!.setup, { executor: 'threads', provider: null, launcher: null, nodesPerBlock: 1, blocks: 1, workers: 2 })
  t.equal(record!.config.file, config)
  t.type(record!.tsflowVersion, 'string')
  t.type(record!.host.hostname, 'string')
  t.type(record!.timestamp, 'string')
  const compared = await runPerf(t, ['compare', results], { cwd: dir })
  t.equal(compared.code, 0, compared.stderr)
  t.match(compared.stdout, /1 finished run in 1 configuration/)
  t.ok(svgTexts(join(results, SVG_FILE)).includes(`${record!.host.hostname} threads 1 node x 2 workers`))
})

t.test('setupOf: HTEX with a provider, several executors, workers connected vs configured', async (t) => {
  const htex = { type: 'htex', workersPerNode: 4, provider: { type: 'slurm', nodesPerBlock: 2, initBlocks: 1, launcher: { type: 'srun' } } }
  t.same(setupOf([htex], []), { executor: 'htex', provider: 'slurm', launcher: 'srun', nodesPerBlock: 2, blocks: 1, workers: 8 })
  t.equal(setupOf([htex], [{ iteration: 1, tasks: 1, completed: 1, failed: 0, submitSeconds: 1, completeSeconds: 1, submittedPerSec: 1, completedPerSec: 1, workers: 6 }]).workers, 6, 'connected workers win')
  t.same(setupOf([{ type: 'threads', maxThreads: 3 }, htex], []), { executor: 'threads+htex', provider: 'slurm', launcher: 'srun', nodesPerBlock: 2, blocks: 2, workers: 11 })
  t.equal(setupOf([{ type: 'custom' }], []).workers, null, 'unknown when the executor does not say')
  const groups = groupRuns(readHistory([FIXTURE]).runs)
  t.same(groups.map((g) => g.label), EXPECTED)
  t.equal(configurationLabel('h', { executor: 'htex', provider: 'pbs', launcher: 'mpiexec', nodesPerBlock: 1, blocks: 1, workers: 1 }), 'h htex/pbs (mpiexec) 1 node x 1 worker')
})
