// The producer-consumer programs (examples/producer-consumer/) on the embedded local default,
// at tiny sizes, run as users run them; and the parts a wrong result would come from.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { checkRun, root, runProgram, SCHEME } from '../helpers/producer-consumer.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-pc-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const wave = await import(join(root, 'out/examples/producer-consumer/wave.js'))
const common = await import(join(root, 'out/examples/producer-consumer/common.js'))

t.test('the data size is printed as the seed prints it', async (t) => {
  const size = (numSims: number, gridSize: number) => common.fixed(common.gigabytes(common.dataBytes({ numSims, gridSize })), 2)
  t.equal(size(32, 512), '0.62', "the seed's 0.62 GB for 32 x 512")
  t.equal(size(64, 512), '1.25')
  t.equal(size(256, 512), '5.00')
  t.equal(common.fixed(0.125, 2), '0.12', 'ties round to even, as Python')
  t.equal(common.fixed(0.375, 2), '0.38')
})

t.test('the trainer recovers the wave scheme from simulations, and not from broken data', async (t) => {
  const grid = 24
  const good = new wave.StencilTrainer(grid)
  for (let i = 0; i < 3; i++) good.add(wave.simulate(i, grid))
  const model = good.fit()
  t.ok(Math.max(...SCHEME.map((c, i) => Math.abs(model.coefficients[i] - c))) < 1e-8, `coefficients ${model.coefficients}`)
  t.equal(model.samples, 3 * 8 * 22 * 22)
  // The same data with two levels swapped (what a reader that mixed up offsets would train on).
  const broken = new wave.StencilTrainer(grid)
  for (let i = 0; i < 3; i++) {
    const levels = wave.simulate(i, grid)
    const n = grid * grid
    const level3 = levels.slice(3 * n, 4 * n)
    levels.copyWithin(3 * n, 5 * n, 6 * n)
    levels.set(level3, 5 * n)
    broken.add(levels)
  }
  const wrong = broken.fit()
  t.ok(Math.max(...SCHEME.map((c, i) => Math.abs(wrong.coefficients[i] - c))) > 1e-2, `broken data give other coefficients (${wrong.coefficients})`)
  t.ok(wrong.rmse > 1e-3, 'and a large residual')
  t.throws(() => new wave.StencilTrainer(grid + 1).add(wave.simulate(0, grid)), /another --grid-size/)
})

for (const variant of ['futures', 'filesystem']) {
  t.test(`${variant}.js on the embedded local default`, async (t) => {
    const cwd = mkdtempSync(join(scratch, `${variant}-`))
    const run = await runProgram(variant, ['--num-sims', '4', '--grid-size', '32'], { cwd })
    const models = checkRun(t, run, variant, 4, 32, 2)
    t.match(run.stdout, /^Executor: ThreadPoolExecutor threads, 2 threads; 2 workers on 1 node$/m)
    t.equal(run.result.nodes, 1)
    for (const path of run.result.models) t.ok(path.startsWith(join(cwd, 'runinfo')), 'models in the run directory by default')
    t.same(new Set(models.map((m) => m.variant)), new Set([variant]))
    if (variant === 'filesystem') t.notOk(existsSync(run.result.dataDir), 'the data files are removed without --keep')
  })
}

t.test('filesystem.js --dir --keep --fsync --workers --out: the files stay, raw float64 of the right size', async (t) => {
  const cwd = mkdtempSync(join(scratch, 'fs-keep-'))
  const dir = join(cwd, 'shared')
  const out = join(cwd, 'models')
  const run = await runProgram('filesystem', ['--num-sims', '3', '--grid-size', '20', '--dir', dir, '--keep', '--fsync', '--workers', '3', '--out', out], { cwd })
  checkRun(t, run, 'filesystem', 3, 20, 3)
  t.match(run.stdout, /each file fsync-ed/)
  t.same(readdirSync(dir).sort(), ['sim-0.f64', 'sim-1.f64', 'sim-2.f64'])
  for (const file of readdirSync(dir)) t.equal(statSync(join(dir, file)).size, 20 * 20 * 10 * 8)
  t.same(readdirSync(out).sort(), ['filesystem-model-0.json', 'filesystem-model-1.json', 'filesystem-model-2.json'])
})

t.test('a wrong flag is a usage error (exit 2) naming it; --help prints the flags', async (t) => {
  const cwd = mkdtempSync(join(scratch, 'usage-'))
  const bad = await runProgram('futures', ['--grid-size', 'big'], { cwd })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /futures: --grid-size must be a positive integer \(got "big"\)/)
  const unknown = await runProgram('futures', ['--dir', 'x'], { cwd })
  t.equal(unknown.code, 2, '--dir belongs to the filesystem variant only')
  t.match(unknown.stderr, /Unknown option '--dir'/)
  const missing = await runProgram('filesystem', ['--config', join(cwd, 'nope.mjs')], { cwd })
  t.equal(missing.code, 2)
  t.match(missing.stderr, /--config .*nope\.mjs: no such file/)
  const help = await runProgram('filesystem', ['--help'], { cwd })
  t.equal(help.code, 0)
  t.match(help.stdout, /--num-sims N\s+simulations \(default 32\)/)
  t.match(help.stdout, /--fsync/)
  t.same(readdirSync(cwd), [], 'nothing started, nothing written')
})

t.test('one npm script per program, running the built file', async (t) => {
  const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  for (const variant of ['futures', 'filesystem', 'ddict']) {
    t.equal(scripts[`pc:${variant}`], `node out/examples/producer-consumer/${variant}.js`)
    t.ok(existsSync(join(root, `out/examples/producer-consumer/${variant}.js`)), `${variant}.js is built by npm run build:ts (tsconfig.extras.json)`)
  }
})
