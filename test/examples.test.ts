// The README's commands and examples, run as a user runs them.
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const cwd = mkdtempSync(join(tmpdir(), 'tsflow-examples-'))
t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
const env = { ...process.env, NODE_OPTIONS: '' }

t.test('the quick start example runs on the embedded local default', async (t) => {
  // A temp dir of its own: the quick start must leave nothing in it (it writes under runinfo/).
  const tmp = mkdtempSync(join(cwd, 'tmp-'))
  const { stdout } = await run(process.execPath, [join(root, 'out/examples/quickstart.js')], { cwd, env: { ...env, TMPDIR: tmp }, timeout: 60_000 })
  t.match(stdout, /squares: 1 4 9 16 25/)
  t.match(stdout, /bash app wrote: sum of squares: 338350/)
  t.match(stdout, /retries: succeeded on try 2/)
  t.match(stdout, /failure explained: task #\d+ \(divide\) was not run because its dependency #\d+ failed: RangeError: division by zero/)
  t.match(stdout, /20,000 tasks done, last = 399960001/)
  t.same(readdirSync(tmp), [], 'nothing left in the temp dir')
})

// The README's two forms of the workflow: each must run as a user runs it.
const forms: [string, string[]][] = [
  ['compiled from TypeScript', [join(root, 'out/examples/ensemble.js')]],
  // tsx's CLI, as `npx tsx flow.ts` runs it: the threads must get the loader too.
  ['TypeScript under tsx', [createRequire(import.meta.url).resolve('tsx/cli'), join(root, 'examples/ensemble.ts')]],
  ['plain JavaScript (.mjs)', [join(root, 'examples/ensemble.mjs')]],
]
for (const [form, args] of forms) {
  t.test(`the README workflow example runs: ${form}`, async (t) => {
    const dir = mkdtempSync(join(cwd, 'ensemble-'))
    const { stdout } = await run(process.execPath, args, { cwd: dir, env, timeout: 90_000 })
    const match = /mean ([\d.]+) exit code 0 run directory /.exec(stdout)
    t.ok(match, stdout)
    t.equal(readFileSync(join(dir, 'mean.txt'), 'utf8').trim(), match?.[1])
  })
}

t.test("the README shows the example files' code as they are", async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const blocks = [...readme.matchAll(/```(ts|js)\n([\s\S]*?)```/g)].map((m) => m[2])
  t.ok(blocks.includes(readFileSync(join(root, 'examples/ensemble.ts'), 'utf8')), 'README has examples/ensemble.ts verbatim')
  t.ok(blocks.includes(readFileSync(join(root, 'examples/ensemble.mjs'), 'utf8')), 'README has examples/ensemble.mjs verbatim')
})

// The data-layer examples (docs/proxy.md), run as a user runs them: each must print its results
// and leave nothing in its store directory (which they print), nor in a temp dir of their own.
async function runExample(t: Test, name: string): Promise<{ stdout: string; left: string[] }> {
  const dir = mkdtempSync(join(cwd, `${name}-`))
  const tmp = mkdtempSync(join(cwd, 'tmp-'))
  const { stdout } = await run(process.execPath, [join(root, `out/examples/${name}.js`)], { cwd: dir, env: { ...env, TMPDIR: tmp }, timeout: 90_000 })
  const match = /files left in (\S+): (\d+)/.exec(stdout)
  t.ok(match, stdout)
  t.equal(match?.[2], '0', 'the example says its store directory is empty')
  t.same(readdirSync(tmp), [], 'nothing left in the temp dir')
  return { stdout, left: readdirSync(resolvePath(dir, match?.[1] ?? '.')) }
}

t.test('examples/proxy-large-data.ts: proxies through a file store, a lifetime and evict-on-resolve', async (t) => {
  const { stdout, left } = await runExample(t, 'proxy-large-data')
  t.match(stdout, /a proxy travels as \d{2,3} bytes instead of 16000000 bytes/)
  t.match(stdout, /means of the four quarters: 499\.5 499\.5 499\.5 499\.5/)
  t.match(stdout, /fetched in the caller: false/)
  t.match(stdout, /objects in the store during the stage: 1\n/)
  t.match(stdout, /max of the doubled samples: 1998/)
  t.same(left, [], 'the store directory is empty')
})

t.test('examples/proxy-executor-option.ts: the same without changing the apps', async (t) => {
  const { stdout, left } = await runExample(t, 'proxy-executor-option')
  t.match(stdout, /the task sees: \[object Float64Array\] of 2000000/)
  t.match(stdout, /mean of the small array: 1\n/)
  t.match(stdout, /mean of the large array: 4\.5/)
  t.match(stdout, /the future gives: \[object Float64Array\], mean 9/)
  t.match(stdout, /fan-out means: 4\.5 4\.5 4\.5 4\.5/)
  // describe, meanOf, doubled (argument and result), meanOf(twice), the fan-out (stored once)
  t.match(stdout, /objects that went through the store: 6\n/)
  t.same(left, [], 'the store directory is empty')
})

t.test('examples/owned-proxy.ts: borrows into tasks with submitScoped, disposed with using', async (t) => {
  const { stdout, left } = await runExample(t, 'owned-proxy')
  t.match(stdout, /sums through shared borrows: 499500000 499500000 499500000; borrows out now: 0/)
  t.match(stdout, /after the mutable borrow, the owner reads data\[999\] = 499\.5/)
  t.match(stdout, /refused: E_BORROW: cannot dispose an owned proxy while it has 1 borrow\(s\)/)
  t.match(stdout, /histogram made in a task: 200000 200000 200000 200000 200000; objects in the store: 2/)
  t.same(left, [], 'the store directory is empty')
})

t.test('examples/monitored.ts, then `tsflow monitor` in the same directory, as the README says', async (t) => {
  const dir = mkdtempSync(join(cwd, 'monitored-'))
  const { stdout } = await run(process.execPath, [join(root, 'out/examples/monitored.js'), '100'], { cwd: dir, env, timeout: 90_000 })
  t.match(stdout, /98 samples measured, 2 failed; run directory /)
  t.match(stdout, /npx tsflow monitor/)
  const monitor = spawn(process.execPath, [join(root, 'dist/bin/tsflow.js'), 'monitor'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (monitor.exitCode === null && monitor.signalCode === null) monitor.kill('SIGKILL')
  })
  let printed = ''
  monitor.stdout.on('data', (chunk) => (printed += chunk))
  const deadline = Date.now() + 30_000
  while (!/http:\/\/127\.0\.0\.1:\d+\//.test(printed) && Date.now() < deadline && monitor.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 50))
  const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(printed)?.[1]
  t.ok(url, `the URL is printed: ${printed}`)
  const list = (await (await fetch(`${url}api/workflows`)).json()) as { workflows: { run: number; tasks: number; counts: Record<string, number> }[] }
  t.equal(list.workflows.length, 1, 'the run is listed')
  t.same(list.workflows[0]!.counts, { exec_done: 98, failed: 2 })
  const failed = (await (await fetch(`${url}api/workflows/${list.workflows[0]!.run}/tasks?state=failed`)).json()) as { total: number; tasks: { error?: string }[] }
  t.equal(failed.total, 2)
  t.match(failed.tasks[0]!.error, /RangeError: sample \d+ is out of range/, 'a failed task names its error')
  t.match(await (await fetch(url!)).text(), /<html/i, 'the page is served')
  monitor.kill('SIGTERM')
  const [code] = await once(monitor, 'exit')
  t.equal(code, 0, 'SIGTERM stops it cleanly')
})
