import type { BlockState } from '../base.js'

/**
 * Pure readers of Grid Engine's command output (qsub -terse, qstat -xml, qstat -j, qacct -j) and
 * its job-state table. Tested on outputs recorded from a real SGE 8.1.9 under
 * test/fixtures/gridengine/. Nothing here runs a command.
 */

/** What the provider learns about one job; the shape the cluster middle layer expects. */
export interface GridEngineJobInfo {
  state: BlockState
  /** the scheduler's own state: qstat's letters (`hqw`, `dr`), or `qacct` for a finished job */
  nativeState: string
  message?: string
  exitCode?: number
}

/**
 * qstat's state letters: d(eletion), E(rror), h(old), r(unning), R(estarted), s(uspended by a
 * user or admin), S(queue suspended), t(ransferring), T(hreshold: queue suspended by a load
 * alarm), w(aiting), q(ueued). A state is a combination; qstat does not always print the letters
 * in the same order (we have seen both `hr` and `Sh`), so the table is backed by `gridEngineState`,
 * which decides by the set of letters.
 *
 * Mapping choices: an error state (Eqw) is failed, because Grid Engine never leaves it on its own;
 * a held job (hqw) is pending; a job being deleted (dr) or suspended (s, S, T) still holds its
 * slots and will either resume or leave qstat, so it stays running (its end is then read from
 * qacct, or is 'cancelled' when this provider deleted it).
 */
export function gridEngineState(letters: string): BlockState {
  const has = (letter: string): boolean => letters.includes(letter)
  if (letters === '' || /[^dEhrRsStTwqz]/.test(letters)) return 'unknown'
  if (has('E')) return 'failed'
  if (has('r') || has('t') || has('s') || has('S') || has('T')) return 'running'
  if (has('q') || has('w')) return 'pending'
  // 'h' or 'd' alone, 'z' (zombie, only with qstat -s z): nothing says how it ended
  return 'unknown'
}

/**
 * Every combination the sge_status(5) manual lists, plus those we saw on SGE 8.1.9 (hr: a hold
 * on a running job; Sh, Ss: queue suspended on top of a hold or a job suspension).
 */
const DOCUMENTED_STATES = [
  // pending (held, re-queued)
  'qw', 'Rq', 'hqw', 'hRwq', 'Rqw', 'hRqw',
  // running and transferring
  'r', 't', 'Rr', 'Rt', 'hr', 'hRr',
  // suspended: job (s), queue (S), queue by alarm threshold (T), and with a re-submit
  's', 'ts', 'S', 'tS', 'T', 'tT', 'Rs', 'Rts', 'RS', 'RtS', 'RT', 'RtT', 'Sh', 'Ss', 'hs',
  // error (a pending job Grid Engine could not start)
  'Eqw', 'Ehqw', 'EhRqw',
  // being deleted
  'dr', 'dt', 'dRr', 'dRt', 'ds', 'dS', 'dT', 'dRs', 'dRS', 'dRT', 'dqw', 'dhqw',
] as const

/** Grid Engine state letters -> block state, for every documented combination. */
export const STATE_TABLE: Readonly<Record<string, BlockState>> = Object.freeze(
  Object.fromEntries(DOCUMENTED_STATES.map((letters) => [letters, gridEngineState(letters)])),
)

/** The block state of qstat's letters: the table, or the letter rule for a combination not in it. */
export function stateOf(letters: string): BlockState {
  return STATE_TABLE[letters] ?? gridEngineState(letters)
}

/**
 * The job id in `qsub -terse` output: `123`, or `123.1-4:1` for an array job (the job number is
 * what qstat, qacct and qdel take). Undefined when the output holds no id.
 */
export function parseQsubTerse(stdout: string): string | undefined {
  for (const line of stdout.split('\n')) {
    const match = /^\s*(\d+)(?:\.\d+(?:-\d+(?::\d+)?)?)?\s*$/.exec(line)
    if (match) return match[1]
  }
  return undefined
}

