// Launchers are string builders: check their text, and run the single_node text with bash to
// check how copies and exit statuses combine. The text of srun, aprun and jsrun is checked here
// (and the rank prelude they embed is run with each tool's variables set); mpiexec, mpirun and
// wrapped run for real in test/launchers/. Build first: `npm run build:ts`.

import { spawnSync } from 'node:child_process'

import t from 'tap'

import { AprunLauncher, ConfigError, JsrunLauncher, LAUNCHER_TYPES, MpiExecLauncher, MpiRunLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher, WrappedLauncher } from 'tsflow'
import { APRUN_RANKS, JSRUN_RANKS, launcherOption, MPI_RANKS, rankPrelude, shellQuote, SRUN_RANKS, type RankSources } from '../../dist/launchers/index.js'

function runBash(script: string, env: Record<string, string> = {}): { status: number | null; stdout: string } {
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 10_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } })
  return { status: result.status, stdout: result.stdout }
}

const RANKS = 'echo "$TSFLOW_RANK:$TSFLOW_NODE_RANK:$TSFLOW_LOCAL_RANK"'

/** The launcher line with its bash -c word taken apart: [flags before bash -c, the copy's script]. */
function split(line: string): [string, string] {
  const at = line.indexOf(' bash -c ')
  const word = line.slice(at + ' bash -c '.length)
  // The word is one shellQuote()d string: let bash unquote it.
  return [line.slice(0, at), runBash(`printf %s ${word}`).stdout]
}

t.test('shellQuote makes one bash word of anything', async (t) => {
  for (const text of ['plain', 'two words', "it's", '$HOME `x` "q"', 'a\nb', '', "'''"]) {
    t.equal(runBash(`printf %s ${shellQuote(text)}`).stdout, text, JSON.stringify(text))
  }
  t.equal(shellQuote('--flag=a/b.c'), '--flag=a/b.c', 'safe words stay bare')
})

t.test('single_node: one copy is the command itself', async (t) => {
  const launcher = new SingleNodeLauncher()
  t.equal(launcher.wrap('manager --block 3', 1, 1), 'manager --block 3')
  t.same(launcher.describe(), { type: 'single_node' })
})

t.test('single_node: n copies run side by side with their ranks', async (t) => {
  const text = new SingleNodeLauncher().wrap('echo "$TSFLOW_RANK:$TSFLOW_NODE_RANK:$TSFLOW_LOCAL_RANK"', 2, 3)
  const { status, stdout } = runBash(text)
  t.equal(status, 0)
  t.same(stdout.trim().split('\n').sort(), ['0:0:0', '1:0:1', '2:1:0', '3:1:1', '4:2:0', '5:2:1'])
})

t.test('single_node: the block fails with the first failing copy, after all copies ended', async (t) => {
  const text = new SingleNodeLauncher().wrap('sleep 0.$TSFLOW_RANK; echo ran-$TSFLOW_RANK; [ $TSFLOW_RANK -eq 1 ] && exit 7; [ $TSFLOW_RANK -eq 2 ] && exit 9; exit 0', 1, 3)
  const { status, stdout } = runBash(text)
  t.equal(status, 7)
  t.same(stdout.trim().split('\n').sort(), ['ran-0', 'ran-1', 'ran-2'], 'no copy was cut short')
  t.equal(runBash(new SingleNodeLauncher().wrap('true', 3, 1)).status, 0)
})

t.test('single_node: multi-line commands and exit inside a copy stay in that copy', async (t) => {
  const text = new SingleNodeLauncher().wrap('cd /\nif [ "$TSFLOW_RANK" = 0 ]; then\n  exit 0\nfi\necho "$PWD"', 2, 1)
  const { status, stdout } = runBash(`${text}\necho "after $?"`)
  t.equal(status, 0)
  t.equal(stdout, '/\nafter 0\n', 'the launcher text does not exit the surrounding script')
})

t.test('simple: the command verbatim, whatever the counts', async (t) => {
  const launcher = new SimpleLauncher()
  t.equal(launcher.wrap('mpirun ./app', 4, 8), 'mpirun ./app')
})

t.test('srun: counts, overrides, the rank prelude and the command as one quoted word', async (t) => {
  const [flags, script] = split(new SrunLauncher().wrap('manager --x', 1, 4))
  t.equal(flags, 'srun --ntasks=4 --ntasks-per-node=1 --nodes=4')
  t.equal(script, `${rankPrelude(SRUN_RANKS, 1)}\nmanager --x`)
  const launcher = new SrunLauncher({ overrides: ' --cpu-bind=none --exclusive ' })
  launcher.validate('l')
  const [flags2, script2] = split(launcher.wrap("echo 'hi'\nmanager", 2, 3))
  t.equal(flags2, 'srun --ntasks=6 --ntasks-per-node=2 --nodes=3 --cpu-bind=none --exclusive')
  t.ok(script2.endsWith("\necho 'hi'\nmanager"), 'multi-line command with its quotes intact')
  t.same(launcher.describe(), { type: 'srun', overrides: '--cpu-bind=none --exclusive' })
})

