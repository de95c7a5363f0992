// The Slurm provider's pure parts on outputs recorded from real Slurm: the two-node test cluster
// (test/fixtures/slurm/*.txt, recorded with the commands named in each file) and the project's
// reference recordings (reference-22.05-formats.txt). Runs anywhere: no cluster needed.
import { readFileSync } from 'node:fs'
import t from 'tap'

import { ConfigError, SlurmProvider } from 'tsflow'
import {
  COMPACT_STATES,
  STATE_TABLE,
  decodeWaitStatus,
  isAccountingDisabled,
  isInvalidJobId,
  jobInfo,
  neverStarts,
  normalizeState,
  parseSacct,
  parseSbatch,
  parseScontrol,
  parseSqueue,
  squeueFormat,
  type SlurmJobRecord,
} from '../../dist/providers/slurm/parse.js'
import { slurmTime } from '../../dist/providers/slurm/provider.js'
import { providerOption } from '../../dist/providers/index.js'

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/slurm/${name}`, import.meta.url), 'utf8')
/** A recording without its comment lines (the commands, how it was made, the exit status). */
const output = (name: string): string =>
  fixture(name)
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
const byId = (records: SlurmJobRecord[]): Map<string, SlurmJobRecord> => new Map(records.map((r) => [r.jobId, r]))

t.test('STATE_TABLE maps every Slurm state, and every compact code names one of them', async (t) => {
  const blockStates = new Set(['pending', 'running', 'completed', 'failed', 'cancelled', 'unknown'])
  for (const [state, block] of Object.entries(STATE_TABLE)) t.ok(blockStates.has(block), `${state} -> ${block}`)
  for (const [code, state] of Object.entries(COMPACT_STATES)) t.ok(state in STATE_TABLE, `${code} (${state}) is in the table`)
  const expected: Record<string, string> = {
    PENDING: 'pending', CONFIGURING: 'pending', RUNNING: 'running', COMPLETING: 'running', COMPLETED: 'completed',
    CANCELLED: 'cancelled', FAILED: 'failed', TIMEOUT: 'failed', NODE_FAIL: 'failed', PREEMPTED: 'failed',
    BOOT_FAIL: 'failed', DEADLINE: 'failed', OUT_OF_MEMORY: 'failed', SUSPENDED: 'pending', STOPPED: 'pending',
    REQUEUED: 'pending', RESIZING: 'running', SPECIAL_EXIT: 'failed', REVOKED: 'unknown', SIGNALING: 'running', STAGE_OUT: 'running',
  }
  for (const [state, block] of Object.entries(expected)) t.equal(STATE_TABLE[state], block, state)
  t.equal(jobInfo({ jobId: '1', state: 'MADE_UP_STATE', reason: '' }).state, 'unknown', 'a state tsflow does not know is unknown, not guessed')
  t.match(jobInfo({ jobId: '1', state: 'MADE_UP_STATE', reason: '' }).message, /MADE_UP_STATE is not one tsflow knows/)
})

t.test('squeue -O output recorded on the two-node cluster', async (t) => {
  const text = output('squeue-states.txt')
  const jobs = byId(parseSqueue(text))
  t.notOk(jobs.has('99999'), 'an unknown id in a batch is simply absent')
  const info = (id: string) => jobInfo(jobs.get(id)!, '00:01:00')
  t.match(info('3'), { state: 'completed', nativeState: 'COMPLETED', exitCode: 0 })
  t.match(info('11'), { state: 'failed', nativeState: 'FAILED', exitCode: 3 }, 'the raw exit_code 768 is exit code 3')
  t.match(info('11').message, /NonZeroExitCode/)
  t.match(info('10'), { state: 'cancelled', nativeState: 'CANCELLED' })
  t.match(info('10').message, /signal 15/, 'cancelled while running: ended by SIGTERM')
  t.equal(info('16').message, undefined, 'a job cancelled while pending keeps its old reason (Priority): not repeated')
  const timeout = info('9')
  t.match(timeout, { state: 'failed', nativeState: 'TIMEOUT' })
  t.match(timeout.message, /reached its walltime \(00:01:00\) and Slurm stopped it/, 'TIMEOUT says the block reached its walltime')
  t.match(info('12'), { state: 'pending', message: /JobHeldUser.*scontrol release/ })
  t.match(info('13'), { state: 'pending', message: /PartitionDown.*brings the partition up/ })
  t.match(info('14'), { state: 'pending', message: /BeginTime/ })
  t.match(info('15'), { state: 'completed' })
  t.match(info('7'), { state: 'failed', nativeState: 'PENDING', message: /never start.*PartitionNodeLimit/ })
  t.match(info('17'), { state: 'failed', message: /never start.*DependencyNeverSatisfied/ })
  t.match(info('8'), { state: 'failed', message: /BadConstraints/ })
  t.match(info('37'), { state: 'running', nativeState: 'RUNNING', message: 'on tsfslurm[1-2]' })
  t.equal(jobs.get('37')!.nodeList, 'tsfslurm[1-2]')
})

t.test('squeue answers for unknown ids: one alone exits 1, several print nothing', async (t) => {
  const single = fixture('squeue-single-unknown.txt')
  t.match(single, /# rc=1/)
  t.ok(isInvalidJobId(single), 'recognised as "no such job", not as a failed query')
  t.match(fixture('squeue-several-unknown.txt'), /# rc=0/)
  t.same(parseSqueue(output('squeue-several-unknown.txt')), [])
  t.notOk(isInvalidJobId('squeue: error: Unable to contact slurm controller (connect failure)'), 'a controller that does not answer is a failure')
})

t.test('the reference recordings (slurm-formats.txt, another config and field order)', async (t) => {
  const text = fixture('reference-22.05-formats.txt')
  // The -O blocks there have the order JobID, StateCompact, State, Reason, exit_code, NodeList.
  const fields = ['JobID', 'StateCompact', 'State', 'Reason', 'exit_code', 'NodeList'] as const
  const blocks = text.split(/^\$ /m).filter((block) => block.startsWith("squeue -h -t all -O 'JobID:|,StateCompact:|,State:|,Reason:|,exit_code:|,NodeList:'"))
  t.equal(blocks.length, 2)
  const before = byId(parseSqueue(blocks[0]!.split('\n').slice(1).join('\n'), fields))
  t.match(jobInfo(before.get('39')!), { state: 'running' })
  t.match(jobInfo(before.get('40')!), { state: 'pending', message: /Resources/ })
  t.match(jobInfo(before.get('41')!), { state: 'cancelled' })
  t.equal(before.get('39')!.nodeList, 'vm')
  const after = byId(parseSqueue(blocks[1]!.split('\n').slice(1).join('\n'), fields))
  t.match(jobInfo(after.get('40')!), { state: 'failed', exitCode: 3 })
  t.match(jobInfo(after.get('38')!), { state: 'cancelled', message: /signal 15/ })
  // '%i %t' lines: compact codes
  for (const [code, state] of [['CA', 'CANCELLED'], ['PD', 'PENDING'], ['R', 'RUNNING'], ['F', 'FAILED']]) t.equal(normalizeState(code!), state)
  // scontrol, as grep -o printed it there: one field per line
  const [, failed] = text.split('# after job 40 (exit 3) ran:')
  const lines = /JobState=FAILED\nReason=\S+\nExitCode=\S+/.exec(failed!)![0]
  t.match(parseScontrol(`JobId=40 ${lines.replace(/\n/g, ' ')}`)[0], { jobId: '40', state: 'FAILED', reason: 'NonZeroExitCode', exitCode: 3 })
  t.same(parseSbatch('39\n'), { jobId: '39' })
  t.match(text, /sbatch: error: invalid partition specified: nosuch/)
})

t.test('scontrol -o show job recorded on the two-node cluster', async (t) => {
  const jobs = byId(parseScontrol(output('scontrol-jobs.txt')))
  t.match(jobs.get('9'), { state: 'TIMEOUT', reason: 'TimeLimit', signal: 15 })
  t.match(jobs.get('11'), { state: 'FAILED', reason: 'NonZeroExitCode', exitCode: 3 })
  t.match(jobs.get('12'), { state: 'PENDING', reason: 'JobHeldUser', exitCode: 0 })
  t.match(jobs.get('17'), { state: 'PENDING', reason: 'DependencyNeverSatisfied' })
  t.match(jobs.get('37'), { state: 'RUNNING', nodeList: 'tsfslurm[1-2]' })
  t.notOk(jobs.get('12')!.nodeList, 'a pending job has no nodes')
  t.ok(isInvalidJobId(fixture('scontrol-unknown.txt')))
})

t.test('sbatch --parsable, scancel and sacct answers', async (t) => {
  const text = fixture('sbatch-scancel.txt')
  t.same(parseSbatch(text.split('\n')[1]!), { jobId: '38' })
  t.same(parseSbatch('1234;clusterA\n'), { jobId: '1234', cluster: 'clusterA' }, 'with --clusters (format from the sbatch man page: id;cluster)')
  t.same(parseSbatch('sbatch: warning: something\n77\n'), { jobId: '77' }, 'a warning before the id')
  t.equal(parseSbatch('sbatch: error: Batch job submission failed'), undefined)
  t.ok(isAccountingDisabled(fixture('sacct-disabled.txt')))
  // sacct -P output cannot be recorded here (no accounting daemon); this follows its documented
  // format: fields joined by '|', "CANCELLED by <uid>", steps as <id>.batch.
  const sacct = byId(parseSacct('41|CANCELLED by 0|0:15|None\n42|COMPLETED|0:0|None\n42.batch|COMPLETED|0:0|\n43|FAILED|2:0|NonZeroExitCode\n'))
  t.match(sacct.get('41'), { state: 'CANCELLED', signal: 15 })
  t.match(sacct.get('42'), { state: 'COMPLETED', exitCode: 0 })
  t.match(sacct.get('43'), { state: 'FAILED', exitCode: 2 })
  t.equal(sacct.size, 3, 'steps are left out')
})

t.test('small conversions', async (t) => {
  t.same(decodeWaitStatus(768), { exitCode: 3 })
  t.same(decodeWaitStatus(15), { signal: 15 })
  t.same(decodeWaitStatus(0), { exitCode: 0 })
  t.equal(slurmTime(90061), '1-01:01:01')
  t.equal(slurmTime(600), '00:10:00')
  t.equal(squeueFormat(), 'JobID:|,StateCompact:|,State:|,exit_code:|,NodeList:|,Reason:')
  t.match(neverStarts('QOSMaxNodePerJobLimit'), /QOS allows any one job/)
  t.equal(neverStarts('QOSMaxJobsPerUserLimit'), undefined, 'a limit on how many jobs run at once clears by itself')
  t.equal(neverStarts('ReqNodeNotAvail, UnavailableNodes:n[1-4]'), undefined, 'nodes that are unavailable for now are not "never"')
  t.match(neverStarts('launch failed requeued held'), /could not launch it/, 'a launch failure Slurm holds the job after (reason text from the Slurm docs)')
  t.equal(neverStarts('JobHeldAdmin'), undefined, 'an administrator\'s hold may be lifted: pending')
  const reason = parseSqueue('5|PD|PENDING|0||ReqNodeNotAvail, UnavailableNodes:n|1\n')[0]!
  t.equal(reason.reason, 'ReqNodeNotAvail, UnavailableNodes:n|1', 'the last field keeps spaces, commas and bars')
  const clustered = parseSqueue('CLUSTER: a\n5|R|RUNNING|0|n1|None\nCLUSTER: b\n5|PD|PENDING|0||Priority\n')
  t.same(clustered.map((r) => `${r.jobId}@${r.cluster} ${r.state}`), ['5@a RUNNING', '5@b PENDING'], 'with --clusters, records name their cluster')
})

t.test('Slurm options are validated with errors naming the option', async (t) => {
  for (const [options, key, message] of [
    [{ partition: 'two words' }, 'partition', /one word/],
    [{ account: '' }, 'account', /one word/],
    [{ qos: 3 }, 'qos', /one word/],
    [{ constraint: 'a"b' }, 'constraint', /without spaces or quotes/],
    [{ partiton: 'debug' }, 'partiton', /did you mean 'partition'/],
  ] as const) {
    const provider = new SlurmProvider(options as Record<string, unknown>)
    const error = t.throws(() => provider.validate('executors[0].provider'), ConfigError) as ConfigError
    t.equal(error.path, `executors[0].provider.${key}`)
    t.match(error.message, message)
  }
  const provider = new SlurmProvider({ partition: 'debug', qos: 'high' })
  provider.validate('p')
  t.equal(provider.launcher.type, 'srun', 'the default launcher is srun')
  t.match(provider.describe(), { type: 'slurm', partition: 'debug', qos: 'high', launcher: { type: 'srun' } })
})

t.test("{ type: 'slurm', ... } in a plain-object config builds a validated SlurmProvider", async (t) => {
  const provider = providerOption({ type: 'slurm', partition: 'debug', nodesPerBlock: 2, walltime: '1-00:00:00' }, 'executors[0].provider')
  t.ok(provider instanceof SlurmProvider)
  t.equal(provider.nodesPerBlock, 2)
  t.match(provider.describe(), { type: 'slurm', partition: 'debug', walltimeSeconds: 86400 })
  t.throws(() => providerOption({ type: 'slurm', partiton: 'debug' }, 'executors[0].provider'), { code: 'E_CONFIG', path: 'executors[0].provider.partiton' })
})

t.test('directives: each option its #SBATCH line (no cluster needed)', async (t) => {
  const directives = (options: Record<string, unknown>, tasksPerNode = 1): string[] => {
    const provider = new SlurmProvider(options)
    provider.validate('p')
    return (provider as unknown as { directives(block: { tasksPerNode: number }): string[] }).directives({ tasksPerNode })
  }
  t.same(directives({}), ['#SBATCH --nodes=1', '#SBATCH --ntasks-per-node=1'], 'only the shape of the block by default')
  t.same(
    directives({ nodesPerBlock: 4, coresPerNode: 16, memPerNode: 0.5, walltime: '2-03:04:05', exclusive: true, partition: 'p', account: 'a', qos: 'q', constraint: 'gpu&bigmem', clusters: 'c1,c2' }, 4),
    [
      '#SBATCH --nodes=4',
      '#SBATCH --ntasks-per-node=4',
      '#SBATCH --cpus-per-task=4',
      '#SBATCH --mem=512M',
      '#SBATCH --time=2-03:04:05',
      '#SBATCH --exclusive',
      '#SBATCH --partition=p',
      '#SBATCH --account=a',
      '#SBATCH --qos=q',
      '#SBATCH --constraint=gpu&bigmem',
      '#SBATCH --clusters=c1,c2',
    ],
    'coresPerNode is shared among the copies on a node; the walltime keeps its days',
  )
  t.same(directives({ coresPerNode: 2 }, 4)[2], '#SBATCH --cpus-per-task=1', 'at least one CPU per copy')
})
