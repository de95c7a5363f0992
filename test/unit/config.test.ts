import t from 'tap'
import { registerExecutorType, resolveConfig, type Config } from 'tsflow'
import { ThreadPoolExecutor } from 'tsflow'
import { ConfigError } from 'tsflow'
import type { Executor } from 'tsflow'

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

const describeExecutor = (executor: unknown) => (executor as ThreadPoolExecutor).describe()

t.test('defaults', async (t) => {
  for (const resolved of [resolveConfig(), resolveConfig({}), resolveConfig(undefined)]) {
    t.equal(resolved.executors.length, 1, 'one default executor')
    t.ok(resolved.executors[0] instanceof ThreadPoolExecutor, 'a ThreadPoolExecutor')
    t.equal(resolved.executors[0]!.label, 'threads')
    t.equal(resolved.retries, 0)
    t.equal(resolved.retryHandler, undefined)
    t.equal(resolved.runDir, 'runinfo')
    t.equal(resolved.appCache, true)
    t.equal(resolved.checkpointMode, 'none')
    t.equal(resolved.checkpointPeriodMs, 30_000)
    t.same(resolved.checkpointFiles, [])
    t.equal(resolved.logLevel, 'info')
  }
})

t.test('the resolved config is frozen', async (t) => {
  const resolved = resolveConfig({ checkpointFiles: ['a'] })
  t.ok(Object.isFrozen(resolved))
  t.ok(Object.isFrozen(resolved.executors))
  t.ok(Object.isFrozen(resolved.checkpointFiles))
  t.throws(() => {
    ;(resolved as { retries: number }).retries = 5
  }, TypeError)
})

t.test('valid values pass through', async (t) => {
  const retryHandler = () => 1
  const executor = new ThreadPoolExecutor({ label: 'pool', maxThreads: 2 })
  const config: Config = {
    executors: [executor],
    retries: 3,
    retryHandler,
    runDir: '/tmp/runs',
    appCache: false,
    checkpointMode: 'periodic',
    checkpointPeriodMs: 500,
    checkpointFiles: ['runinfo/000/checkpoint'],
    logLevel: 'debug',
  }
  const resolved = resolveConfig(config)
  t.equal(resolved.executors[0], executor, 'executor instances are used as given')
  t.equal(resolved.retries, 3)
  t.equal(resolved.retryHandler, retryHandler)
  t.equal(resolved.runDir, '/tmp/runs')
  t.equal(resolved.appCache, false)
  t.equal(resolved.checkpointMode, 'periodic')
  t.equal(resolved.checkpointPeriodMs, 500)
  t.same(resolved.checkpointFiles, ['runinfo/000/checkpoint'])
  t.equal(resolved.logLevel, 'debug')
  t.equal(describeExecutor(executor).maxThreads, 2, 'the executor was validated and took its options')

  for (const mode of ['none', 'task_exit', 'periodic', 'dfk_exit', 'manual'] as const) {
    t.equal(resolveConfig({ checkpointMode: mode }).checkpointMode, mode, `checkpointMode '${mode}'`)
  }
  for (const level of ['error', 'warn', 'info', 'debug'] as const) {
    t.equal(resolveConfig({ logLevel: level }).logLevel, level, `logLevel '${level}'`)
  }
  t.equal(resolveConfig({ checkpointPeriodMs: Infinity }).checkpointPeriodMs, Infinity)
  t.equal(resolveConfig({ retries: undefined }).retries, 0, 'an undefined option takes the default')
  t.equal(resolveConfig(Object.assign(Object.create(null), { retries: 2 })).retries, 2, 'a null-prototype config is accepted')
})

t.test('non-object config', async (t) => {
  for (const [value, got] of [
    [null, 'null'],
    ['config.json', 'string'],
    [42, 'number'],
    [[], 'object'],
    [new Map(), 'object'],
    [new (class MyConfig {})(), 'object'],
    [() => ({}), 'function'],
  ] as const) {
    const error = configError(value)
    t.equal(error.path, '', `${got}: no option path`)
    t.match(error.message, /^the config must be a plain object such as \{ executors: \[\.\.\.\] \}/, `${got}: says what a config is`)
    t.match(error.message, `(got ${got})`, `${got}: says what it got`)
  }
})

