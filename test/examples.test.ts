// The README's commands and examples, run as a user runs them.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
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
  const { stdout } = await run(process.execPath, [join(root, 'out/examples/quickstart.js')], { cwd, env, timeout: 60_000 })
  t.match(stdout, /squares: 1 4 9 16 25/)
  t.match(stdout, /bash app wrote: sum of squares: 338350/)
  t.match(stdout, /retries: succeeded on try 2/)
  t.match(stdout, /failure explained: task #\d+ \(divide\) was not run because its dependency #\d+ failed: RangeError: division by zero/)
  t.match(stdout, /20,000 tasks done, last = 399960001/)
})

t.test('the README workflow example runs', async (t) => {
  const { stdout } = await run(process.execPath, [join(root, 'out/examples/ensemble.js')], { cwd, env, timeout: 60_000 })
  const match = /mean ([\d.]+) exit code 0/.exec(stdout)
  t.ok(match, stdout)
  t.equal(readFileSync(join(cwd, 'mean.txt'), 'utf8').trim(), match?.[1])
})
