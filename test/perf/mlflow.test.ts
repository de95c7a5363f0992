// The MLflow sink against an emulated tracking server: experiment get-or-create, run creation,
// params and metrics, final status; and failures that only warn.
import { createServer } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { logToMlflow, MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, mlflowKey, mlflowParams } from '../../dist/perf/mlflow.js'
import type { PerfRecord } from '../../dist/perf/results.js'
import { MlflowEmulator } from './mlflow-emulator.js'
import { cleanEnv, readRecords, runPerf, scratchDir, writeThreadsConfig } from './helpers.js'

async function emulator(t: Test): Promise<{ mlflow: MlflowEmulator; uri: string }> {
  const mlflow = new MlflowEmulator()
  const uri = await mlflow.start()
  t.teardown(() => mlflow.stop())
  return { mlflow, uri }
}

t.test('a run is logged: experiment created once, params, metrics by step, FINISHED', async (t) => {
  const { mlflow, uri } = await emulator(t)
  const dir = scratchDir(t)
  const config = writeThreadsConfig(dir)
  const results = join(dir, 'results')
  const args = ['--config', config, '--iterate', '20,40', '--results-dir', results, '--mlflow-experiment', 'laptop runs']

  const first = await runPerf(t, [...args, '--mlflow-uri', uri], { cwd: dir })
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stderr, '')
  t.match(first.stdout, new RegExp(`\\nmlflow: logged run [0-9a-f]{32} in experiment 'laptop runs' \\(${uri}/#/experiments/1/runs/[0-9a-f]{32}\\)\\n$`))
  // The second run finds the experiment through the environment variable, and reuses it.
  const second = await runPerf(t, args, { cwd: dir, env: cleanEnv({ MLFLOW_TRACKING_URI: uri }) })
  t.equal(second.code, 0, second.stderr)

  t.equal(mlflow.callsTo('experiments/get-by-name').length, 2)
  t.same(mlflow.callsTo('experiments/get-by-name').map((c) => c.status), [404, 200], 'unknown at first, found the second time')
  t.equal(mlflow.callsTo('experiments/create').length, 1, 'the experiment is created once')
  t.same(mlflow.callsTo('experiments/create')[0]!.body, { name: 'laptop runs' })
  t.equal(mlflow.runs.size, 2)
  t.ok(mlflow.calls.every((call) => call.status === 200 || call.endpoint === 'experiments/get-by-name'), 'no request was refused')

  const [record] = readRecords(results)
  const run = [...mlflow.runs.values()][0]!
  t.match(run.info, { experiment_id: '1', status: 'FINISHED', start_time: Date.parse(record!.timestamp), end_time: Date.parse(record!.endTimestamp) })
  t.match(run.info.run_name, /^tsflow-perf ThreadPoolExecutor threads, 2 threads$/)
  t.equal(run.tags.get('mlflow.source.name'), 'tsflow-perf')
  t.equal(run.tags.get('tsflow.status'), 'finished')

  const params = Object.fromEntries(run.params)
  t.match(params, {
    tsflow_version: record!.tsflowVersion,
    'config.file': config,
    'config.summary': 'ThreadPoolExecutor threads, 2 threads',
    time: '120',
    argsize: '0',
    iterate: '20,40',
    resources: 'none',
    'host.hostname': record!.host.hostname,
    'host.cores': String(record!.host.cores),
    'host.node': process.version,
    'executor.threads.type': 'threads',
    'executor.threads.maxThreads': '2',
    'setup.executor': 'threads',
    'setup.provider': 'none',
    'setup.nodesPerBlock': '1',
    'setup.workers': '2',
    'executor.threads.maxBatchSize': '256',
  })

  const series = (key: string) => run.metrics.filter((m) => m.key === key)
  for (const key of ['tasks', 'submit_seconds', 'complete_seconds', 'submitted_per_sec', 'completed_per_sec']) {
    t.same(series(key).map((m) => m.step), [1, 2], `${key} logged for steps 1 and 2`)
  }
  t.same(series('tasks').map((m) => m.value), [20, 40])
  t.same(series('completed_per_sec').map((m) => m.value), record!.iterations.map((it: { completedPerSec: number }) => it.completedPerSec))
  t.same(series('tasks_per_sec'), [{ key: 'tasks_per_sec', value: record!.tasksPerSecond, timestamp: Date.parse(record!.endTimestamp), step: 2 }])
})

