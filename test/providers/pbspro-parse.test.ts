// PBS Pro parsers on outputs recorded from real PBS servers (test/fixtures/pbs/SOURCES.md says
// where each comes from), and the #PBS directives built from block options.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

import {
  describeExitStatus,
  jobInfoFromRecord,
  matchJobIds,
  parseQstatErrors,
  parseQstatJobs,
  parseQstatJson,
  parseQsubOutput,
  readQstatRun,
  STATE_TABLE,
} from '../../dist/providers/pbspro/parse.js'
import { buildPlace, buildSelect, pbsDirectives, pbsMemory, pbsWalltime } from '../../dist/providers/pbspro/directives.js'

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'pbs')
const recorded = (name: string): { stdout: string; stderr: string; exit_code: number; command: string } =>
  JSON.parse(readFileSync(join(fixtures, 'firecrest', name), 'utf8'))

t.test('qstat -F json -f -x of one running job (OpenPBS 23.06, FirecREST)', async (t) => {
  const run = recorded('ssh_qstat_command.json')
  t.match(run.command, /qstat -F json -f 1 -x/)
  t.ok(run.stdout.startsWith('\n'), 'the recorded stdout starts with a newline, which the parser skips')
  const jobs = readQstatRun({ stdout: run.stdout, stderr: run.stderr, code: run.exit_code })
  t.same([...jobs.keys()], ['1.pbs'])
  const job = jobs.get('1.pbs')!
  t.equal(job.state, 'running')
  t.equal(job.nativeState, 'R')
  t.equal(job.exitCode, undefined, 'a running job has no Exit_status')
  t.match(job.message, /PBS comment: Job run at Thu Jun 19 at 21:27 on \(pbs:ncpus=1\)/)
})

t.test('qstat -F json -f -x of three jobs: two finished with Exit_status 0, one running', async (t) => {
  const run = recorded('ssh_qstat_allusers_command.json')
  const jobs = readQstatRun({ stdout: run.stdout, stderr: run.stderr, code: run.exit_code })
  t.same(
    [...jobs].map(([id, job]) => [id, job.state, job.nativeState, job.exitCode]),
    [
      ['1004.pbs', 'completed', 'F', 0],
      ['1005.pbs', 'completed', 'F', 0],
      ['1006.pbs', 'running', 'R', undefined],
    ],
  )
  t.match(jobs.get('1005.pbs')!.message, /and finished/)
  const header = parseQstatJson(run.stdout)
  t.equal(header.pbs_version, '23.06.06')
  t.equal(header.pbs_server, 'pbs')
})

t.test('PBS Pro 2022 (ALCF, psij-python): a fully qualified job id, matched from its short form too', async (t) => {
  const stdout = readFileSync(join(fixtures, 'psij', 'qstat-f-F-json-x-finished.json'), 'utf8')
  const jobs = parseQstatJobs(stdout)
  const id = '2154.edtb-01.mcp.alcf.anl.gov'
  t.equal(jobs.get(id)?.state, 'completed')
  t.match(jobs.get(id)?.message, /edtb-01\[0\]:ncpus=1/)
  t.same([...matchJobIds([id, '2154.edtb-01', '9.edtb-01'], jobs).keys()], [id, '2154.edtb-01'], 'the sequence number identifies the job when the server part differs')
})

t.test('no "Jobs" key when nothing matched: an empty answer, not an error', async (t) => {
  const stdout = readFileSync(join(fixtures, 'openpbs', 'qstat-no-jobs.json'), 'utf8')
  t.equal(parseQstatJson(stdout).Jobs, undefined)
  t.equal(parseQstatJobs(stdout).size, 0)
  t.equal(parseQstatJobs('').size, 0, 'empty stdout too')
})

t.test('qstat and qdel errors: unknown ids (153) and finished jobs (35) are answers; other failures throw', async (t) => {
  const { cases } = JSON.parse(readFileSync(join(fixtures, 'openpbs', 'qstat-errors.json'), 'utf8')) as {
    cases: { command: string; stdout: string; stderr: string; exit_code: number }[]
  }
  const [unknown, finished, qdelUnknown, qdelFinished] = cases as [(typeof cases)[0], (typeof cases)[0], (typeof cases)[0], (typeof cases)[0]]
  t.same(parseQstatErrors(unknown.stderr), { unknown: ['987654.pbs'], finished: [], other: [] })
  t.same(parseQstatErrors(finished.stderr), { unknown: [], finished: ['1005.pbs'], other: [] })
  t.same(parseQstatErrors(qdelUnknown.stderr), { unknown: ['987654.pbs'], finished: [], other: [] })
  t.same(parseQstatErrors(qdelFinished.stderr), { unknown: [], finished: ['1005.pbs'], other: [] })
  t.equal(readQstatRun({ stdout: unknown.stdout, stderr: unknown.stderr, code: 153 }).size, 0)
  t.equal(readQstatRun({ stdout: finished.stdout, stderr: finished.stderr, code: 35 }).size, 0)

  // A batch with one known and one unknown id: qstat prints the known job and exits 153.
  const mixed = recorded('ssh_qstat_command.json').stdout
  t.same([...readQstatRun({ stdout: mixed, stderr: unknown.stderr, code: 153 }).keys()], ['1.pbs'])

  t.throws(() => readQstatRun({ stdout: '', stderr: 'Connection refused\nqstat: cannot connect to server pbs (errno=15010)\n', code: 1 }), /cannot connect to server/)
  t.throws(() => readQstatRun({ stdout: '', stderr: 'qstat: Unknown Job Id 1.pbs\nsomething else went wrong\n', code: 153 }), /something else/, 'a 153 with other errors is a failure')
  t.throws(() => readQstatRun({ stdout: '', stderr: '', code: null }), /killed/)
  t.throws(() => parseQstatJson('{"Jobs": [1]}'), /not an object/)
  t.throws(() => parseQstatJson('<html>'), /not JSON/)
})