t.test('mpiexec and mpirun: mpich and openmpi spellings of copies per node', async (t) => {
  t.equal(split(new MpiExecLauncher().wrap('m', 2, 3))[0], 'mpiexec -n 6 -ppn 2')
  t.equal(split(new MpiExecLauncher({ flavor: 'openmpi', overrides: '--bind-to none' }).wrap('m a', 2, 3))[0], 'mpiexec -n 6 --map-by ppr:2:node --bind-to none')
  t.equal(split(new MpiRunLauncher().wrap('m', 2, 3))[0], 'mpirun -np 6 --map-by ppr:2:node', 'mpirun defaults to Open MPI')
  t.equal(split(new MpiRunLauncher({ flavor: 'mpich' }).wrap('m', 4, 1))[0], 'mpirun -np 4 -ppn 4')
  t.equal(split(new MpiRunLauncher().wrap("a 'b'\nc", 1, 1))[1], `${rankPrelude(MPI_RANKS, 1)}\na 'b'\nc`)
  t.same(new MpiRunLauncher().describe(), { type: 'mpirun', flavor: 'openmpi', overrides: '' })
})

t.test('aprun: -n copies, -N per node, overrides', async (t) => {
  const launcher = new AprunLauncher({ overrides: '-cc none -d 4' })
  launcher.validate('l')
  const [flags, script] = split(launcher.wrap('manager "$X"\nnext', 2, 3))
  t.equal(flags, 'aprun -n 6 -N 2 -cc none -d 4')
  t.equal(script, `${rankPrelude(APRUN_RANKS, 2)}\nmanager "$X"\nnext`)
  t.same(launcher.describe(), { type: 'aprun', overrides: '-cc none -d 4' })
})

