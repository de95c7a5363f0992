// Grid Engine's pure parts on outputs recorded from a real SGE 8.1.9 (test/fixtures/gridengine/,
// see its README.md for how each was made): qsub -terse, qstat -xml, qstat -j, qacct -j, the
// state table and the #$ directives; and the provider's options, which need no scheduler.

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import t from 'tap'

import {
  STATE_TABLE,
  combineEntries,
  decidingRecord,
  finishedJobInfo,
  gridEngineState,
  parseQacct,
  parseQstatJ,
  parseQstatXml,
  parseQsubTerse,
  stateOf,
} from '../../dist/providers/gridengine/parse.js'
import { gridEngineDirectives, gridEngineTime, memPerSlotMB, slotsOf } from '../../dist/providers/gridengine/directives.js'
import { providerOption } from '../../dist/providers/index.js'
import { GridEngineProvider } from 'tsflow'

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../fixtures/gridengine/${name}`, import.meta.url)), 'utf8')

t.test('qsub -terse: the job number, also of an array job', async (t) => {
  t.equal(parseQsubTerse(fixture('qsub-terse.txt')), '224')
  t.equal(parseQsubTerse(fixture('qsub-terse-array.txt')), '225')
  t.equal(parseQsubTerse('Your job 17 ("STDIN") has been submitted\n'), undefined, 'the non-terse sentence is not taken for an id')
  t.equal(parseQsubTerse(''), undefined)
  t.equal(parseQsubTerse(fixture('qsub-unknown-queue.stderr')), undefined)
})

t.test('qstat -xml: jobs of both sections with their state letters', async (t) => {
  const jobs = parseQstatXml(fixture('qstat-mixed.xml'))
  const byId = new Map<string, string[]>()
  for (const job of jobs) byId.set(job.jobId, [...(byId.get(job.jobId) ?? []), job.state])
  t.same(Object.fromEntries(byId), {
    '3': ['hr'], // running, then held with qhold
    '6': ['r', 'r', 'r'], // an array job: one entry per task
    '7': ['s'], // qmod -sj
    '4': ['qw'], // asks for more slots than exist
    '5': ['Eqw'], // -wd to a missing directory
    '2': ['hqw'], // qsub -h
  })
  t.match(jobs.find((job) => job.jobId === '6'), { tasks: '1', queue: 'all.q@vm', name: 'arr' })
  t.same(
    parseQstatXml(fixture('qstat-queue-suspended.xml')).map((job) => job.state),
    ['Sh', 'S', 'S', 'S', 'Ss', 'qw', 'Eqw', 'hqw'],
  )
  t.same(
    parseQstatXml(fixture('qstat-deleting.xml')).map((job) => job.state),
    ['hr', 'dr', 'dr', 'qw', 'Eqw', 'hqw'],
  )
  t.same(parseQstatXml(fixture('qstat-empty.xml')), [], 'no jobs')
  const errors = parseQstatXml(fixture('qstat-errors.xml'))
  t.same(
    errors.map((job) => [job.jobId, job.state, job.tasks]),
    [
      ['20', 'Eqw', undefined],
      ['21', 'Eqw', undefined],
      ['22', 'hqw', '1-3:1'],
    ],
  )
})

t.test('qstat -xml: text that is not qstat XML throws instead of reading as "no jobs"', async (t) => {
  t.throws(() => parseQstatXml(''), /not qstat -xml output/)
  t.throws(() => parseQstatXml('error: commlib error: got select error (Connection refused)\n'), /not qstat -xml output/)
  const truncated = fixture('qstat-mixed.xml').slice(0, 900)
  t.throws(() => parseQstatXml(truncated), /not qstat -xml output/)
})

t.test('state table: every documented combination, and the letter rule for the rest', async (t) => {
  const expect: Record<string, string> = {
    qw: 'pending',
    hqw: 'pending',
    hRwq: 'pending',
    Rq: 'pending',
    r: 'running',
    t: 'running',
    Rr: 'running',
    Rt: 'running',
    hr: 'running',
    s: 'running',
    S: 'running',
    T: 'running',
    ts: 'running',
    Sh: 'running',
    Ss: 'running',
    Eqw: 'failed',
    Ehqw: 'failed',
    EhRqw: 'failed',
    dr: 'running',
    dt: 'running',
    dRr: 'running',
    dS: 'running',
    dqw: 'pending',
  }
  for (const [letters, state] of Object.entries(expect)) t.equal(STATE_TABLE[letters], state, letters)
  for (const [letters, state] of Object.entries(STATE_TABLE)) {
    t.equal(gridEngineState(letters), state, `${letters}: the table agrees with the letter rule`)
    t.not(state, 'completed', `${letters}: qstat never says a job completed`)
  }
  t.equal(stateOf('qhw'), 'pending', 'letters in another order')
  t.equal(stateOf('SEhqw'), 'failed', 'error wins')
  t.equal(stateOf('z'), 'unknown', 'a zombie entry says nothing of how the job ended')
  t.equal(stateOf('h'), 'unknown')
  t.equal(stateOf(''), 'unknown')
  t.equal(stateOf('X'), 'unknown', 'an unknown letter')
})

t.test('array entries combine: error wins, then running, then pending', async (t) => {
  const entry = (state: string) => ({ jobId: '9', state })
  t.same(combineEntries([entry('qw'), entry('r')]), { letters: 'r', state: 'running' })
  t.same(combineEntries([entry('r'), entry('Eqw')]), { letters: 'Eqw', state: 'failed' })
  t.same(combineEntries([entry('hqw')]), { letters: 'hqw', state: 'pending' })
  t.same(combineEntries([]), { letters: '', state: 'unknown' })
})

t.test('qstat -j: the error reason of a job in state E, and the scheduling info of a pending job', async (t) => {
  const one = parseQstatJ(fixture('qstat-j-eqw.txt'))
  t.same([...one.keys()], ['5'])
  t.same(one.get('5')?.errors, ["error: can't chdir to /nonexistent/dir: No such file or directory"])
  t.equal(one.get('5')?.schedulingInfo, 'Job is in error state')
  const two = parseQstatJ(fixture('qstat-j-two-errors.txt'))
  t.same(two.get('20')?.errors, ["error: can't chdir to /nonexistent/dir: No such file or directory"])
  t.same(two.get('21')?.errors, ['error: can\'t open output file "/nonexistent/out": No such file or directory'])
  const pending = parseQstatJ(fixture('qstat-j-qw.txt'))
  t.same(pending.get('4')?.errors, [])
  t.equal(pending.get('4')?.schedulingInfo, 'cannot run in PE "smp" because it only offers 0 slots')
  t.equal(parseQstatJ('Following jobs do not exist: \n99999\n').size, 0)
})

t.test('qacct -j: finished jobs, never completed without failed 0 and exit 0', async (t) => {
  const info = (name: string) => {
    const records = parseQacct(fixture(name))
    t.equal(records.length, 1, `${name}: one record`)
    return finishedJobInfo(decidingRecord(records)!)
  }
  t.match(info('qacct-exit0.txt'), { state: 'completed', exitCode: 0, nativeState: 'finished (qacct: failed 0, exit_status 0)', message: 'the job ran to its end' })
  t.match(info('qacct-exit3.txt'), { state: 'failed', exitCode: 3, nativeState: 'finished (qacct: failed 0, exit_status 3)', message: /its script failed/ })
  t.match(info('qacct-qdel-running.txt'), {
    state: 'failed',
    exitCode: 137,
    nativeState: 'finished (qacct: failed 100 : assumedly after job, exit_status 137)',
    message: 'the job was killed by SIGKILL',
  })
  t.match(info('qacct-sigterm.txt'), { state: 'failed', exitCode: 143, message: 'the job was killed by SIGTERM' })
  t.match(info('qacct-h_rt-exceeded.txt'), {
    state: 'failed',
    exitCode: 137,
    nativeState: /failed 37 : qmaster enforced h_rt, h_cpu, or h_vmem limit/,
    message: /killed by SIGKILL; it reached a limit it requested \(walltime is h_rt/,
  })
  const record = parseQacct(fixture('qacct-exit0.txt'))[0]
  t.match(record, { jobId: '8', jobName: 'ok', failed: 0, exitStatus: 0 })
  t.notOk(record?.taskId, 'taskid undefined is no task')
  t.same(parseQacct(fixture('qacct-not-found.stderr')), [], 'no record')
  // failed != 0 with exit status 0: the job did not run (e.g. its output file could not be opened)
  t.match(finishedJobInfo({ jobId: '1', failed: 26, failedReason: 'opening input/output file', exitStatus: 0 }), {
    state: 'failed',
    nativeState: 'finished (qacct: failed 26 : opening input/output file, exit_status 0)',
    message: 'Grid Engine did not run the job to its end',
  })
})

t.test('qacct: a rescheduled job is decided by its last run, an array by any failed task', async (t) => {
  const ok = { jobId: '1', failed: 0, exitStatus: 0 }
  const bad = { jobId: '1', failed: 0, exitStatus: 2 }
  t.equal(decidingRecord([bad, ok]), ok, 'rescheduled: the last run')
  t.equal(decidingRecord([{ ...bad, taskId: '1' }, { ...ok, taskId: '2' }])?.taskId, '1', 'array: the failed task')
  t.equal(decidingRecord([]), undefined)
})

t.test('#$ directives', async (t) => {
  const base = { jobName: 'tsflow-b1', stdoutPath: '/r/block-b1.out', stderrPath: '/r/block-b1.err', workDir: '/w', nodesPerBlock: 1, memResource: 'h_vmem', verifyRequests: false }
  t.same(gridEngineDirectives(base), ['#$ -N tsflow-b1', '#$ -o /r/block-b1.out', '#$ -e /r/block-b1.err', '#$ -S /bin/bash', '#$ -wd /w'])
  t.same(gridEngineDirectives({ ...base, verifyRequests: true }).slice(5), ['#$ -w e'])
  t.same(
    gridEngineDirectives({ ...base, queue: 'all.q', pe: 'smp', coresPerNode: 4, nodesPerBlock: 2, walltimeSeconds: 93_784, memPerNode: 8, exclusive: true }).slice(5),
    ['#$ -q all.q', '#$ -pe smp 8', '#$ -l h_rt=26:03:04', '#$ -l h_vmem=2048M', '#$ -l exclusive=true'],
  )
  t.equal(slotsOf({ nodesPerBlock: 3 }), 3)
  t.equal(gridEngineTime(59.2), '0:01:00', 'rounded up to whole seconds')
  t.equal(memPerSlotMB(1.5, 3), 512)
  t.equal(memPerSlotMB(0.0001, 1), 1, 'at least 1 MB')
})

t.test('plain-object configs name it gridengine or sge', async (t) => {
  for (const type of ['gridengine', 'sge']) {
    const provider = providerOption({ type, queue: 'all.q', pe: 'smp' }, 'executors[0].provider')
    t.ok(provider instanceof GridEngineProvider, type)
    t.match(provider.describe(), { type: 'gridengine', queue: 'all.q', pe: 'smp' })
  }
  t.throws(() => providerOption({ type: 'sge', queu: 'all.q' }, 'executors[0].provider'), { path: 'executors[0].provider.queu', message: /did you mean 'queue'/ })
  t.throws(() => providerOption({ type: 'sge', coresPerNode: 4 }, 'executors[0].provider'), {
    path: 'executors[0].provider.pe',
    message: /4 slots.*parallel environment.*qconf -spl/,
  })
  t.throws(() => providerOption({ type: 'sge', queue: 'all.q -l x=1' }, 'p'), { path: 'p.queue', message: /Grid Engine name/ })
  t.throws(() => providerOption({ type: 'sge', workDir: '/tmp/a b' }, 'p'), { path: 'p.workDir', message: /space or a colon/ })
})
