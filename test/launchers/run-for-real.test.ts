// The launchers whose tool exists here, run for real: wrapped under real prefixes (env, nice),
// and mpiexec / mpirun under Debian's Open MPI. Each checks that every copy runs with its ranks,
// that a multi-line command with quotes arrives intact, and that a failing copy fails the block.
// Open MPI refuses to run as root: the mpiexec test allows it through the environment
// (OMPI_ALLOW_RUN_AS_ROOT and _CONFIRM), the mpirun test through the launcher's overrides
// (--allow-run-as-root); both need --oversubscribe for 3 copies on a 2-core machine.

import { spawnSync } from 'node:child_process'

import t, { type Test } from 'tap'

import { MpiExecLauncher, MpiRunLauncher, WrappedLauncher, type Launcher } from 'tsflow'

function run(script: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

function has(tool: string): boolean {
  return spawnSync('bash', ['-c', `command -v ${tool}`]).status === 0
}

// Quotes of both kinds, a $ that must reach the copy unexpanded, and several lines.
const QUOTED = `msg='it'"'"'s "quoted" $notexpanded'\nprintf '%s|%s|%s|%s\\n' "$TSFLOW_RANK" "$TSFLOW_NODE_RANK" "$TSFLOW_LOCAL_RANK" "$msg"`

function expectRanks(t: Test, launcher: Launcher, tasksPerNode: number, nodesPerBlock: number, env: Record<string, string>, expected: string[]): void {
  const { status, stdout, stderr } = run(launcher.wrap(QUOTED, tasksPerNode, nodesPerBlock), env)
  t.equal(status, 0, `${launcher.type}: the block succeeds (stderr: ${stderr.slice(0, 500)})`)
  t.same(stdout.trim().split('\n').sort(), expected.map((ranks) => `${ranks}|it's "quoted" $notexpanded`), `${launcher.type}: every copy ran with its ranks`)
}

function expectFailure(t: Test, launcher: Launcher, copies: number, env: Record<string, string>): void {
  const failing = `echo "ran $TSFLOW_RANK"\nif [ "$TSFLOW_RANK" = 1 ]; then exit 3; fi\nexit 0`
  const { status, stdout } = run(launcher.wrap(failing, copies, 1), env)
  t.equal(status, 3, `${launcher.type}: the failing copy's status is the block's`)
  t.match(stdout, /ran 1/, `${launcher.type}: the failing copy ran`)
  t.equal(run(launcher.wrap('exit 0', copies, 1), env).status, 0, `${launcher.type}: all copies succeeding is success`)
}

t.test('wrapped under env -i: ranks reach copies as arguments, not through the environment', async (t) => {
  // env -i empties the environment, as a container runtime that passes none on would.
  const launcher = new WrappedLauncher({ prefix: ['env', '-i', 'PATH=/usr/bin:/bin'] })
  expectRanks(t, launcher, 2, 2, {}, ['0|0|0', '1|0|1', '2|1|0', '3|1|1'])
  const leak = run(launcher.wrap('echo "[$SECRET]"', 1, 1), { SECRET: 'x' })
  t.equal(leak.stdout, '[]\n', 'the prefix really ran (it emptied the environment)')
  expectFailure(t, launcher, 3, {})
})

t.test('wrapped under nice -n 5 (a string prefix): each copy runs under the prefix', async (t) => {
  const launcher = new WrappedLauncher({ prefix: 'nice -n 5' })
  const base = Number(run('nice').stdout.trim())
  const { status, stdout } = run(launcher.wrap('echo "$TSFLOW_RANK $(nice)"', 3, 1))
  t.equal(status, 0)
  t.same(stdout.trim().split('\n').sort(), [0, 1, 2].map((rank) => `${rank} ${Math.min(base + 5, 19)}`))
})

const openMpi = has('mpiexec') && has('mpirun') && /Open MPI/.test(spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout ?? '')
const asRoot = { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }

t.test('mpiexec under Open MPI: copies, ranks from OMPI_COMM_WORLD_*, failure', { skip: openMpi ? false : 'Open MPI (openmpi-bin) is not installed' }, async (t) => {
  const launcher = new MpiExecLauncher({ flavor: 'openmpi', overrides: '--oversubscribe' })
  launcher.validate('launcher')
  expectRanks(t, launcher, 3, 1, asRoot, ['0|0|0', '1|0|1', '2|0|2'])
  expectFailure(t, launcher, 3, asRoot)
})

t.test('mpirun under Open MPI (its default flavor), root allowed by overrides', { skip: openMpi ? false : 'Open MPI (openmpi-bin) is not installed' }, async (t) => {
  const launcher = new MpiRunLauncher({ overrides: '--allow-run-as-root --oversubscribe' })
  launcher.validate('launcher')
  expectRanks(t, launcher, 3, 1, {}, ['0|0|0', '1|0|1', '2|0|2'])
  expectFailure(t, launcher, 3, {})
  const single = run(new MpiRunLauncher({ overrides: '--allow-run-as-root' }).wrap('echo "one $TSFLOW_RANK"', 1, 1))
  t.equal(single.stdout, 'one 0\n', 'one copy')
})