t.test('every job_state letter maps to a block state', async (t) => {
  const expected: Record<string, string> = {
    T: 'pending', Q: 'pending', H: 'pending', W: 'pending', S: 'pending', U: 'pending',
    R: 'running', B: 'running', E: 'running', F: 'completed', X: 'completed', M: 'unknown',
  }
  t.same({ ...STATE_TABLE }, expected)
  for (const letter of Object.keys(expected)) {
    const info = jobInfoFromRecord('7.pbs', { job_state: letter, ...(letter === 'F' || letter === 'X' ? { Exit_status: 0 } : {}) })
    t.equal(info.state, expected[letter], `job_state ${letter}`)
    t.equal(info.nativeState, letter)
  }
  const odd = jobInfoFromRecord('7.pbs', { job_state: 'Z', comment: 'mystery' })
  t.equal(odd.state, 'unknown')
  t.match(odd.message, /job_state tsflow does not know: "Z".*PBS comment: mystery/)
  // Waiting jobs PBS says will never start fail at once (comments as OpenPBS's scheduler and server write them).
  t.match(jobInfoFromRecord('7.pbs', { job_state: 'Q', comment: 'Can Never Run: Insufficient amount of queue resource: ncpus (R: 1000 A: 64 T: 64)' }), {
    state: 'failed',
    nativeState: 'Q',
    neverStarts: true,
    message: /is queued \(Q\) and PBS says it will never start; PBS comment: Can Never Run: Insufficient amount of queue resource: ncpus/,
  })
  t.match(jobInfoFromRecord('7.pbs', { job_state: 'H', comment: 'job held, too many failed attempts to run' }), { state: 'failed', neverStarts: true })
  t.match(jobInfoFromRecord('7.pbs', { job_state: 'Q', comment: 'Not Running: Insufficient amount of resource: ncpus (R: 64 A: 2 T: 2)' }), { state: 'pending' }, 'not running yet is not never')
  t.equal(jobInfoFromRecord('7.pbs', { job_state: 'R', comment: 'Can Never Run: stale comment' }).state, 'running', 'only waiting jobs')
  const held = jobInfoFromRecord('7.pbs', { job_state: 'H', comment: 'Job held by alice on Mon Nov 30 21:00:00 2026' })
  t.match(held.message, /is held \(H\); PBS comment: Job held by alice/, 'the scheduler comment is the reason')
})

t.test('Exit_status of finished jobs: codes, signals as 256+N, PBS JOB_EXEC_* specials', async (t) => {
  const finished = (status: unknown, comment?: string) => jobInfoFromRecord('9.pbs', { job_state: 'F', Exit_status: status, ...(comment ? { comment } : {}) })
  t.match(finished(0), { state: 'completed', exitCode: 0 })
  t.match(finished(3, 'Job run at Mon Nov 30 at 21:00 on (n1:ncpus=1) and finished'), {
    state: 'failed',
    exitCode: 3,
    message: /exited with code 3; PBS comment: Job run at .* and finished/,
  })
  t.match(finished(271), { state: 'failed', exitCode: 271, message: /killed by SIGTERM \(Exit_status 271\)/ })
  t.match(finished(265), { state: 'failed', message: /killed by SIGKILL/ })
  t.match(finished(137), { state: 'failed', message: /exited with code 137/, exitCode: 137 }, '128+N is an ordinary exit code')
  t.match(finished(-29), { state: 'failed', exitCode: -29, message: /walltime limit.*JOB_EXEC_KILL_WALLTIME.*Exit_status -29/ })
  t.match(finished(-1), { state: 'failed', message: /could not start the job.*JOB_EXEC_FAIL1/ })
  t.match(finished(-27), { state: 'failed', message: /mem limit/ })
  t.match(finished(-99), { state: 'failed', message: /internal code -99/ })
  t.match(finished('2'), { state: 'failed', exitCode: 2 }, 'a numeric string (dsv-style value) is read too')
  t.match(jobInfoFromRecord('9.pbs', { job_state: 'F', comment: 'Not Running: deleted' }), {
    state: 'cancelled',
    message: /without running.*PBS comment: Not Running: deleted/,
  })
  t.same(describeExitStatus(271), { ok: false, text: 'was killed by SIGTERM (Exit_status 271)', signal: 'SIGTERM' })
})

