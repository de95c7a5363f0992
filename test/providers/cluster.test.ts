// The middle layer under the batch-scheduler providers (ClusterProvider, runCommand, templates,
// the shared block script), tested on its own. "bash-batch" below is a real scheduler in
// miniature: it runs each submitted script with bash in its own process group and lists the
// jobs it remembers, and the test can make it forget a job (as Slurm does after MinJobAge) or
// fail its queries, which a real scheduler cannot be made to do on demand.

import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'

import { ClusterProvider, ConfigError, ProviderError, SingleNodeLauncher, formatWalltime, parseWalltime, renderTemplate, runCommand } from 'tsflow'
import type { BlockScript, JobInfo } from 'tsflow'
import { silentLogger } from '../../dist/util/logger.js'
import { providerConformance } from './conformance.js'
import { alive, killQuietly, tempDir, waitFor } from './helpers.js'

const TEMPLATE = `#!/bin/bash
#BASHBATCH name=\${jobName}
\${directives}
\${header}
\${setup}
\${command}
`

class BashBatchProvider extends ClusterProvider {
  readonly label = 'bash-batch'
  protected readonly typeNames = ['bash-batch']
  protected readonly templateDir = 'bash-batch'
  protected readonly schedulerShape = {}
  protected readonly submitCommand = 'bash'
  readonly queries: string[][] = []
  /** jobs the "scheduler" remembers: pid and, once ended, how */
  readonly table = new Map<string, { pid: number; exit?: number | null; signal?: string | null; cancelled?: boolean }>()
  failQueries: string | undefined
  slowQueries = false

  protected defaultLauncher() {
    return new SingleNodeLauncher()
  }
  protected override template(): string {
    return TEMPLATE
  }
  protected directives(block: BlockScript): string[] {
    return [`#BASHBATCH tasks=${block.tasksPerNode}`]
  }
  protected async submitJob(block: BlockScript): Promise<string> {
    const { openSync, closeSync } = await import('node:fs')
    const out = openSync(block.stdoutPath, 'w')
    const err = openSync(block.stderrPath, 'w')
    const child = spawn('bash', [block.scriptPath], { detached: true, stdio: ['ignore', out, err] })
    closeSync(out)
    closeSync(err)
    child.unref()
    const pid = child.pid!
    const entry: { pid: number; exit?: number | null; signal?: string | null } = { pid }
    child.once('exit', (code, signal) => {
      entry.exit = code
      entry.signal = signal
    })
    this.table.set(String(pid), entry)
    return String(pid)
  }
  protected async queryJobs(jobIds: readonly string[]): Promise<Map<string, JobInfo>> {
    this.queries.push([...jobIds])
    if (this.slowQueries) await this.run('bash', ['-c', 'sleep 30 & wait'])
    if (this.failQueries) throw new ProviderError(this.label, this.failQueries)
    const listed = new Map<string, JobInfo>()
    for (const id of jobIds) {
      const entry = this.table.get(id)
      if (!entry) continue
      if (entry.exit === undefined) listed.set(id, { state: 'running', nativeState: 'R' })
      else if (entry.cancelled) listed.set(id, { state: 'cancelled', nativeState: 'CA' })
      else if (entry.exit === 0) listed.set(id, { state: 'completed', nativeState: 'CD', exitCode: 0 })
      else listed.set(id, { state: 'failed', nativeState: 'F', ...(entry.exit === null ? {} : { exitCode: entry.exit }), message: entry.signal ? `killed by ${entry.signal}` : 'NonZeroExitCode' })
    }
    return listed
  }
  protected async cancelJobs(jobIds: readonly string[]): Promise<void> {
    for (const id of jobIds) {
      const entry = this.table.get(id)
      if (!entry) continue
      entry.cancelled = true
      killQuietly(-entry.pid)
    }
  }
  forget(jobId: string): void {
    this.table.delete(jobId)
  }
  killOutright(jobId: string): void {
    killQuietly(-Number(jobId))
  }
}

async function started(t: Test, options: Record<string, unknown> = {}) {
  const { dir, remove } = tempDir('cluster')
  const provider = new BashBatchProvider({ maxBlocks: 8, ...options })
  t.teardown(async () => {
    await provider.shutdown()
    for (const entry of provider.table.values()) killQuietly(-entry.pid)
    remove()
  })
  provider.validate('executors[0].provider')
  await provider.init({ scriptDir: join(dir, 'scripts'), logger: silentLogger })
  const final = async (jobId: string) => {
    let last: Awaited<ReturnType<typeof provider.status>>[number] | undefined
    await waitFor(async () => ['completed', 'failed', 'cancelled'].includes((last = (await provider.status([jobId]))[0]!).state), `job ${jobId} to end (last ${JSON.stringify(last)})`)
    return last!
  }
  return { provider, dir, final }
}

