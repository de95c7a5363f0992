// Workflow scripts run as real processes, the way users run them.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-scripts-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const projectRoot = fileURLToPath(new URL('..', import.meta.url))
const env = { ...process.env, RUN_DIR: join(scratch, 'runinfo'), NODE_OPTIONS: '' }

async function node(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, args, { cwd: projectRoot, env, timeout: 60_000 })
  return stdout
}
const script = (name: string) => fileURLToPath(new URL(`./fixtures/workflows/${name}`, import.meta.url))

t.test('a script without the guard gets a clear refusal instead of a second workflow', async (t) => {
  const out = await node([script('unguarded.mjs')])
  t.match(out, /failed E_WORKFLOW_IN_WORKER/)
  t.match(out, /main\(import\.meta, async \(\) => \{ \.\.\. \}\)/, 'the error names the fix')
  t.notMatch(out, /result/)
})

t.test('with main(import.meta, ...) the same script works', async (t) => {
  t.match(await node([script('guarded.mjs')]), /result 42/)
})

t.test('an app created inside a function is explained; transport source works', async (t) => {
  const out = await node([script('app-in-function.mjs')])
  t.match(out, /failed E_APP_NOT_FOUND app late was not defined when the worker imported/)
  t.match(out, /source result 2/)
})

t.test('functions typed at a REPL or with -e travel as source', async (t) => {
  const code = `
    import { app, load } from 'tsflow'
    const kernel = await load({ runDir: process.env.RUN_DIR })
    const square = app((x) => x * x)
    console.log('square', await square(9))
    const offset = 5
    const closure = app((x) => x + offset, { name: 'closure' })
    try { await closure(1) } catch (error) { console.log('closure failed:', error.message) }
    await kernel.cleanup()
  `
  const out = await node(['--input-type=module', '-e', code])
  t.match(out, /square 81/)
  t.match(out, /closure failed: offset is not defined \(app closure was sent to the worker as source text/)
})

t.test('a built-in function cannot be an app, and the error says what to do', async (t) => {
  const code = `
    import { app } from 'tsflow'
    try { app(Math.max, { transport: 'source' }) } catch (error) { console.log(error.code, error.message) }
  `
  t.match(await node(['--input-type=module', '-e', code]), /E_FUNCTION_TRANSPORT app max cannot be sent to a worker: it is a built-in or bound function.*wrap the call in a function of your own/)
})