t.test('every top-level option rejects a bad value, naming the option', async (t) => {
  const cases: [Record<string, unknown>, string][] = [
    [{ retries: -1 }, 'retries must be a non-negative integer (got -1)'],
    [{ retries: 1.5 }, 'retries must be a non-negative integer (got 1.5)'],
    [{ retries: '3' }, 'retries must be a non-negative integer (got "3")'],
    [{ retryHandler: 'retry' }, 'retryHandler must be a function (got "retry")'],
    [{ runDir: '' }, 'runDir must be a non-empty string (got "")'],
    [{ runDir: 7 }, 'runDir must be a non-empty string (got 7)'],
    [{ appCache: 'yes' }, 'appCache must be true or false (got "yes")'],
    [{ appCache: 1 }, 'appCache must be true or false (got 1)'],
    [{ checkpointMode: 'always' }, "checkpointMode must be one of 'none', 'task_exit', 'periodic', 'dfk_exit', 'manual' (got \"always\")"],
    [{ checkpointPeriodMs: 0 }, 'checkpointPeriodMs must be a positive number (got 0)'],
    [{ checkpointPeriodMs: -5 }, 'checkpointPeriodMs must be a positive number (got -5)'],
    [{ checkpointPeriodMs: NaN }, 'checkpointPeriodMs must be a positive number (got NaN)'],
    [{ checkpointFiles: 'runinfo/000' }, 'checkpointFiles must be an array (got "runinfo/000")'],
    [{ checkpointFiles: ['ok', 3] }, 'checkpointFiles[1] must be a non-empty string (got 3)'],
    [{ logLevel: 'verbose' }, "logLevel must be one of 'error', 'warn', 'info', 'debug' (got \"verbose\")"],
    [{ executors: 'threads' }, 'executors must be an array (got "threads")'],
    [{ executors: [] }, 'executors must be a non-empty array (got an array)'],
    [{ monitoring: { enabled: true, resourceIntervalMs: 0 } }, 'monitoring.resourceIntervalMs must be a whole number of ms from 10 to 2147483647 (got 0)'],
    [{ monitoring: { enabled: true, writerNice: 20 } }, 'monitoring.writerNice must be a nice value from 0 to 19 (default 10) (got 20)'],
    [{ monitoring: { enabled: 'yes' } }, 'monitoring.enabled must be true or false (got "yes")'],
    [{ monitoring: { enabled: true, db: '' } }, 'monitoring.db must be a non-empty string (got "")'],
    [{ monitoring: { enabled: true, retention: { maxRuns: 0 } } }, 'monitoring.retention.maxRuns must be a positive integer (got 0)'],
    [{ monitoring: { enabled: true, retention: { maxAgeDays: -1 } } }, 'monitoring.retention.maxAgeDays must be a positive number (got -1)'],
    [{ monitoring: 'on' }, 'monitoring must be true, false or { enabled, resourceIntervalMs, db, retention, writerNice } (got string)'],
  ]
  for (const [config, message] of cases) {
    const error = configError(config)
    t.equal(error.message, message, Object.keys(config)[0]!)
    t.ok(error.message.startsWith(error.path), `${Object.keys(config)[0]}: the message starts with the path`)
  }
})

t.test('unknown top-level keys get did-you-mean suggestions', async (t) => {
  const known = '(known: executors, retries, retryHandler, runDir, appCache, checkpointMode, checkpointPeriodMs, checkpointFiles, logLevel, progress, monitoring)'
  t.equal(configError({ exectors: [] }).message, `exectors is not a known option; did you mean 'executors'? ${known}`)
  t.equal(configError({ exectors: [] }).path, 'exectors')
  t.match(configError({ RunDir: 'x' }).message, /^RunDir is not a known option; did you mean 'runDir'\?/)
  t.match(configError({ logLvl: 'info' }).message, /did you mean 'logLevel'\?/)
  t.match(configError({ checkpointPeriod: 5 }).message, /did you mean 'checkpointPeriodMs'\?/)
  t.match(configError({ apCache: true }).message, /did you mean 'appCache'\?/)
  const far = configError({ foo: 1 }).message
  t.notMatch(far, /did you mean/)
  t.equal(far, `foo is not a known option ${known}`)
  t.match(configError({ retry: 3 }).message, /did you mean 'retries'\?/, "'retry' suggests 'retries'")
  // An unknown key is reported even when its value is undefined.
  t.equal(configError({ retires: undefined }).path, 'retires')
})