export interface QstatJob {
  jobId: string
  /** the state letters, e.g. `qw`, `hqw`, `r`, `Eqw`, `dr` */
  state: string
  name?: string
  queue?: string
  /** array jobs only: the task id or range of this entry */
  tasks?: string
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith('#x')) return String.fromCodePoint(Number.parseInt(name.slice(2), 16))
    if (name.startsWith('#')) return String.fromCodePoint(Number.parseInt(name.slice(1), 10))
    return ENTITIES[name] ?? whole
  })
}

function element(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)
  return match ? decodeXml(match[1]!) : undefined
}

/**
 * The job_list entries of `qstat -xml`, from both its sections (queue_info: jobs on a queue
 * instance; job_info: pending ones). An array job has one entry per task (or per range of
 * pending tasks). Throws when the text is not qstat's XML, so a truncated or foreign answer
 * never reads as "no jobs".
 */
export function parseQstatXml(xml: string): QstatJob[] {
  if (!/<job_info[\s>]/.test(xml) || !/<\/job_info>\s*$/.test(xml)) {
    throw new Error(`not qstat -xml output: ${JSON.stringify(xml.slice(0, 200))}`)
  }
  const jobs: QstatJob[] = []
  for (const match of xml.matchAll(/<job_list\b[^>]*>([\s\S]*?)<\/job_list>/g)) {
    const body = match[1]!
    const jobId = element(body, 'JB_job_number')
    const state = element(body, 'state')
    if (jobId === undefined || state === undefined) continue
    const name = element(body, 'JB_name')
    const queue = element(body, 'queue_name')
    const tasks = element(body, 'tasks')
    jobs.push({ jobId, state, ...(name ? { name } : {}), ...(queue ? { queue } : {}), ...(tasks ? { tasks } : {}) })
  }
  return jobs
}

/**
 * One state for a job from its qstat entries (several for an array job): an error anywhere wins,
 * then running, then pending; letters of the deciding entry.
 */
export function combineEntries(entries: readonly QstatJob[]): { letters: string; state: BlockState } {
  const rank: Record<BlockState, number> = { failed: 0, running: 1, pending: 2, unknown: 3, completed: 4, cancelled: 5 }
  let best: { letters: string; state: BlockState } | undefined
  for (const entry of entries) {
    const state = stateOf(entry.state)
    if (!best || rank[state] < rank[best.state]) best = { letters: entry.state, state }
  }
  return best ?? { letters: '', state: 'unknown' }
}

export interface QstatJDetail {
  jobId: string
  /** `error reason` lines (why a job is in state E), without their timestamp prefix */
  errors: string[]
  /** `scheduling info` (why a pending job does not start), when the scheduler recorded it */
  schedulingInfo?: string
}

/**
 * The records of `qstat -j ID[,ID...]` (plain text, separated by lines of '='): each job's
 * error reasons and scheduling info.
 */
export function parseQstatJ(text: string): Map<string, QstatJDetail> {
  const details = new Map<string, QstatJDetail>()
  for (const record of text.split(/^=+\s*$/m)) {
    const jobId = /^job_number:\s+(\d+)/m.exec(record)?.[1]
    if (jobId === undefined) continue
    const errors: string[] = []
    // "error reason    1:      11/30/2026 21:40:13 [0:28409]: error: can't chdir to ..."
    for (const match of record.matchAll(/^error reason\s+[\d,-]+:\s+(.*)$/gm)) {
      const reason = match[1]!.replace(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d \[[^\]]*\]:\s*/, '').trim()
      if (reason) errors.push(reason)
    }
    const schedulingInfo = /^scheduling info:\s+(.*)$/m.exec(record)?.[1]?.trim()
    details.set(jobId, { jobId, errors, ...(schedulingInfo ? { schedulingInfo } : {}) })
  }
  return details
}

