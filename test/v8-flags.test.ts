// A workflow started with V8 or per-process node flags (--expose-gc, --stack-size, ...) still
// runs its tasks on worker threads: those flags cannot be given to a thread, so they stay with
// the process instead of failing every task with ERR_WORKER_INVALID_EXEC_ARGV.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { threadExecArgv } from '../dist/runtime/exec-argv.js'

const run = promisify(execFile)
const projectRoot = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./fixtures/workflows/executor-from-env.mjs', import.meta.url))

t.test('threadExecArgv drops what a worker thread refuses and keeps the rest', async (t) => {
  t.same(threadExecArgv(['--expose-gc', '--enable-source-maps', '--stack-size=2000', '--no-warnings', '--max-old-space-size=512']), [
    '--enable-source-maps',
    '--no-warnings',
  ])
  t.same(threadExecArgv([]), [])
  t.same(threadExecArgv(['--enable-source-maps']), ['--enable-source-maps'])
})

for (const type of ['threads', 'htex-threads'] as const) {
  t.test(`a workflow run with --expose-gc --max-old-space-size runs its tasks (${type})`, async (t) => {
    const scratch = mkdtempSync(join(tmpdir(), 'tsflow-v8flags-'))
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
    const env = { ...process.env, RUN_DIR: join(scratch, 'runinfo'), NODE_OPTIONS: '', TSFLOW_TEST_EXECUTOR: type }
    const { stdout } = await run(process.execPath, ['--expose-gc', '--max-old-space-size=1024', script], { cwd: projectRoot, env, timeout: 90_000 })
    t.match(stdout, /result 42/)
  })
}
