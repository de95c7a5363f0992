// The PBS shim itself, on the real Slurm: what the PBSProProvider's end-to-end tests rely on must
// hold first. Its qstat answers are read by the same parser as the recorded real PBS outputs,
// and their shape is checked against those recordings.

import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

import { parseQstatJson, parseQsubOutput, readQstatRun } from '../../dist/providers/pbspro/parse.js'
import { ensureSlurm } from '../helpers/slurm.js'
import { useShim } from './pbs-shim.js'
import { waitFor } from './helpers.js'

const slurm = ensureSlurm()
if (typeof slurm === 'string') {
  t.test('the PBS shim over Slurm', { skip: `skipped: ${slurm}` }, () => {})
} else {
  const shim = useShim()
  t.teardown(shim.restore)
  const exec = promisify(execFile)

  /** Runs a shim command; resolves with its code instead of rejecting on a non-zero exit. */
  async function pbs(command: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    try {
      const { stdout, stderr } = await exec(command, args, { env: process.env, cwd: shim.stateDir })
      return { stdout, stderr, code: 0 }
    } catch (error) {
      const e = error as { stdout: string; stderr: string; code: number }
      return { stdout: e.stdout, stderr: e.stderr, code: e.code }
    }
  }
  const submitted: string[] = []
  t.teardown(async () => {
    if (submitted.length > 0) await pbs('qdel', submitted)
  })

  async function submit(body: string, directives: string[] = [], args: string[] = []): Promise<string> {
    const script = join(shim.stateDir, `job-${submitted.length}.sh`)
    writeFileSync(script, ['#!/bin/bash', ...directives, body, ''].join('\n'))
    const run = await pbs('qsub', [...args, script])
    if (run.code !== 0) throw new Error(`qsub failed (${run.code}): ${run.stderr}`)
    const id = parseQsubOutput(run.stdout)
    if (!id) throw new Error(`qsub printed no id: ${run.stdout}`)
    submitted.push(id)
    return id
  }

  async function stateOf(id: string) {
    const run = await pbs('qstat', ['-f', '-F', 'json', '-x', id])
    return { run, job: parseQstatJson(run.stdout).Jobs?.[id], info: readQstatRun(run).get(id) }
  }

  const realJob = (): Record<string, unknown> => {
    const recorded = JSON.parse(readFileSync(join(fileURLToPath(new URL('..', import.meta.url)), 'fixtures', 'pbs', 'firecrest', 'ssh_qstat_allusers_command.json'), 'utf8')) as { stdout: string }
    return parseQstatJson(recorded.stdout).Jobs!['1005.pbs']!
  }

  t.test('qsub reads #PBS directives; the job runs in $HOME with PBS variables; qstat -x reports F with Exit_status 0', async (t) => {
    const out = join(shim.stateDir, 'env.out')
    const id = await submit('echo "$PWD|$PBS_O_WORKDIR|$PBS_JOBID|$(wc -l < "$PBS_NODEFILE")" > ' + out, [
      '#PBS -N shimtest',
      '#PBS -l select=1:ncpus=1:mem=100mb',
      '#PBS -l walltime=00:05:00',
      '#PBS -l place=scatter',
    ])
    t.match(id, /^[0-9]+\.pbsshim$/)
    let last: Awaited<ReturnType<typeof stateOf>> | undefined
    await waitFor(async () => (last = await stateOf(id)).job?.job_state === 'F', `job ${id} to finish`, 60_000, 200)
    const { run, job, info } = last!
    t.equal(run.code, 0)
    t.equal(job!.Exit_status, 0)
    t.equal(job!.Job_Name, 'shimtest')
    t.match(job!.Resource_List, { select: '1:ncpus=1:mem=100mb', place: 'scatter', walltime: '00:05:00', nodect: 1 })
    t.match(job!.comment, /^Job run at .* on \(\S+:ncpus=1\) and finished$/)
    t.equal(info?.state, 'completed')
    const [pwd, workdir, jobId, nodes] = readFileSync(out, 'utf8').trim().split('|')
    t.equal(pwd, process.env.HOME, 'PBS starts jobs in $HOME')
    t.equal(workdir, shim.stateDir, 'PBS_O_WORKDIR is the submission directory')
    t.equal(jobId, id)
    t.equal(nodes, '1', 'PBS_NODEFILE lists the node')
    const extra = Object.keys(job!).filter((key) => !(key in realJob()) && key !== 'Account_Name')
    t.same(extra, [], 'every attribute the shim prints is one real OpenPBS prints')
  })

  t.test('a job exiting 3 is F with Exit_status 3; without -x qstat says "Job has finished" and exits 35', async (t) => {
    const id = await submit('echo broken >&2; exit 3', ['#PBS -l select=1:ncpus=1'])
    await waitFor(async () => (await stateOf(id)).job?.job_state === 'F', `job ${id} to finish`, 60_000, 200)
    const { job, info } = await stateOf(id)
    t.equal(job!.Exit_status, 3)
    t.match(info, { state: 'failed', exitCode: 3 })
    const plain = await pbs('qstat', ['-f', '-F', 'json', id])
    t.equal(plain.code, 35)
    t.equal(plain.stderr.trim(), `qstat: ${id} Job has finished, use -x or -H to obtain historical job information`)
    t.equal(parseQstatJson(plain.stdout).Jobs, undefined, 'no Jobs key when nothing is shown')
    const again = await pbs('qdel', [id])
    t.equal(again.code, 35)
    t.equal(again.stderr.trim(), `qdel: Job has finished ${id}`)
  })

  t.test('a held job (-h) is H with the hold as comment; qdel makes it F without Exit_status', async (t) => {
    const id = await submit('sleep 100', [], ['-h'])
    await waitFor(async () => (await stateOf(id)).job?.job_state === 'H', `job ${id} to be held`, 30_000, 200)
    const { job, info } = await stateOf(id)
    t.match(job!.comment, /^Job held by /)
    t.equal(info?.state, 'pending')
    t.equal((await pbs('qdel', [id])).code, 0)
    await waitFor(async () => (await stateOf(id)).job?.job_state === 'F', `job ${id} to be deleted`, 30_000, 200)
    const after = await stateOf(id)
    t.equal(after.job!.Exit_status, undefined)
    t.equal(after.info?.state, 'cancelled')
  })

  t.test('a running job deleted with qdel ends as killed by SIGTERM (Exit_status 271)', async (t) => {
    const id = await submit('sleep 100', ['#PBS -l select=1:ncpus=1'])
    await waitFor(async () => (await stateOf(id)).job?.job_state === 'R', `job ${id} to run`, 60_000, 200)
    t.equal((await stateOf(id)).info?.state, 'running')
    t.equal((await pbs('qdel', [id])).code, 0)
    await waitFor(async () => (await stateOf(id)).job?.job_state === 'F', `job ${id} to end`, 60_000, 200)
    t.equal((await stateOf(id)).job!.Exit_status, 271)
  })

  t.test('unknown ids: "Unknown Job Id", exit 153, and the known jobs of the same query still listed', async (t) => {
    const alone = await pbs('qstat', ['-f', '-F', 'json', '-x', '999999.pbsshim'])
    t.equal(alone.code, 153)
    t.equal(alone.stderr.trim(), 'qstat: Unknown Job Id 999999.pbsshim')
    t.equal(parseQstatJson(alone.stdout).Jobs, undefined, 'no Jobs key')
    const known = submitted[0]!
    const mixed = await pbs('qstat', ['-f', '-F', 'json', '-x', known, '999999.pbsshim'])
    t.equal(mixed.code, 153)
    t.same([...readQstatRun(mixed).keys()], [known])
    const qdel = await pbs('qdel', ['999999.pbsshim'])
    t.equal(qdel.code, 153)
    t.equal(qdel.stderr.trim(), 'qdel: Unknown Job Id 999999.pbsshim')
  })

  t.test('qsub to a queue that does not exist: "Unknown queue"', async (t) => {
    const script = join(shim.stateDir, 'noqueue.sh')
    writeFileSync(script, '#!/bin/bash\ntrue\n')
    const run = await pbs('qsub', ['-q', 'nosuchqueue', script])
    t.not(run.code, 0)
    t.match(run.stderr, /qsub: Unknown queue/)
  })
}
