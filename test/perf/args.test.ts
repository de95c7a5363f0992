// tsflow-perf's command line: every flag, the defaults, and the errors for bad input.
import t, { type Test } from 'tap'
import { parsePerfArgs, UsageError, USAGE, type PerfOptions } from '../../dist/perf/args.js'

const noEnv = {}
const parse = (...argv: string[]): PerfOptions => {
  const parsed = parsePerfArgs(argv, noEnv)
  if (typeof parsed === 'string') throw new Error(`expected options, got ${parsed}`)
  return parsed
}
/** The UsageError message for argv, or fails the test. */
function usageError(t: Test, argv: string[], env: NodeJS.ProcessEnv = noEnv): string {
  try {
    parsePerfArgs(argv, env)
  } catch (error) {
    t.type(error, UsageError, `${argv.join(' ')} throws UsageError`)
    return (error as Error).message
  }
  t.fail(`${argv.join(' ')} was accepted`)
  return ''
}

t.test('defaults match parsl-perf: 120 s, argsize 0, estimate, local HTEX', async (t) => {
  t.same(parse(), {
    configFile: undefined,
    timeSeconds: 120,
    argsize: 0,
    iterate: { mode: 'estimate' },
    resources: undefined,
    resultsDir: './perf-results',
    mlflowUri: undefined,
    mlflowExperiment: 'tsflow-perf',
    monitoring: false,
    resourceIntervalMs: undefined,
    monitoringDb: undefined,
    warnings: [],
  })
})

t.test('--monitoring is a switch; its interval and database need it', async (t) => {
  const o = parse('--monitoring', '--resource-interval-ms', '250', '--monitoring-db=/tmp/m.db')
  t.equal(o.monitoring, true)
  t.equal(o.resourceIntervalMs, 250)
  t.equal(o.monitoringDb, '/tmp/m.db')
  t.same(parse('--monitoring').resourceIntervalMs, undefined, 'the option default applies')
  t.match(usageError(t, ['--resource-interval-ms', '250']), '--resource-interval-ms needs --monitoring')
  t.match(usageError(t, ['--monitoring-db', 'x.db']), '--monitoring-db needs --monitoring')
  t.match(usageError(t, ['--monitoring', '--resource-interval-ms', '5']), '--resource-interval-ms expects a whole number of ms from 10 to 2147483647 (got "5")')
  t.match(usageError(t, ['--monitoring=yes']), '--monitoring takes no value')
  t.match(USAGE, '--monitoring ')
})

t.test('each flag, with a separate value or after =', async (t) => {
  const o = parse(
    '--config', 'cfg.mjs',
    '--time=0.5',
    '--argsize', '1024',
    '--iterate', 'exponential',
    '--resources', '{"cores":2,"memoryMb":100,"gpus":0}',
    '--results-dir=/tmp/out',
    '--mlflow-uri', 'http://127.0.0.1:5000/',
    '--mlflow-experiment', 'laptop runs',
  )
  t.equal(o.configFile, 'cfg.mjs')
  t.equal(o.timeSeconds, 0.5)
  t.equal(o.argsize, 1024)
  t.same(o.iterate, { mode: 'exponential' })
  t.same(o.resources, { cores: 2, memoryMb: 100, gpus: 0 })
  t.equal(o.resultsDir, '/tmp/out')
  t.equal(o.mlflowUri, 'http://127.0.0.1:5000', 'trailing slash dropped')
  t.equal(o.mlflowExperiment, 'laptop runs')
  t.same(parse('--iterate', 'estimate').iterate, { mode: 'estimate' })
  t.equal(parse('--time', '30', '--time', '60').timeSeconds, 60, 'the last of a repeated flag wins')
})

t.test('--iterate takes an explicit list of batch sizes', async (t) => {
  t.same(parse('--iterate', '50,200').iterate, { mode: 'list', sizes: [50, 200] })
  t.same(parse('--iterate', '100').iterate, { mode: 'list', sizes: [100] })
  t.same(parse('--iterate', ' 10 , 20 ,30').iterate, { mode: 'list', sizes: [10, 20, 30] })
  t.match(usageError(t, ['--iterate', '10,0']), /--iterate expects estimate, exponential or a comma-separated list.*"0" is not a positive whole number/)
  t.match(usageError(t, ['--iterate', '10,,20']), /"" is not a positive whole number/)
  t.match(usageError(t, ['--iterate', '1.5']), /--iterate expects .*got "1.5"/)
  t.match(usageError(t, ['--iterate', 'estimated']), /--iterate expects estimate, exponential or a comma-separated list of task counts like 100,1000 \(got "estimated"\)/)
})

t.test('--time: seconds > 0, fractions allowed, nothing else', async (t) => {
  t.equal(parse('--time', '.25').timeSeconds, 0.25)
  t.equal(parse('--time', '1e1').timeSeconds, 10)
  for (const bad of ['0', '-1', 'abc', '10s', 'Infinity', '0x10', '']) {
    t.match(usageError(t, ['--time', bad]), /^--time expects a number of seconds > 0, e.g. 120 or 0.5 \(got ".*"\)$/, `--time ${JSON.stringify(bad)}`)
  }
})