t.test('jsrun: one resource set per copy, -r per node, -c/-g/--bind from options', async (t) => {
  t.equal(split(new JsrunLauncher().wrap('m', 2, 3))[0], 'jsrun -n 6 -r 2 -a 1')
  const launcher = launcherOption({ type: 'jsrun', cpusPerCopy: 7, gpusPerCopy: 1, bind: 'packed:7', overrides: '--smpiargs=none' }, 'p.launcher')
  const [flags, script] = split(launcher.wrap('m', 6, 2))
  t.equal(flags, 'jsrun -n 12 -r 6 -a 1 -c 7 -g 1 --bind packed:7 --smpiargs=none')
  t.equal(script, `${rankPrelude(JSRUN_RANKS, 6)}\nm`)
  t.equal(split(new JsrunLauncher({ cpusPerCopy: 'ALL_CPUS', gpusPerCopy: 0 }).wrap('m', 1, 1))[0], 'jsrun -n 1 -r 1 -a 1 -c ALL_CPUS -g 0')
  t.throws(() => launcherOption({ type: 'jsrun', cpusPerCopy: 0 }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.cpusPerCopy' })
  t.throws(() => launcherOption({ type: 'jsrun', gpus: 1 }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.gpus', message: /gpusPerCopy/ })
})

t.test('the rank prelude maps each tool\'s variables onto TSFLOW_*', async (t) => {
  const cases: [string, RankSources, number, Record<string, string>, string][] = [
    ['srun', SRUN_RANKS, 2, { SLURM_PROCID: '5', SLURM_NODEID: '2', SLURM_LOCALID: '1' }, '5:2:1'],
    ['Open MPI', MPI_RANKS, 4, { OMPI_COMM_WORLD_RANK: '6', OMPI_COMM_WORLD_LOCAL_RANK: '2' }, '6:1:2'],
    ['MPICH Hydra', MPI_RANKS, 3, { PMI_RANK: '4', MPI_LOCALRANKID: '1' }, '4:1:1'],
    ['Cray PALS', MPI_RANKS, 8, { PALS_RANKID: '9', PALS_NODEID: '1', PALS_LOCAL_RANKID: '1' }, '9:1:1'],
    ['aprun', APRUN_RANKS, 4, { ALPS_APP_PE: '5' }, '5:1:1'],
    ['jsrun', JSRUN_RANKS, 6, { JSM_NAMESPACE_RANK: '7', JSM_NAMESPACE_LOCAL_RANK: '1' }, '7:1:1'],
  ]
  for (const [tool, sources, perNode, env, expected] of cases) {
    t.equal(runBash(`${rankPrelude(sources, perNode)}\n${RANKS}`, env).stdout, `${expected}\n`, tool)
  }
  t.equal(runBash(`${rankPrelude(MPI_RANKS, 2)}\n${RANKS}; echo "\${TSFLOW_RANK-unset}"`).stdout, '::\nunset\n', 'no rank variable: nothing exported')
  t.equal(runBash(`set -u\n${rankPrelude(APRUN_RANKS, 2)}\necho ok`).stdout, 'ok\n', 'safe under set -u')
})

t.test('wrapped: each copy runs under the prefix, string or argv', async (t) => {
  const text = new WrappedLauncher({ prefix: ['env', 'A=it s'] }).wrap('echo "$A"', 1, 1)
  t.match(text, /env 'A=it s' bash -c /)
  t.equal(runBash(text).stdout, 'it s\n')
  t.same(new WrappedLauncher({ prefix: ' nice -n 5 ' }).describe(), { type: 'wrapped', prefix: 'nice -n 5' })
  t.throws(() => launcherOption({ type: 'wrapped' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.prefix', message: /required/ })
  t.throws(() => launcherOption({ type: 'wrapped', prefix: [] }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.prefix' })
  t.throws(() => launcherOption({ type: 'wrapped', prefix: '  ' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.prefix' })
  t.throws(() => launcherOption({ type: 'wrapped', prefix: 'env A=1\nrm -rf x' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.prefix' })
  const multi = new WrappedLauncher({ prefix: ['env', 'A=line1\nline2'] })
  t.equal(runBash(multi.wrap('printf %s "$A"', 1, 1)).stdout, 'line1\nline2', 'argv elements may hold line breaks')
  t.throws(() => launcherOption({ type: 'wrapped', prefx: 'env' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.prefx', message: /did you mean 'prefix'/ })
})

t.test('bad counts or an empty command are ConfigErrors', async (t) => {
  const all = [new SingleNodeLauncher(), new SimpleLauncher(), new WrappedLauncher({ prefix: 'env' }), new SrunLauncher(), new MpiExecLauncher(), new MpiRunLauncher(), new AprunLauncher(), new JsrunLauncher()]
  t.same(all.map((launcher) => launcher.type), [...LAUNCHER_TYPES], 'one class per type name')
  for (const launcher of all) {
    t.throws(() => launcher.wrap('x', 0, 1), { code: 'E_CONFIG', path: 'tasksPerNode' }, `${launcher.type} tasksPerNode`)
    t.throws(() => launcher.wrap('x', 1, 1.5), { code: 'E_CONFIG', path: 'nodesPerBlock' }, `${launcher.type} nodesPerBlock`)
    t.throws(() => launcher.wrap('  ', 1, 1), ConfigError, `${launcher.type} empty command`)
  }
})

t.test('launcherOption: objects, type names and { type, ...options }', async (t) => {
  const instance = new SimpleLauncher()
  t.equal(launcherOption(instance, 'p.launcher'), instance)
  t.equal(launcherOption('srun', 'p.launcher').type, 'srun')
  const mpi = launcherOption({ type: 'mpiexec', flavor: 'openmpi' }, 'p.launcher')
  t.same(mpi.describe(), { type: 'mpiexec', flavor: 'openmpi', overrides: '' })
  t.throws(() => launcherOption({ type: 'mpiexec', flavor: 'lam' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.flavor' })
  t.throws(() => launcherOption(new SrunLauncher({ overrides: 3 as unknown as string }), 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.overrides' })
  t.throws(() => launcherOption(7, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher', message: /'single_node', 'simple', 'wrapped', 'srun', 'mpiexec', 'mpirun', 'aprun', 'jsrun'/ })
  for (const type of LAUNCHER_TYPES) {
    const options = type === 'wrapped' ? { type, prefix: 'env' } : { type }
    t.equal(launcherOption(options, 'p.launcher').type, type, `{ type: '${type}' } resolves`)
    if (type !== 'wrapped') t.equal(launcherOption(type, 'p.launcher').type, type, `'${type}' resolves`)
  }
  t.equal(launcherOption({ type: 'mpirun', overrides: '--oversubscribe' }, 'p.launcher').describe().overrides, '--oversubscribe')
  t.throws(() => launcherOption({ type: 'aprun', overides: '-q' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.overides', message: /did you mean 'overrides'/ })
  t.throws(() => launcherOption({ type: 'mpirun', flavor: 'lam' }, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher.flavor' })
})
