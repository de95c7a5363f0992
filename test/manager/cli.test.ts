// The tsflow-manager command line and the affinity plans, plus the binary's usage errors.
import { spawnSync } from 'node:child_process'
import t from 'tap'

import { parseAffinity, planAffinity } from '../../dist/manager/affinity.js'
import { parseManagerArgs, UsageError, type ManagerOptions } from '../../dist/manager/cli.js'
import { BIN } from './harness.js'

const facts = { cpus: 8, memoryMb: 16_000 }
const base = ['--interchange', 'tcp://10.0.0.1:55001', '--block-id', '7']

function parse(...args: string[]): ManagerOptions {
  const options = parseManagerArgs([...base, ...args], facts)
  if (options === 'help') throw new Error('unexpected help')
  return options
}

t.test('defaults', async (t) => {
  const options = parse()
  t.match(options, { interchange: 'tcp://10.0.0.1:55001', blockId: '7', workers: 8, prefetch: 'auto', mode: 'processes', affinity: { kind: 'none' } })
  t.match(options.managerId, /^.+-\d+-[0-9a-f]{6}$/, 'host-pid-random')
  t.equal(options.acceleratorEnv, 'CUDA_VISIBLE_DEVICES')
  t.equal(options.heartbeatPeriodMs, undefined, 'heartbeats follow the interchange unless given')
  t.equal(parseManagerArgs(['--help'], facts), 'help')
  t.equal(options.resourceIntervalMs, 0, 'no resource sampling unless the executor monitors')
  t.equal(parse('--resource-interval-ms', '250').resourceIntervalMs, 250)
  t.equal(parse('--resource-interval-ms', '0').resourceIntervalMs, 0)
})

t.test('worker count: cores per worker, node cap, memory cap, accelerators', async (t) => {
  t.equal(parse('--cores-per-worker', '2').workers, 4)
  t.equal(parse('--cores-per-worker', '0.5').workers, 16)
  t.equal(parse('--max-workers-per-node', '3').workers, 3)
  t.equal(parse('--workers', '12', '--max-workers-per-node', '5').workers, 5)
  t.equal(parse('--mem-per-worker', '5000').workers, 3)
  t.equal(parse('--mem-per-worker', '99999').workers, 1, 'never fewer than one worker')
  t.equal(parse('--accelerators', 'g0,g1,g2').workers, 3)
  t.equal(parse('--workers=2', '--prefetch=10').prefetch, 10, '--flag=value works')
  t.equal(parse('--workers=2', '--prefetch', 'auto').prefetch, 'auto', '--prefetch auto adapts to task length')
})

t.test('usage errors name the flag and what it expects', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--bogus', '1'], /unknown flag --bogus/],
    [['--workers', '0'], /--workers must be a positive integer \(got 0\)/],
    [['--workers', 'two'], /--workers must be a positive integer \(got "two"\)/],
    [['--prefetch', '-1'], /--prefetch must be 'auto' or a non-negative integer \(got -1\)/],
    [['--prefetch', '1.5'], /--prefetch must be 'auto' or a non-negative integer/],
    [['--mode', 'fibers'], /--mode must be one of 'threads', 'processes' \(got "fibers"\)/],
    [['--affinity', 'spread'], /--affinity expects none, block, alternating or one CPU list per worker/],
    [['--workers', '3', '--affinity', '0,1;2,3'], /--affinity lists CPUs for 2 workers but there are 3/],
    [['--cores-per-worker', '0'], /--cores-per-worker must be a positive number/],
    [['--accelerators', 'a,,b'], /--accelerators\[1\] must be a non-empty string/],
    [['--accelerators', 'a,b,a'], /--accelerators lists an accelerator twice/],
    [['--accelerator-env', 'NOT-A-NAME'], /--accelerator-env expects an environment variable name/],
    [['--log-level', 'loud'], /--log-level must be one of 'error', 'warn', 'info', 'debug'/],
    [['--heartbeat-period', '5000', '--heartbeat-threshold', '5000'], /--heartbeat-threshold \(5000 ms\) must be longer than the heartbeat period/],
    [['--heartbeat-period'], /--heartbeat-period expects a value/],
    [['--workers', '1', '--workers', '2'], /--workers was given twice/],
    [['stray'], /unexpected argument 'stray'/],
    [['--resource-interval-ms', '5'], /--resource-interval-ms must be 0 \(off\) or a whole number of ms from 10 to 2147483647 \(got 5\)/],
    [['--resource-interval-ms', '-1'], /--resource-interval-ms must be 0 \(off\)/],
  ]
  for (const [args, message] of cases) t.throws(() => parse(...args), message, args.join(' '))
  t.throws(() => parseManagerArgs(['--block-id', 'b'], facts), /--interchange is required/)
  t.throws(() => parseManagerArgs(['--interchange', 'http://x', '--block-id', 'b'], facts), /--interchange expects tcp:\/\/HOST:PORT/)
  t.throws(() => parseManagerArgs(['--interchange', 'tcp://h:1'], facts), /--block-id is required/)
  t.throws(() => parse('--bogus'), UsageError)
  t.throws(() => parse('--workers', '0'), { code: 'E_USAGE' }, 'a UsageError of the error family')
})

t.test('the binary exits 2 on a bad flag, naming it', async (t) => {
  const run = spawnSync(process.execPath, [BIN, ...base, '--workers', 'lots'], { encoding: 'utf8' })
  t.equal(run.status, 2)
  t.match(run.stderr, /--workers must be a positive integer \(got "lots"\)/)
  const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' })
  t.equal(help.status, 0)
  t.match(help.stdout, /--interchange URL/)
  t.match(help.stdout, /--version/)
  const version = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' })
  t.equal(version.status, 0)
  t.equal(version.stdout, `tsflow-manager ${(await import('../../dist/protocol/version.js')).TSFLOW_VERSION}\n`, 'the version, after the whole runtime loaded')
  t.equal(spawnSync(process.execPath, [BIN, '--version', '--workers', '2'], { encoding: 'utf8' }).status, 2, '--version only alone')
})

t.test('affinity plans', async (t) => {
  const cpus = [0, 1, 2, 3, 4, 5, 6, 7]
  t.same(planAffinity({ kind: 'none' }, 2, 1, cpus), [undefined, undefined])
  t.same(planAffinity({ kind: 'block' }, 4, 2, cpus), [[0, 1], [2, 3], [4, 5], [6, 7]])
  t.same(planAffinity({ kind: 'alternating' }, 4, 2, cpus), [[0, 4], [1, 5], [2, 6], [3, 7]])
  t.same(planAffinity({ kind: 'block' }, 2, 1, [8, 9, 10, 11]), [[8], [9]], 'indices into the CPUs this process may use')
  t.same(planAffinity({ kind: 'block' }, 3, 1, [0, 1]), [[0], [1], [0]], 'wraps when workers outnumber CPUs')
  t.same(planAffinity({ kind: 'alternating' }, 2, 3, [0, 1, 2, 3]), [[0, 2], [1, 3]], 'alternating stops at the last CPU')
  t.same(parseAffinity('0,1;2-4'), { kind: 'list', cpus: [[0, 1], [2, 3, 4]] })
  t.same(planAffinity(parseAffinity('3;1'), 2, 1, cpus), [[3], [1]])
  t.throws(() => parseAffinity('0,x'))
  t.throws(() => parseAffinity('3-1'))
})