t.test('an unreachable MLflow only warns; the JSON line is still written', async (t) => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const dir = scratchDir(t)
  const results = join(dir, 'results')
  const run = await runPerf(t, ['--config', writeThreadsConfig(dir), '--iterate', '10', '--results-dir', results, '--mlflow-uri', `http://127.0.0.1:${port}`], { cwd: dir })
  t.equal(run.code, 0, 'the measurement itself succeeded')
  t.match(run.stderr, new RegExp(`^tsflow-perf: warning: could not log to MLflow at http://127.0.0.1:${port}: GET experiments/get-by-name failed: ECONNREFUSED; the result is in ${results}\\n$`))
  t.equal(readRecords(results).length, 1)
})

t.test('a server error mid-way warns and leaves the run FAILED, not RUNNING', async (t) => {
  const { mlflow, uri } = await emulator(t)
  mlflow.failing.add('runs/log-batch')
  const dir = scratchDir(t)
  const run = await runPerf(t, ['--config', writeThreadsConfig(dir), '--iterate', '10', '--results-dir', 'r', '--mlflow-uri', uri], { cwd: dir })
  t.equal(run.code, 0)
  t.match(run.stderr, /warning: could not log to MLflow at .*: POST runs\/log-batch: HTTP 500 INTERNAL_ERROR: runs\/log-batch is failing on purpose; the result is in r/)
  t.equal([...mlflow.runs.values()][0]!.info.status, 'FAILED')
})

t.test('a deleted experiment is explained', async (t) => {
  const { mlflow, uri } = await emulator(t)
  mlflow.experiments.get('0')!.lifecycle_stage = 'deleted'
  await t.rejects(logToMlflow({ uri, experiment: 'Default' }, fakeRecord({})), { message: /experiment 'Default' is deleted; restore it or choose another --mlflow-experiment/ })
})

t.test('params respect MLflow limits: batches of 100, valid unique keys, short values', async (t) => {
  const { mlflow, uri } = await emulator(t)
  const description: Record<string, unknown> = { label: 'big', type: 'custom', 'weird key[0]': 1, 'weird key(0)': 2, long: 'x'.repeat(10_000), nested: { '../up': true } }
  for (let i = 0; i < 150; i++) description[`option${i}`] = i
  description[`k${'y'.repeat(400)}`] = 'long key'
  const record = fakeRecord(description)
  const logged = await logToMlflow({ uri, experiment: 'limits' }, record)
  const batches = mlflow.callsTo('runs/log-batch')
  t.ok(batches.length >= 2, 'params split over several requests')
  t.ok(batches.every((call) => call.body.params.length <= 100 && call.status === 200))
  const params = mlflow.runs.get(logged.runId)!.params
  t.equal(params.size, mlflowParams(record).length, 'every param arrived')
  t.equal(params.get('executor.big.long')!.length, MAX_PARAM_VALUE_LENGTH)
  t.match(params.get('executor.big.long'), /\.\.\.$/)
  t.ok(params.has('executor.big.weird key_0_') && params.has('executor.big.weird key_0__2'), 'keys made valid and kept unique')
  t.ok([...params.keys()].every((key) => key.length <= MAX_KEY_LENGTH))
  t.equal(mlflowKey('/a..b[c]'), 'a.b_c_')
  t.equal(mlflowKey('x//./y/'), 'x/y')
  t.equal(mlflowKey('$'), '_')
})

function fakeRecord(description: Record<string, unknown>): PerfRecord {
  const now = new Date().toISOString()
  return {
    record: 'tsflow-perf',
    recordVersion: 1,
    timestamp: now,
    endTimestamp: now,
    status: 'finished',
    tsflowVersion: '0.0.0',
    host: { hostname: 'h', cpuModel: 'c', cores: 1, availableParallelism: 1, memoryBytes: 1, memoryGiB: 1, node: 'v20', platform: 'linux', arch: 'x64', osRelease: 'r' },
    config: { file: null, summary: 'custom big', executors: [description] },
    parameters: { timeSeconds: 1, argsize: 0, iterate: 'estimate', resources: null, resultsDir: 'r', mlflowExperiment: 'limits' },
    iterations: [{ iteration: 1, tasks: 1, completed: 1, failed: 0, submitSeconds: 0.1, completeSeconds: 0.2, submittedPerSec: 10, completedPerSec: 5 }],
    tasksPerSecond: 5,
    stopReason: 'list done',
  }
}
