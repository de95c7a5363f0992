// The lifetime of a workflow process and the processes HTEX starts for it: workflow scripts run
// as real processes (test/fixtures/workflows/htex-lifecycle.mjs), killed with real signals.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-lifecycle-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const projectRoot = fileURLToPath(new URL('..', import.meta.url))
const script = (name: string) => fileURLToPath(new URL(`./fixtures/workflows/${name}`, import.meta.url))

interface Pids {
  workflow: number
  interchange: number
  managers: number[]
  workers: number[]
}

interface Run {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  pids: () => Promise<Pids>
}

/** Alive and not a zombie (an orphan's zombie may wait a while for a reaper in a container). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z'
  } catch {
    return false
  }
}

function all(pids: Pids): number[] {
  return [pids.interchange, ...pids.managers, ...pids.workers]
}

function start(t: Test, mode: string, env: Record<string, string> = {}, detached = false): Run {
  const runDir = join(scratch, `${mode}-${Math.random().toString(36).slice(2)}`)
  const child = spawn(process.execPath, [script('htex-lifecycle.mjs'), mode], {
    cwd: projectRoot,
    env: { ...process.env, NODE_OPTIONS: '', RUN_DIR: runDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  let seen: Pids | undefined
  t.teardown(() => {
    child.kill('SIGKILL')
    for (const pid of seen ? all(seen) : []) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
  })
  const pids = async () => {
    await waitFor(() => /"pids"/.test(stdout) || child.exitCode !== null, 'the workflow to print its pids', 60_000)
    const line = stdout.split('\n').find((l) => l.includes('"pids"'))
    if (!line) throw new Error(`the workflow ended without printing its pids; stdout:\n${stdout}\nstderr:\n${stderr}`)
    seen = (JSON.parse(line) as { pids: Pids }).pids
    return seen
  }
  return { child, stdout: () => stdout, stderr: () => stderr, exited, pids }
}

async function exitsWithin(run: Run, ms: number, what: string) {
  let result: { code: number | null; signal: NodeJS.Signals | null } | undefined
  void run.exited.then((r) => (result = r))
  await waitFor(() => result !== undefined, what, ms)
  return result!
}

t.test('a workflow that returns without cleanup() on HTEX exits by itself and leaves no processes', async (t) => {
  const run = start(t, 'return')
  const pids = await run.pids()
  t.match(run.stdout(), /result 42/)
  t.ok(pids.interchange > 0 && pids.managers.length === 1 && pids.workers.length === 2, `pids known: ${JSON.stringify(pids)}`)
  const started = Date.now()
  const { code } = await exitsWithin(run, 30_000, 'the workflow process to exit on its own')
  t.equal(code, 0, `exit code 0 (stderr: ${run.stderr()})`)
  await waitFor(() => all(pids).every((pid) => !running(pid)), 'interchange, manager and workers to be gone', 15_000)
  t.comment(`exited and cleaned up ${Date.now() - started} ms after printing its result`)
})

t.test('main() cleans up the loaded kernel after its body returns', async (t) => {
  const run = start(t, 'main-return')
  const pids = await run.pids()
  const { code } = await exitsWithin(run, 30_000, 'the workflow process to exit')
  t.equal(code, 0, `exit code 0 (stderr: ${run.stderr()})`)
  await waitFor(() => all(pids).every((pid) => !running(pid)), 'interchange, manager and workers to be gone', 15_000)
})

t.test('main() whose body throws prints the error, cleans up and exits 1', async (t) => {
  const run = start(t, 'main-throw')
  const pids = await run.pids()
  const { code } = await exitsWithin(run, 30_000, 'the workflow process to exit')
  t.equal(code, 1, 'exit code 1')
  t.match(run.stderr(), /the workflow body failed on purpose/, 'the error is printed')
  await waitFor(() => all(pids).every((pid) => !running(pid)), 'interchange, manager and workers to be gone', 15_000)
})

for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
  t.test(`a workflow killed with ${signal} takes its interchange, manager and workers with it at once`, async (t) => {
    // The default heartbeat (2 s / 10 s): noticing death by silence would take 10 s or more.
    const run = start(t, 'kill')
    const pids = await run.pids()
    t.ok(all(pids).every(running), `all running before the kill: ${JSON.stringify(pids)}`)
    const killedAt = Date.now()
    process.kill(pids.workflow, signal)
    // Well under the 10 s heartbeat threshold; the time it took is reported, not asserted.
    await waitFor(() => all(pids).every((pid) => !running(pid)), 'interchange, manager and workers to be gone', 7000, 5)
    t.comment(`${signal}: all ${all(pids).length} processes gone ${Date.now() - killedAt} ms after the kill`)
  })
}

t.test('SIGKILL to the process group of workflow and interchange: managers notice the closed connection at once', async (t) => {
  // As when a terminal's job or a cgroup is killed: the interchange gets no chance to tell its
  // managers (they run in the block's own process group and survive the kill).
  const run = start(t, 'kill', {}, true)
  const pids = await run.pids()
  const killedAt = Date.now()
  process.kill(-pids.workflow, 'SIGKILL')
  await waitFor(() => all(pids).every((pid) => !running(pid)), 'interchange, manager and workers to be gone', 7000, 5)
  t.comment(`all ${all(pids).length} processes gone ${Date.now() - killedAt} ms after the group was killed (heartbeat threshold 10000 ms)`)
})

t.test('a client event loop busy beyond the heartbeat threshold does not lose its tasks', async (t) => {
  // Heartbeat 200 ms / 1 s and 3 s of synchronous work right after submitting (a loop
  // submitting a million tasks does the same): the interchange must not take the client for dead.
  const run = start(t, 'busy-loop', { HEARTBEAT_PERIOD_MS: '200', HEARTBEAT_THRESHOLD_MS: '1000', BUSY_MS: '3000', TASKS: '2000' })
  await run.pids()
  const { code } = await exitsWithin(run, 60_000, 'the workflow to finish')
  t.match(run.stdout(), /completed 2000 of 2000\n/, `every task completed (stdout: ${run.stdout()}, stderr: ${run.stderr()})`)
  t.equal(code, 0)
})

t.test('a process whose event loop empties with a task unsettled fails it and exits 1, not 0', async (t) => {
  const runDir = join(scratch, 'stranded')
  const child = spawn(process.execPath, [script('stranded-join.mjs')], {
    cwd: projectRoot,
    env: { ...process.env, NODE_OPTIONS: '', RUN_DIR: runDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  t.equal(code, 1, 'exit code 1')
  t.match(stdout, /settled: E_SHUTDOWN task #1 \(waitsForever\) was still \w+ when the process ran out of work/, 'the future is rejected with the reason')
  t.match(stderr, /the event loop emptied with 1 task\(s\) unsettled/, 'the reason is printed')
  t.ok(existsSync(runDir))
})