providerConformance(t, { name: 'ClusterProvider (bash-batch)', create: (options) => new BashBatchProvider(options) })

t.test('runCommand returns output and exit code; a non-zero exit is an answer, not an error', async (t) => {
  const ok = await runCommand('bash', ['-c', 'echo out; echo err >&2; exit 4'], { timeoutMs: 5000, provider: 'p' })
  t.same(ok, { stdout: 'out\n', stderr: 'err\n', code: 4 })
  const fed = await runCommand('cat', [], { timeoutMs: 5000, provider: 'p', input: 'given on stdin' })
  t.equal(fed.stdout, 'given on stdin')
})

t.test('runCommand kills a command that outlives the timeout, with its children, and says which option to raise', async (t) => {
  const { dir, remove } = tempDir('cmd')
  t.teardown(remove)
  const pidFile = join(dir, 'child')
  const error = await runCommand('bash', ['-c', `echo partial >&2; sleep 60 & echo $! > ${pidFile}; wait`], { timeoutMs: 300, provider: 'slurm' }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(error instanceof ProviderError, 'a ProviderError')
  t.match((error as Error).message, /provider slurm: `bash -c .*` did not finish within cmdTimeoutMs \(300 ms\).*partial.*raise cmdTimeoutMs/s)
  const child = Number(readFileSync(pidFile, 'utf8'))
  await waitFor(() => !alive(child), 'the command\'s child to be killed too', 5000)
  t.pass('the child it started is gone')
})

t.test('runCommand names a command that is not installed', async (t) => {
  await t.rejects(runCommand('tsflow-no-such-sbatch', ['--parsable'], { timeoutMs: 5000, provider: 'slurm' }), {
    message: /cannot run `tsflow-no-such-sbatch --parsable`.*not on PATH: is the scheduler's client installed/,
  })
})

t.test('renderTemplate fills placeholders and refuses unknown ones by name', async (t) => {
  t.equal(renderTemplate('#X -N ${name}\n${body}\n', { name: 'b1', body: 'echo hi' }), '#X -N b1\necho hi\n')
  t.throws(() => renderTemplate('#X ${nmae}', { name: 'b1' }, 'slurm template'), { message: /\$\{nmae\} have no value; known: name/ })
})

t.test('walltime: parsed from HH:MM:SS and D-HH:MM:SS, formatted back with hours past 24', async (t) => {
  t.equal(parseWalltime('01:30:00', 'w'), 5400)
  t.equal(parseWalltime('2-00:00:01', 'w'), 172801)
  t.equal(formatWalltime(172801), '48:00:01')
  t.throws(() => parseWalltime('1:5', 'p.walltime'), ConfigError)
  t.throws(() => parseWalltime('00:61:00', 'p.walltime'), { message: /HH:MM:SS/ })
})

t.test('the block script records its exit code, also when workerInit fails, and names the failing line', async (t) => {
  const h = await started(t, { workerInit: ['true', 'false_command_that_fails_here'] })
  const jobId = await h.provider.submit('echo never', 'wi')
  const status = await h.final(jobId)
  t.equal(status.state, 'failed')
  t.equal(status.exitCode, 127)
  t.match(status.message, /ended during workerInit with exit code 127 \(failing line: false_command_that_fails_here\)/)
  t.match(readFileSync(join(h.dir, 'scripts', 'block-wi.exit'), 'utf8'), /^127 \d+\n$/)
  const script = readFileSync(join(h.dir, 'scripts', 'block-wi.sh'), 'utf8')
  t.match(script, /^#!\/bin\/bash\n#BASHBATCH name=tsflow\.wi\n#BASHBATCH tasks=1\n/, 'directives first, as schedulers require')
  t.match(script, /To submit it by hand: bash .*block-wi\.sh/)
})

t.test('schedulerOptions lines follow the scheduler\'s own directives verbatim', async (t) => {
  const h = await started(t, { schedulerOptions: ['#BASHBATCH --gres=gpu:1', '#BASHBATCH --comment=x'] })
  const jobId = await h.provider.submit('true', 'so')
  await h.final(jobId)
  t.match(readFileSync(join(h.dir, 'scripts', 'block-so.sh'), 'utf8'), /#BASHBATCH tasks=1\n#BASHBATCH --gres=gpu:1\n#BASHBATCH --comment=x\n/)
})

t.test('an empty schedulerOptions string means none, like an empty workerInit', async (t) => {
  const h = await started(t, { schedulerOptions: '', workerInit: '' })
  const jobId = await h.provider.submit('true', 'empty')
  t.equal((await h.final(jobId)).state, 'completed')
  t.match(readFileSync(join(h.dir, 'scripts', 'block-empty.sh'), 'utf8'), /#BASHBATCH tasks=1\n(?!#BASHBATCH)/)
})

t.test('a job the scheduler forgot is resolved by its exit record, never guessed', async (t) => {
  const h = await started(t)
  const ok = await h.provider.submit('exit 0', 'gone-ok')
  const bad = await h.provider.submit('echo "disk quota exceeded" >&2; exit 5', 'gone-bad')
  const killed = await h.provider.submit('sleep 60', 'gone-killed')
  await waitFor(() => [ok, bad].every((id) => h.provider.table.get(id)!.exit !== undefined), 'two jobs to end')
  await waitFor(async () => (await h.provider.status([killed]))[0]!.state === 'running', 'the third to run')
  h.provider.killOutright(killed) // SIGKILL: the script cannot write its record
  await waitFor(() => h.provider.table.get(killed)!.signal !== undefined, 'the third to be killed')
  for (const id of [ok, bad, killed]) h.provider.forget(id)
  await new Promise((resolve) => setTimeout(resolve, 1100)) // past the status cache

  const [sOk, sBad, sKilled] = await h.provider.status([ok, bad, killed])
  t.equal(sOk!.state, 'completed')
  t.match(sOk!.message, /no longer lists job .*recorded exit code 0/)
  t.equal(sBad!.state, 'failed')
  t.equal(sBad!.exitCode, 5)
  t.match(sBad!.message, /recorded exit code 5.*disk quota exceeded/s)
  t.equal(sKilled!.state, 'unknown', 'no evidence: unknown, not completed or failed')
  t.match(sKilled!.message, /no record of how it ended.*no exit record/)
})

t.test('a failed status query reports unknown with the reason, never completed', async (t) => {
  const h = await started(t)
  const jobId = await h.provider.submit('sleep 60', 'q')
  await waitFor(async () => (await h.provider.status([jobId]))[0]!.state === 'running', 'running')
  h.provider.failQueries = 'squeue: error: slurm_load_jobs: Unable to contact slurm controller'
  await new Promise((resolve) => setTimeout(resolve, 1100)) // past the status cache
  const [status] = await h.provider.status([jobId])
  t.equal(status!.state, 'unknown')
  t.match(status!.message, /could not be asked: .*Unable to contact slurm controller/)
})

t.test('a status query that hangs is bounded by cmdTimeoutMs and reports unknown', async (t) => {
  const h = await started(t, { cmdTimeoutMs: 400 })
  const jobId = await h.provider.submit('sleep 60', 'slow')
  h.provider.slowQueries = true
  const [status] = await h.provider.status([jobId])
  t.equal(status!.state, 'unknown')
  t.match(status!.message, /did not finish within cmdTimeoutMs \(400 ms\)/)
})

t.test('status queries are batched per poll, cached briefly, and final jobs are never queried again', async (t) => {
  const h = await started(t)
  const ids = [await h.provider.submit('sleep 60', 'b1'), await h.provider.submit('sleep 60', 'b2'), await h.provider.submit('exit 0', 'b3')]
  await waitFor(() => h.provider.table.get(ids[2]!)!.exit !== undefined, 'b3 to end')
  h.provider.queries.length = 0
  await Promise.all([h.provider.status(ids), h.provider.status(ids)])
  t.same(h.provider.queries, [ids], 'one query for all three, shared by concurrent callers')
  await h.provider.status(ids)
  t.equal(h.provider.queries.length, 1, 'answered from the cache within statusCacheMs')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await h.provider.status(ids)
  t.same(h.provider.queries[1], ids.slice(0, 2), 'the completed job is not asked about again')
})

t.test('a job cancelled while the scheduler reports it failed by a signal is cancelled', async (t) => {
  const h = await started(t)
  const jobId = await h.provider.submit('sleep 60', 'c')
  await waitFor(async () => (await h.provider.status([jobId]))[0]!.state === 'running', 'running')
  await h.provider.cancel([jobId])
  h.provider.table.get(jobId)!.cancelled = false // as a scheduler that only saw the signal
  const status = await h.final(jobId)
  t.equal(status.state, 'cancelled')
})

t.test('describe() records the block options and the scheduler settings', async (t) => {
  const provider = new BashBatchProvider({ walltime: '00:10:00', coresPerNode: 4, memPerNode: 8, exclusive: true })
  provider.validate('p')
  t.match(provider.describe(), { type: 'bash-batch', walltime: '00:10:00', walltimeSeconds: 600, coresPerNode: 4, memPerNode: 8, exclusive: true, launcher: { type: 'single_node' } })
  t.equal(provider.walltimeSeconds, 600)
})

t.test('the local provider refuses schedulerOptions, which it could not honour', async (t) => {
  const { LocalProvider } = await import('tsflow')
  const provider = new LocalProvider({ schedulerOptions: '#SBATCH --gres=gpu:1' } as never)
  t.throws(() => provider.validate('executors[0].provider'), { path: 'executors[0].provider.schedulerOptions', message: /no scheduler/ })
})
