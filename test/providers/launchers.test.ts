// Launchers are string builders: check their text, and run the single_node text with bash to
// check how copies and exit statuses combine. Build first: `npx tsc -p tsconfig.build.json`.

import { spawnSync } from 'node:child_process'

import t from 'tap'

import { ConfigError } from 'tsflow'
import {
  launcherOption,
  MpiExecLauncher,
  shellQuote,
  SimpleLauncher,
  SingleNodeLauncher,
  SrunLauncher,
} from '../../dist/launchers/index.js'

function runBash(script: string): { status: number | null; stdout: string } {
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 10_000 })
  return { status: result.status, stdout: result.stdout }
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

t.test('srun: counts, overrides, and the command as one quoted word', async (t) => {
  t.equal(new SrunLauncher().wrap('manager --x', 1, 4), `srun --ntasks=4 --ntasks-per-node=1 --nodes=4 bash -c 'manager --x'`)
  const launcher = new SrunLauncher({ overrides: ' --cpu-bind=none --exclusive ' })
  launcher.validate('l')
  t.equal(
    launcher.wrap("echo 'hi'\nmanager", 2, 3),
    `srun --ntasks=6 --ntasks-per-node=2 --nodes=3 --cpu-bind=none --exclusive bash -c 'echo '\\''hi'\\''\nmanager'`,
  )
  t.same(launcher.describe(), { type: 'srun', overrides: '--cpu-bind=none --exclusive' })
})

t.test('mpiexec: mpich and openmpi spellings of copies per node', async (t) => {
  t.equal(new MpiExecLauncher().wrap('m', 2, 3), `mpiexec -n 6 -ppn 2 bash -c m`)
  t.equal(new MpiExecLauncher({ flavor: 'openmpi', overrides: '--bind-to none' }).wrap('m a', 2, 3), `mpiexec -n 6 --map-by ppr:2:node --bind-to none bash -c 'm a'`)
})

t.test('bad counts or an empty command are ConfigErrors', async (t) => {
  for (const launcher of [new SingleNodeLauncher(), new SimpleLauncher(), new SrunLauncher(), new MpiExecLauncher()]) {
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
  t.throws(() => launcherOption(7, 'p.launcher'), { code: 'E_CONFIG', path: 'p.launcher', message: /'single_node', 'simple', 'srun', 'mpiexec'/ })
})