t.test('invalid JSON from qstat (known PBS bugs) does not hide the jobs', async (t) => {
  const good = recorded('ssh_qstat_allusers_command.json').stdout
  const states = (stdout: string) => [...parseQstatJobs(stdout)].map(([id, job]) => [id, job.state, job.exitCode])
  const expected = states(good)
  const broken: [string, string][] = [
    // a backslash escape JSON does not have and a raw tab (openpbs PR #2049, balsam#324)
    ['bad escapes', good.replace('"PBS_O_SYSTEM":"Linux"', '"PBS_O_SYSTEM":"Mo\\\'s\\,box\tLinux"')],
    // an environment value written as a bare number with leading zeros (openpbs#1255)
    ['leading zeros', good.replace('"PBS_O_SYSTEM":"Linux"', '"foo":005')],
    // an unescaped quote inside a string (openpbs PR #830), here in a job's Variable_List
    ['unescaped quotes', good.replace('"PBS_O_SYSTEM":"Linux"', '"BASH_FUNC_f%%":"() {  echo "hi"\\n}"')],
    // the same, broken over lines (a raw newline in the value)
    ['a value over several lines', good.replace('"PBS_O_SYSTEM":"Linux"', '"BASH_FUNC_g%%":"() {\n  echo "hi"\n}"')],
  ]
  for (const [what, text] of broken) {
    t.throws(() => JSON.parse(text), `${what}: the altered output is not JSON`)
    t.same(states(text), expected, `${what}: every job's state is still read`)
  }
  const quoted = good.replace('"comment":"Job run at Thu Jun 19 at 21:27 on (pbs:ncpus=1) and finished"', '"comment":"Not Running: "gpu" is down"')
  const withLeadingZeros = quoted.replace('"PBS_O_SYSTEM":"Linux"', '"foo":005')
  t.match(parseQstatJobs(withLeadingZeros).get('1005.pbs')?.message, /PBS comment: Not Running: "gpu" is down/, 'an unescaped quote in the comment is kept')
  t.throws(() => parseQstatJobs('{"Jobs":{ garbage'), /not JSON/, 'nothing readable: an error, not an empty answer')
})

t.test('qsub output: the job id', async (t) => {
  t.equal(parseQsubOutput(recorded('ssh_qsub_command.json').stdout), '1.pbs')
  t.equal(parseQsubOutput('2154.edtb-01.mcp.alcf.anl.gov\n'), '2154.edtb-01.mcp.alcf.anl.gov')
  t.equal(parseQsubOutput('12[].pbs\n'), '12[].pbs')
  t.equal(parseQsubOutput('1005\n'), '1005')
  t.equal(parseQsubOutput(''), undefined)
  t.equal(parseQsubOutput('qsub: Unknown queue\n'), undefined)
})

t.test('#PBS directives from block options', async (t) => {
  const base = { jobName: 'tsf.b1', stdoutPath: '/run/x/block-b1.out', stderrPath: '/run/x/block-b1.err', nodes: 2 }
  t.same(pbsDirectives(base), [
    '#PBS -N tsf.b1',
    '#PBS -o /run/x/block-b1.out',
    '#PBS -e /run/x/block-b1.err',
    '#PBS -l select=2',
    '#PBS -l place=scatter',
  ])
  t.same(
    pbsDirectives({ ...base, coresPerNode: 8, memPerNode: 16, walltimeSeconds: 90061, exclusive: true, queue: 'workq', account: 'proj7' }).slice(3),
    ['#PBS -l select=2:ncpus=8:mem=16gb', '#PBS -l walltime=25:01:01', '#PBS -l place=scatter:excl', '#PBS -q workq', '#PBS -A proj7'],
  )
  t.same(pbsDirectives({ ...base, select: '1:ncpus=64:ngpus=4+1:ncpus=2', place: 'pack' }).slice(3, 5), [
    '#PBS -l select=1:ncpus=64:ngpus=4+1:ncpus=2',
    '#PBS -l place=pack',
  ], 'select and place verbatim')
  t.equal(buildPlace('scatter:exclhost', true), 'scatter:exclhost', 'already exclusive')
  t.equal(buildPlace('free', true), 'free:excl')
  t.equal(buildSelect({ nodes: 1, memPerNode: 1.5 }), '1:mem=1536mb')
  t.equal(pbsMemory(4), '4gb')
  t.equal(pbsWalltime(59.2), '00:01:00')
  t.throws(() => pbsDirectives({ ...base, stdoutPath: '/my runs/block.out' }), /whitespace or ':'/)
})
