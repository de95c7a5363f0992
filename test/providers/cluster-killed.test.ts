// A workflow killed by Ctrl-C / SIGTERM, or one that returns without cleanup(), cancels its
// scheduler jobs (held ones in the queue included) on the real Slurm (test/setup/slurm-up.sh)
// and Grid Engine (test/setup/sge-up.sh). Before, a pending block stayed queued (a held one
// forever) and later started for nobody.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

import { ensureGridEngine } from '../helpers/gridengine.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { waitFor } from '../helpers/wait.js'

const script = fileURLToPath(new URL('../fixtures/workflows/cluster-killed.mjs', import.meta.url))
const projectRoot = fileURLToPath(new URL('../..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-killed-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

/** squeue/qstat still list the job as not finished. */
function queued(scheduler: string, jobId: string): boolean {
  if (scheduler === 'slurm') {
    try {
      const state = execFileSync('squeue', ['-h', '-j', jobId, '-t', 'all', '-o', '%T'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
      return state !== '' && !/^(CANCELLED|COMPLETED|FAILED)$/.test(state)
    } catch {
      return false // "Invalid job id specified": purged
    }
  }
  return execFileSync('qstat', ['-u', '*'], { encoding: 'utf8' }).split('\n').some((line) => line.trim().split(/\s+/)[0] === jobId)
}

async function killedWorkflow(t: Test, scheduler: string, env: Record<string, string>, when: 'signal' | 'exit', signal?: NodeJS.Signals) {
  const child = spawn(process.execPath, [script], {
    cwd: projectRoot,
    env: { ...process.env, ...env, SCHEDULER: scheduler, WHEN: when, RUN_DIR: mkdtempSync(join(scratch, 'run-')), NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  let ended = false
  let ids: string[] = []
  t.teardown(() => {
    if (!ended) t.comment(`the workflow was still running; its stdout: ${out}; its stderr: ${err}`)
    child.kill('SIGKILL')
    // Best effort, so a failing test leaves no job behind.
    for (const id of ids) spawn(scheduler === 'slurm' ? 'scancel' : 'qdel', [id], { stdio: 'ignore' })
  })
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, sig) => {
      ended = true
      resolve({ code, signal: sig })
    }),
  )
  child.stdout.on('data', (data: Buffer) => (out += data.toString()))
  child.stderr.on('data', (data: Buffer) => (err += data.toString()))
  await waitFor(() => /jobs \S+ \S+/.test(out) || ended, 'both jobs submitted', 60_000, 50)
  if (!/jobs \S+ \S+/.test(out)) throw new Error(`the workflow ended before submitting: ${out}`)
  ids = /jobs (\S+) (\S+)/.exec(out)!.slice(1)
  // A workflow that returns may be gone before the first look; one that waits must be seen queued.
  if (when === 'signal') await waitFor(() => ids.every((id) => queued(scheduler, id)), 'both jobs in the queue', 30_000, 200)
  if (signal) child.kill(signal)
  const how = await exit
  if (signal) t.equal(how.signal, signal, `the workflow still ends by ${signal} (${JSON.stringify(how)}; stderr ${err})`)
  else t.equal(how.code, 0, 'the workflow exits normally')
  await waitFor(() => ids.every((id) => !queued(scheduler, id)), `jobs ${ids.join(', ')} to leave the queue`, 30_000, 200)
  t.pass(`held job ${ids[0]} and running job ${ids[1]} were cancelled`)
}

const slurm = ensureSlurm()
const sge = await ensureGridEngine()
t.test('Slurm: jobs of a killed workflow are cancelled', { skip: typeof slurm === 'string' ? slurm : false }, async (t) => {
  if (typeof slurm === 'string') return
  const env = { PARTITION: slurm.partition }
  t.test('Ctrl-C (SIGINT)', (t) => killedWorkflow(t, 'slurm', env, 'signal', 'SIGINT'))
  t.test('SIGTERM', (t) => killedWorkflow(t, 'slurm', env, 'signal', 'SIGTERM'))
  t.test('returning without cleanup()', (t) => killedWorkflow(t, 'slurm', env, 'exit'))
})

t.test('Grid Engine: jobs of a killed workflow are cancelled', { skip: typeof sge === 'string' ? sge : false }, async (t) => {
  if (typeof sge === 'string') return
  const env = { QUEUE: sge.queue, PE: sge.pe }
  t.test('Ctrl-C (SIGINT)', (t) => killedWorkflow(t, 'sge', env, 'signal', 'SIGINT'))
  t.test('returning without cleanup()', (t) => killedWorkflow(t, 'sge', env, 'exit'))
})
