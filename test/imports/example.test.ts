// examples/proxy-imports.ts, run as a user runs it (as root: its worker's node is a fake host, a
// network namespace on which mathjs and its dependencies are hidden). Without proxy imports the
// task must fail with the worker's import error naming the package; with them it must run there.
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { netnsHostDown, netnsHostUnavailable } from '../../bench/lib/netns-host.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const example = join(root, 'out/examples/proxy-imports.js')

/** The fake hosts the example makes are named tsfex<pid>: none may outlive it. */
function exampleHosts(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith('tsfex'))
}

const why = netnsHostUnavailable()
if (why) {
  t.test('examples/proxy-imports.ts', { skip: `skipped: its worker runs on a fake host, which ${why} (CI runs it as root)` }, () => {})
} else {
  const cwd = mkdtempSync(join(tmpdir(), 'tsflow-proxy-imports-example-'))
  const before = exampleHosts()
  t.teardown(() => {
    // an example that crashed may have left its fake host: remove those this test made
    for (const name of exampleHosts()) if (!before.includes(name)) netnsHostDown(name)
    rmSync(cwd, { recursive: true, force: true })
  })
  // the pack cache (kept across runs by design, under $XDG_CACHE_HOME) goes into the temp dir too
  const env = { ...process.env, NODE_OPTIONS: '', XDG_CACHE_HOME: join(cwd, 'cache') }

  t.test('without proxy imports the worker cannot import the hidden package', async (t) => {
    const { stdout } = await run(process.execPath, [example, '--without'], { cwd, env, timeout: 120_000 })
    t.match(stdout, /hidden on the worker's node: mathjs, .*typed-function/)
    t.match(stdout, /here: det\(\[1, 2; 3, 4\]\) \+ sqrt\(-4\) = -2 \+ 2i/, 'the submit side has mathjs')
    t.match(stdout, /without proxy imports the task fails: .*Cannot find package '[^']*node_modules\/mathjs\b/)
    t.match(stdout, /the worker's manager ran on: tsfex\d+\n/)
    t.notMatch(stdout, /in the task:/)
    t.same(exampleHosts(), before, 'the fake host is gone')
  })

  t.test('with proxy imports the package travels with the task and runs there', async (t) => {
    const { stdout } = await run(process.execPath, [example], { cwd, env, timeout: 120_000 })
    t.match(stdout, /here: det\(\[1, 2; 3, 4\]\) \+ sqrt\(-4\) = -2 \+ 2i/)
    t.match(stdout, /in the task: -2 \+ 2i \(on tsfex\d+\)\n/, 'mathjs ran on the fake host')
    t.match(stdout, /the worker's manager ran on: tsfex\d+\n/)
    t.same(exampleHosts(), before, 'the fake host is gone')
    t.same(readdirSync(tmpdir()).filter((name) => name.startsWith('tsflow-example-imports-')), [], 'its node cache is removed')
  })
}
