// Regression: a thread batch whose last results are posted on the worker's own (unref'd) channel
// after piscina's answer left the event loop empty; the exit guard then failed tasks that had
// finished (ShutdownError "still running when the process ran out of work"), about once in
// fifteen 100,000-task bursts. The executor now holds the loop open while it awaits them.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const child = fileURLToPath(new URL('./fixtures/burst-child.mjs', import.meta.url))

t.test('20 bursts of 100,000 no-op tasks awaited with nothing else pending all complete', async (t) => {
  const { stdout, stderr } = await run(process.execPath, [child, '20'], { timeout: 120_000, env: { ...process.env, NODE_OPTIONS: '' } })
  t.match(stdout, /^bursts ok$/m, `${stdout}${stderr}`)
  t.notMatch(stderr, /ran out of work/, 'the exit guard never fired')
})