t.test('executor instances are validated with their index in the path', async (t) => {
  t.equal(
    configError({ executors: [new ThreadPoolExecutor({ maxThreads: 0 })] }).message,
    'executors[0].maxThreads must be a positive integer (got 0)',
  )
  const second = configError({ executors: [new ThreadPoolExecutor({ label: 'a' }), new ThreadPoolExecutor({ label: 'b', maxThreads: 1.5 })] })
  t.equal(second.path, 'executors[1].maxThreads')
  t.equal(second.message, 'executors[1].maxThreads must be a positive integer (got 1.5)')
  t.equal(
    configError({ executors: [new ThreadPoolExecutor({ label: '' })] }).message,
    'executors[0].label must be a non-empty string (got "")',
  )
  t.equal(
    configError({ executors: [new ThreadPoolExecutor({ maxBatchSize: -1 })] }).path,
    'executors[0].maxBatchSize',
  )
  const typo = configError({ executors: [new ThreadPoolExecutor({ maxThread: 2 } as never)] })
  t.equal(typo.path, 'executors[0].maxThread')
  t.match(typo.message, /^executors\[0\]\.maxThread is not a known option; did you mean 'maxThreads'\?/)
})

t.test('plain-object executor specs', async (t) => {
  const resolved = resolveConfig({ executors: [{ type: 'threads', maxThreads: 2 }] })
  t.ok(resolved.executors[0] instanceof ThreadPoolExecutor, "{ type: 'threads' } makes a ThreadPoolExecutor")
  t.equal(describeExecutor(resolved.executors[0]).maxThreads, 2, 'with its options')
  t.equal(resolved.executors[0]!.label, 'threads')

  const labelled = resolveConfig({
    executors: [
      { type: 'threads', label: 'small', maxThreads: 1 },
      { type: 'threads', label: 'big', maxThreads: 8, maxBatchSize: 16 },
    ],
  })
  t.same(
    labelled.executors.map((e) => e.label),
    ['small', 'big'],
  )
  t.equal(describeExecutor(labelled.executors[1]).maxBatchSize, 16)

  const mixed = resolveConfig({ executors: [new ThreadPoolExecutor({ label: 'a' }), { type: 'threads', label: 'b' }] })
  t.same(
    mixed.executors.map((e) => e.label),
    ['a', 'b'],
    'instances and specs can be mixed',
  )

  t.equal(
    configError({ executors: [{ type: 'threads', maxThreads: 0 }] }).message,
    'executors[0].maxThreads must be a positive integer (got 0)',
  )
  t.match(
    configError({ executors: [{ type: 'threads', maxThreds: 2 }] }).message,
    /^executors\[0\]\.maxThreds is not a known option; did you mean 'maxThreads'\?/,
  )
})

t.test('an unknown executor type names the known ones', async (t) => {
  const unknown = configError({ executors: [{ type: 'slurm', nodes: 2 }] })
  t.equal(unknown.path, 'executors[0].type')
  t.equal(unknown.message, "executors[0].type must be one of 'threads', 'htex', 'endpoint' (got \"slurm\")")
  const missing = configError({ executors: [{ maxThreads: 2 }] })
  t.equal(missing.path, 'executors[0].type')
  t.match(missing.message, /must be one of 'threads', 'htex', 'endpoint' \(got undefined\)/)
  t.match(configError({ executors: [{ type: 3 }] }).message, /\(got 3\)$/)
})