export interface QacctRecord {
  jobId: string
  taskId?: string
  jobName?: string
  /** qacct's `failed` code: 0 when Grid Engine ran the job to its end */
  failed: number
  /** the text after the failed code, e.g. `assumedly after job` */
  failedReason?: string
  /** the job script's exit status (128 + signal when a signal ended it) */
  exitStatus?: number
  /** qsub_time as epoch ms (qacct prints it in the local time zone) */
  qsubTime?: number
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** qacct's ctime-style time ("Mon Nov 30 21:39:41 2026", local time) as epoch ms. */
export function parseQacctTime(text: string): number | undefined {
  const match = /^\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(text.trim())
  if (!match) return undefined
  const month = MONTHS.indexOf(match[1]!)
  if (month < 0) return undefined
  const [day, hours, minutes, seconds, year] = match.slice(2).map(Number) as [number, number, number, number, number]
  return new Date(year, month, day, hours, minutes, seconds).getTime()
}

/**
 * The records of `qacct -j ID` (blocks of `key value` lines separated by lines of '='). A job that
 * ran more than once (rescheduled) or an array job has several records.
 */
export function parseQacct(text: string): QacctRecord[] {
  const records: QacctRecord[] = []
  for (const block of text.split(/^=+\s*$/m)) {
    const fields = new Map<string, string>()
    for (const line of block.split('\n')) {
      const match = /^(\w+)\s+(.*?)\s*$/.exec(line)
      if (match) fields.set(match[1]!, match[2]!)
    }
    const jobId = fields.get('jobnumber')
    const failedField = fields.get('failed')
    if (jobId === undefined || failedField === undefined) continue
    const failedMatch = /^(\d+)\s*(?::\s*(.*))?$/.exec(failedField)
    const exitStatus = Number.parseInt(fields.get('exit_status') ?? '', 10)
    const taskId = fields.get('taskid')
    const jobName = fields.get('jobname')
    const failedReason = failedMatch?.[2]?.trim()
    const qsubTime = parseQacctTime(fields.get('qsub_time') ?? '')
    records.push({
      jobId,
      failed: failedMatch ? Number(failedMatch[1]) : -1,
      ...(failedReason ? { failedReason } : {}),
      ...(Number.isInteger(exitStatus) ? { exitStatus } : {}),
      ...(taskId && taskId !== 'undefined' ? { taskId } : {}),
      ...(jobName ? { jobName } : {}),
      ...(qsubTime === undefined ? {} : { qsubTime }),
    })
  }
  return records
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 15: 'SIGTERM', 24: 'SIGXCPU', 25: 'SIGXFSZ' }

/**
 * A finished job's block state from its accounting record: completed only when Grid Engine ran
 * the job to its end (`failed 0`) and the script exited 0; any other record is failed, with
 * qacct's own words. `failed` codes 1-36 mean the job did not run or was not finished normally
 * by the shepherd (e.g. 26: opening the output file; 27: finding the shell); 37 is a limit
 * (h_rt, h_cpu, h_vmem) enforced by qmaster; 100 is "assumedly after job": the job ran and was
 * ended by a signal (qdel, a limit, the OOM killer).
 */
export function finishedJobInfo(record: QacctRecord): GridEngineJobInfo {
  const status = record.exitStatus
  // The middle layer writes "<label> says <nativeState>: <message> (exit code N)": the record's
  // own fields go in nativeState, what they mean in message.
  const nativeState =
    `finished (qacct: failed ${record.failed}${record.failedReason ? ` : ${record.failedReason}` : ''}` +
    `${status === undefined ? '' : `, exit_status ${status}`})`
  const base = { nativeState, ...(status === undefined ? {} : { exitCode: status }) }
  if (record.failed === 0 && status === 0) return { ...base, state: 'completed', message: 'the job ran to its end' }
  if (record.failed === 0) return { ...base, state: 'failed', message: "the job ran to its end and its script failed" }
  let how = 'Grid Engine did not run the job to its end'
  if (status !== undefined && status > 128 && status < 160) how = `the job was killed by ${SIGNALS[status - 128] ?? `signal ${status - 128}`}`
  const hint = record.failed === 37 ? '; it reached a limit it requested (walltime is h_rt, memPerNode is h_vmem)' : ''
  return { ...base, state: 'failed', message: `${how}${hint}` }
}

/**
 * The record that decides a job's end: per task, the last record (a rescheduled job's final
 * run); across an array's tasks, a failed one wins.
 */
export function decidingRecord(records: readonly QacctRecord[]): QacctRecord | undefined {
  const lastPerTask = new Map<string, QacctRecord>()
  for (const record of records) lastPerTask.set(record.taskId ?? '', record)
  const finals = [...lastPerTask.values()]
  return finals.find((record) => finishedJobInfo(record).state !== 'completed') ?? finals[finals.length - 1]
}
