// The README's commands and examples, run as a user runs them.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

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