t.test('--argsize: whole bytes >= 0, at most 1 GiB', async (t) => {
  t.equal(parse('--argsize', '0').argsize, 0)
  t.equal(parse('--argsize', '1e6').argsize, 1_000_000)
  t.match(usageError(t, ['--argsize', '-1']), /--argsize expects a whole number of bytes >= 0 \(got "-1"\)/)
  t.match(usageError(t, ['--argsize', '1.5']), /--argsize expects a whole number of bytes/)
  t.match(usageError(t, ['--argsize', '10kb']), /--argsize expects a whole number of bytes/)
  t.match(usageError(t, ['--argsize', String(2 ** 31)]), /--argsize must be at most 1073741824/)
})

t.test('--resources: a JSON object with known keys and sane values', async (t) => {
  t.same(parse('--resources', '{}').resources, {})
  t.same(parse('--resources', '{"cores":0.5}').resources, { cores: 0.5 })
  t.match(usageError(t, ['--resources', '{cores:1}']), /^--resources expects a JSON object like '\{"cores":1,"memoryMb":100,"gpus":0\}'; "\{cores:1\}" is not valid JSON: /)
  t.match(usageError(t, ['--resources', '[1]']), /--resources expects a JSON object .*\(got an array\)/)
  t.match(usageError(t, ['--resources', '3']), /--resources expects a JSON object .*\(got 3\)/)
  t.match(usageError(t, ['--resources', '{"memory":0}']), /--resources: unknown key "memory" \(did you mean "memoryMb"\?\); known keys: cores, memoryMb, gpus/)
  t.match(usageError(t, ['--resources', '{"disk":0}']), /--resources: unknown key "disk"; known keys: cores, memoryMb, gpus/)
  t.match(usageError(t, ['--resources', '{"cores":0}']), /--resources: "cores" must be a number > 0 \(got 0\)/)
  t.match(usageError(t, ['--resources', '{"gpus":1.5}']), /"gpus" must be a whole number >= 0 \(got 1.5\)/)
  t.match(usageError(t, ['--resources', '{"memoryMb":"1G"}']), /"memoryMb" must be a number of MB > 0 \(got "1G"\)/)
  t.match(usageError(t, ['--resources', '{"__proto__":1}']), /unknown key "__proto__"/)
})

t.test('MLflow: flag or MLFLOW_TRACKING_URI; only http(s) URIs', async (t) => {
  const fromEnv = parsePerfArgs([], { MLFLOW_TRACKING_URI: 'https://mlflow.example.org' }) as PerfOptions
  t.equal(fromEnv.mlflowUri, 'https://mlflow.example.org')
  const flagWins = parsePerfArgs(['--mlflow-uri', 'http://a:1'], { MLFLOW_TRACKING_URI: 'http://b:2' }) as PerfOptions
  t.equal(flagWins.mlflowUri, 'http://a:1')
  const fileUri = parsePerfArgs([], { MLFLOW_TRACKING_URI: 'file:///tmp/mlruns' }) as PerfOptions
  t.equal(fileUri.mlflowUri, undefined, 'a file store in the environment is not usable: warn, do not fail')
  t.match(fileUri.warnings[0], /MLFLOW_TRACKING_URI .*"file:\/\/\/tmp\/mlruns" is a file URI, which the REST sink cannot use; not logging to MLflow/)
  t.match(usageError(t, ['--mlflow-uri', 'not a url']), /--mlflow-uri expects an http\(s\) URL of an MLflow tracking server, e.g. http:\/\/127.0.0.1:5000 \(got "not a url"\)/)
  t.match(usageError(t, ['--mlflow-uri', 'databricks://x']), /is a databricks URI/)
  t.match(usageError(t, ['--mlflow-experiment', '']), /--mlflow-experiment expects an MLflow experiment name \(got an empty value\)/)
})

t.test('unknown flags, stray words and missing values name the flag', async (t) => {
  t.match(usageError(t, ['--tim', '3']), /^unknown flag --tim \(did you mean --time\?\); known flags: --config --time --argsize --iterate --resources --results-dir --mlflow-uri --mlflow-experiment --resource-interval-ms --monitoring-db --monitoring --help --version$/)
  t.match(usageError(t, ['--frobnicate']), /^unknown flag --frobnicate; known flags:/)
  t.match(usageError(t, ['-t', '3']), /unexpected argument "-t"; all options are flags/)
  t.match(usageError(t, ['config.mjs']), /unexpected argument "config.mjs"/)
  t.match(usageError(t, ['--time']), /^--time needs a value \(a number of seconds > 0, e.g. 120 or 0.5\)$/)
  t.match(usageError(t, ['--config', '--time', '3']), /^--config needs a value \(a path to a config module\)$/)
  t.match(usageError(t, ['--config=']), /--config expects a path to a config module \(got an empty value\)/)
})

t.test('--help and --version', async (t) => {
  t.equal(parsePerfArgs(['--time', '3', '--help'], noEnv), 'help')
  t.equal(parsePerfArgs(['-h'], noEnv), 'help')
  t.equal(parsePerfArgs(['--version'], noEnv), 'version')
  for (const flag of ['--config', '--time', '--argsize', '--iterate', '--resources', '--results-dir', '--mlflow-uri', '--mlflow-experiment']) {
    t.match(USAGE, flag, `usage documents ${flag}`)
  }
})