t.test('executor entries that are neither executors nor specs', async (t) => {
  for (const entry of [42, 'threads', null, [], new Date()]) {
    const error = configError({ executors: [entry] })
    t.equal(error.path, 'executors[0]', `${String(entry)}: path`)
    t.match(error.message, /^executors\[0\] must be an executor \(e\.g\. new ThreadPoolExecutor\(\)\) or \{ type: 'threads' \| 'htex' \| 'endpoint', \.\.\. \}$/)
  }
  t.equal(configError({ executors: [new ThreadPoolExecutor({ label: 'ok' }), 5] }).path, 'executors[1]')
})

t.test('duplicate executor labels', async (t) => {
  const twoDefaults = configError({ executors: [new ThreadPoolExecutor(), new ThreadPoolExecutor()] })
  t.equal(twoDefaults.path, 'executors[1].label')
  t.equal(twoDefaults.message, "executors[1].label 'threads' is already used by executors[0]; labels must be unique")

  const third = configError({
    executors: [{ type: 'threads', label: 'a' }, { type: 'threads', label: 'b' }, new ThreadPoolExecutor({ label: 'a' })],
  })
  t.equal(third.message, "executors[2].label 'a' is already used by executors[0]; labels must be unique")
})

t.test('registered executor types can be named in specs', async (t) => {
  let validatedAt = ''
  let options: Record<string, unknown> = {}
  const fake = (label: string): Executor =>
    ({
      type: 'fake',
      label,
      validate(path: string) {
        validatedAt = path
      },
      start: async () => {},
      submit: () => {},
      shutdown: async () => {},
    }) as unknown as Executor
  registerExecutorType('fake', (opts) => {
    options = opts
    return fake(String(opts.label ?? 'fake'))
  })
  const resolved = resolveConfig({ executors: [{ type: 'threads' }, { type: 'fake', label: 'f', size: 3 }] })
  t.equal(resolved.executors[1]!.label, 'f')
  t.same(options, { type: 'fake', label: 'f', size: 3 }, 'the factory gets the spec')
  t.equal(validatedAt, 'executors[1]', 'the executor is validated at its path')
  t.equal(configError({ executors: [{ type: 'nope' }] }).message, "executors[0].type must be one of 'threads', 'htex', 'endpoint', 'fake' (got \"nope\")")
  t.match(configError({ executors: [7] }).message, /\{ type: 'threads' \| 'htex' \| 'endpoint' \| 'fake', \.\.\. \}$/, 'the entry message lists registered types')
})

t.test("Parsl's option names get tsflow's, with the unit when it differs", async (t) => {
  const htex = (options: Record<string, unknown>) => configError({ executors: [{ type: 'htex', label: 'h', ...options }] }).message
  const slurm = (options: Record<string, unknown>) => htex({ provider: { type: 'slurm', partition: 'debug', ...options } })
  t.match(slurm({ nodes_per_block: 2 }), /^executors\[0\]\.provider\.nodes_per_block is not a known option; did you mean 'nodesPerBlock'\?/)
  t.match(slurm({ init_blocks: 1 }), /did you mean 'initBlocks'\?/)
  t.match(slurm({ scheduler_options: '#SBATCH --x' }), /did you mean 'schedulerOptions'\?/)
  t.match(slurm({ cmd_timeout: 10 }), /cmd_timeout is not a known option; that is Parsl's name: use 'cmdTimeoutMs' \(milliseconds; Parsl's is in seconds\)/)
  t.match(htex({ heartbeat_threshold: 120 }), /that is Parsl's name: use 'heartbeatThresholdMs' \(milliseconds; Parsl's is in seconds\)/)
  t.match(htex({ max_workers: 4 }), /that is Parsl's name: use 'maxWorkersPerNode'/)
  t.match(htex({ max_workers_per_node: 4 }), /use 'maxWorkersPerNode'/)
  t.match(htex({ worker_debug: true }), /that is Parsl's name: use 'logLevel' \(logLevel: 'debug'\)/)
  t.match(slurm({ walltime: '1:00' }), /walltime must be a walltime "HH:MM:SS" or "D-HH:MM:SS" \(got "1:00"\); two fields are ambiguous .*: write "00:01:00" or "01:00:00"/)
  t.match(htex({ constructor: 1 }), /^executors\[0\]\.constructor is not a known option \(known:/, 'no prototype lookups')
})
