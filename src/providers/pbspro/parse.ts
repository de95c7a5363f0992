// Pure readers of PBS Pro / OpenPBS command output: what `qsub` prints, what
// `qstat -f -F json -x <ids>` prints, and what its Exit_status numbers mean. No process is run
// here, so each function is tested on recorded real outputs (test/fixtures/pbs/).

import { constants } from 'node:os'
import type { BlockState } from '../base.js'
import type { JobInfo } from '../cluster/provider.js'

/**
 * What one job looks like to the provider: the cluster layer's JobInfo, plus whether PBS says the
 * job, still waiting, will never start (the provider then deletes it).
 */
export type PbsJobInfo = JobInfo & { neverStarts?: boolean }

/**
 * Comments with which PBS says a waiting job will not start by itself: the scheduler's
 * "Can Never Run: <reason>" (e.g. more ncpus than any node has) and the server's system hold
 * after repeated failed starts (OpenPBS src/scheduler/constant.h NEVER_RUN_PREFIX,
 * src/server/req_runjob.c check_failed_attempts).
 */
export const NEVER_STARTS: readonly RegExp[] = [/^Can Never Run\b/, /too many failed attempts to run/i]

/**
 * job_state letters (OpenPBS src/include/job.h) to block states. F (finished, `qstat -x` only)
 * and X (a finished array subjob) are decided by Exit_status; the table gives the state for a
 * clean exit. E (exiting: the script has ended, PBS is staging files out) is still 'running'
 * because the outcome is not known before F. S and U (suspended by the server or because the
 * workstation is busy) hold the allocation without running, so they count as waiting. M (moved
 * to another server with qmove) cannot be followed from here.
 */
export const STATE_TABLE: Readonly<Record<string, BlockState>> = Object.freeze({
  T: 'pending',
  Q: 'pending',
  H: 'pending',
  W: 'pending',
  S: 'pending',
  U: 'pending',
  R: 'running',
  B: 'running',
  E: 'running',
  F: 'completed',
  X: 'completed',
  M: 'unknown',
})

const STATE_WORDS: Readonly<Record<string, string>> = {
  T: 'in transit',
  Q: 'queued',
  H: 'held',
  W: 'waiting for its start time',
  S: 'suspended by PBS',
  U: 'suspended (workstation busy)',
  R: 'running',
  B: 'running (array job begun)',
  E: 'exiting',
  F: 'finished',
  X: 'finished (array subjob)',
  M: 'moved to another server',
}

/**
 * Negative Exit_status values: PBS's own JOB_EXEC_* codes (src/include/job.h), reported when
 * PBS, not the job script, ended the job or never started it. Our wording.
 */
export const EXEC_CODES: Readonly<Record<number, string>> = {
  [-1]: 'PBS could not start the job (JOB_EXEC_FAIL1, before its files were staged; not retried)',
  [-2]: 'PBS could not start the job (JOB_EXEC_FAIL2, after its files were staged; not retried)',
  [-3]: 'the job failed to start and PBS will retry it (JOB_EXEC_RETRY)',
  [-4]: 'the job was aborted when its MoM initialised (JOB_EXEC_INITABT)',
  [-5]: 'the job was aborted when its MoM initialised (JOB_EXEC_INITRST)',
  [-6]: 'the job was aborted when its MoM initialised (JOB_EXEC_INITRMG)',
  [-7]: 'the job could not be restarted from its checkpoint (JOB_EXEC_BADRESRT)',
  [-10]: 'the job\'s user or group id is not valid on the execution host (JOB_EXEC_FAILUID)',
  [-11]: 'the job was requeued to run again (JOB_EXEC_RERUN)',
  [-12]: 'the job was checkpointed and killed (JOB_EXEC_CHKP)',
  [-13]: 'the job failed because of a bad password (JOB_EXEC_FAIL_PASSWORD)',
  [-14]: 'the job was requeued after a sister node failed (JOB_EXEC_RERUN_SIS_FAIL)',
  [-15]: 'the job was requeued to restart from its checkpoint (JOB_EXEC_QUERST)',
  [-16]: 'a PBS hook rejected the job at start; it is requeued (JOB_EXEC_FAILHOOK_RERUN)',
  [-17]: 'a PBS hook rejected the job at start and deleted it (JOB_EXEC_FAILHOOK_DELETE)',
  [-18]: 'a PBS hook asked for the job to be requeued (JOB_EXEC_HOOK_RERUN)',
  [-19]: 'a PBS hook asked for the job to be deleted (JOB_EXEC_HOOK_DELETE)',
  [-20]: 'the job was requeued: its mother superior lost contact (JOB_EXEC_RERUN_MS_FAIL)',
  [-21]: 'PBS found a security problem in its directories (JOB_EXEC_FAIL_SECURITY)',
  [-22]: 'a PBS hook failed while starting the job (JOB_EXEC_HOOKERROR)',
  [-23]: 'no Kerberos credentials were supplied (JOB_EXEC_FAIL_KRB5)',
  [-24]: 'PBS killed the job for using more CPUs than requested (ncpus burst, JOB_EXEC_KILL_NCPUS_BURST)',
  [-25]: 'PBS killed the job for using more CPUs than requested (ncpus sum, JOB_EXEC_KILL_NCPUS_SUM)',
  [-26]: 'PBS killed the job for exceeding its vmem limit (JOB_EXEC_KILL_VMEM)',
  [-27]: 'PBS killed the job for exceeding its mem limit (JOB_EXEC_KILL_MEM)',
  [-28]: 'PBS killed the job for exceeding its cput limit (JOB_EXEC_KILL_CPUT)',
  [-29]: 'PBS killed the job because it reached its walltime limit (JOB_EXEC_KILL_WALLTIME)',
  [-30]: 'the job failed to start: its sister nodes could not join (JOB_EXEC_JOINJOB)',
}

/** Exit_status of JOB_EXEC_KILL_WALLTIME: the block reached its walltime. */
export const WALLTIME_EXIT_STATUS = -29

/** The name of signal `n` ('SIGTERM' for 15) as this platform numbers it, or 'signal n'. */
export function signalName(n: number): string {
  const entry = Object.entries(constants.signals).find(([, number]) => number === n)
  return entry ? entry[0] : `signal ${n}`
}

/** What an Exit_status means, in words, and whether it is a clean exit. */
export function describeExitStatus(status: number): { ok: boolean; text: string; signal?: string } {
  if (status === 0) return { ok: true, text: 'exited with code 0' }
  if (status < 0) return { ok: false, text: `${EXEC_CODES[status] ?? `PBS ended the job with its internal code ${status}`} (Exit_status ${status})` }
  // PBS reports a job killed by signal N as 256+N (a shell's 128+N is an ordinary exit code).
  if (status > 256) {
    const signal = signalName(status - 256)
    return { ok: false, text: `was killed by ${signal} (Exit_status ${status})`, signal }
  }
  return { ok: false, text: `exited with code ${status}` }
}

/**
 * The job id in qsub's stdout ("1005.pbs", "2154.edtb-01.mcp.alcf.anl.gov", "12[].server" for an
 * array). Undefined when stdout holds none, so the caller can quote the whole output.
 */
export function parseQsubOutput(stdout: string): string | undefined {
  const lines = stdout.split('\n').map((line) => line.trim()).filter((line) => line !== '')
  const last = lines.at(-1)
  return last !== undefined && /^[0-9]+(\[[0-9]*\])?(\.[A-Za-z0-9_.-]+)?$/.test(last) ? last : undefined
}

/** The fields of one job in `qstat -f -F json` that the provider reads. */
export interface PbsJobRecord {
  job_state?: unknown
  Exit_status?: unknown
  comment?: unknown
  Job_Name?: unknown
  [attribute: string]: unknown
}

export interface QstatJson {
  timestamp?: number
  pbs_version?: string
  pbs_server?: string
  /** Absent (not empty) when no job matched: OpenPBS adds the key with the first job. */
  Jobs?: Record<string, PbsJobRecord>
}

/**
 * Parses `qstat -F json` stdout. qstat has printed invalid JSON in several versions, always from
 * values it copies from jobs: backslash escapes JSON does not have (`\'`, `\,`; openpbs/openpbs
 * PR #2049, argonne-lcf/balsam#324 on ALCF Polaris), environment values written as bare numbers
 * with leading zeros (`"foo":005`, openpbs/openpbs#1255), unescaped quotes in comments (PR #830)
 * and bash functions exported with `qsub -V` (openpbs/openpbs#2541). One such job must not hide
 * every job's state, so on a parse error the text is repaired (bad escapes, raw control
 * characters) and parsed again, and failing that the three attributes the provider needs are
 * read line by line from qstat's fixed layout (one attribute per line, jobs one level below
 * "Jobs").
 */
export function parseQstatJson(stdout: string): QstatJson {
  const text = stdout.trim()
  if (text === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (first) {
    try {
      parsed = JSON.parse(repairJson(text))
    } catch {
      const scanned = scanQstatLines(text)
      if (scanned) return scanned
      throw new Error(`qstat printed output that is not JSON (${(first as Error).message}); it began: ${text.slice(0, 200)}`)
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`qstat printed JSON that is not an object; it began: ${text.slice(0, 200)}`)
  }
  const result = parsed as QstatJson
  if (result.Jobs !== undefined && (typeof result.Jobs !== 'object' || result.Jobs === null || Array.isArray(result.Jobs))) {
    throw new Error(`qstat printed a "Jobs" value that is not an object; it began: ${text.slice(0, 200)}`)
  }
  return result
}

const indentOf = (line: string): number => line.length - line.trimStart().length

/**
 * The last resort for output that is not JSON: job ids are the `"id":{` lines at the indentation
 * of the first line under `"Jobs":{`, and job_state, Exit_status and comment are read from the
 * lines one level deeper (deeper ones, inside Variable_List and the like, are skipped, which is
 * where the broken values live). Undefined when no job can be found this way.
 */
function scanQstatLines(text: string): QstatJson | undefined {
  const lines = text.split('\n')
  const start = lines.findIndex((line) => /^\s*"Jobs"\s*:\s*\{\s*$/.test(line))
  if (start < 0 || start + 1 >= lines.length) return undefined
  const jobIndent = indentOf(lines[start + 1]!)
  const jobs: Record<string, PbsJobRecord> = {}
  let current: PbsJobRecord | undefined
  let attributeIndent: number | undefined
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') continue
    const indent = indentOf(line)
    // Closing braces, or the continuation of a value qstat broke over lines: never a job start.
    if (indent < jobIndent) continue
    if (indent === jobIndent) {
      const id = /^\s*"([^"]+)"\s*:\s*\{\s*$/.exec(line)?.[1]
      current = id === undefined ? undefined : (jobs[id] = {})
      attributeIndent = undefined
      continue
    }
    if (!current) continue
    attributeIndent ??= indent
    if (indent !== attributeIndent) continue
    const match = /^\s*"(job_state|Exit_status|comment)"\s*:\s*(.*?),?\s*$/.exec(line)
    if (!match) continue
    const raw = match[2]!
    let value: unknown = raw
    if (/^-?[0-9]+$/.test(raw)) value = Number(raw)
    else if (raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2) {
      try {
        value = JSON.parse(raw)
      } catch {
        value = raw.slice(1, -1)
      }
    }
    current[match[1]!] = value
  }
  return Object.keys(jobs).length > 0 ? { Jobs: jobs } : undefined
}

/** Escapes, inside JSON strings, backslashes that start no valid escape and raw control characters. */
function repairJson(text: string): string {
  let out = ''
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (!inString) {
      if (c === '"') inString = true
      out += c
      continue
    }
    if (c === '\\') {
      const next = text[i + 1] ?? ''
      if (/["\\/bfnrt]/.test(next) || (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)))) {
        out += c + next
        i++
      } else {
        out += '\\\\'
      }
      continue
    }
    if (c === '"') {
      inString = false
      out += c
      continue
    }
    const code = c.charCodeAt(0)
    out += code < 0x20 ? `\\u${code.toString(16).padStart(4, '0')}` : c
  }
  return out
}

/** The state of one job record, with the scheduler's comment kept as (part of) the message. */
export function jobInfoFromRecord(jobId: string, record: PbsJobRecord): PbsJobInfo {
  const letter = typeof record.job_state === 'string' ? record.job_state : ''
  const comment = typeof record.comment === 'string' && record.comment.trim() !== '' ? record.comment.trim() : undefined
  const withComment = (text: string): string => (comment ? `${text}; PBS comment: ${comment}` : text)
  const mapped = STATE_TABLE[letter]
  if (mapped === undefined) {
    return { state: 'unknown', nativeState: letter, message: withComment(`job ${jobId} has a job_state tsflow does not know: ${JSON.stringify(record.job_state)}`) }
  }
  if (mapped === 'pending' && comment !== undefined && NEVER_STARTS.some((pattern) => pattern.test(comment))) {
    // Waiting for nothing: fail the block now with PBS's reason rather than let it wait forever.
    return { state: 'failed', nativeState: letter, neverStarts: true, message: withComment(`job ${jobId} is ${STATE_WORDS[letter]} (${letter}) and PBS says it will never start`) }
  }
  if (letter !== 'F' && letter !== 'X') {
    return { state: mapped, nativeState: letter, message: withComment(`job ${jobId} is ${STATE_WORDS[letter]} (${letter})`) }
  }
  const status = typeof record.Exit_status === 'number' ? record.Exit_status : Number.parseInt(String(record.Exit_status ?? ''), 10)
  if (!Number.isInteger(status)) {
    // A job deleted before it ran finishes without an Exit_status: nothing ran, nothing failed.
    return { state: 'cancelled', nativeState: letter, message: withComment(`job ${jobId} finished without running (no Exit_status: deleted while queued or held)`) }
  }
  const { ok, text } = describeExitStatus(status)
  return { state: ok ? 'completed' : 'failed', nativeState: letter, exitCode: status, message: withComment(`job ${jobId} ${text}`) }
}

/** Job infos for every job qstat listed; a job it did not list is simply absent. */
export function parseQstatJobs(stdout: string): Map<string, PbsJobInfo> {
  const jobs = new Map<string, PbsJobInfo>()
  for (const [jobId, record] of Object.entries(parseQstatJson(stdout).Jobs ?? {})) {
    jobs.set(jobId, jobInfoFromRecord(jobId, record ?? {}))
  }
  return jobs
}

/** qstat's process exit status for "Unknown Job Id" (PBSE_UNKJOBID 15001 & 255). */
export const QSTAT_UNKNOWN_JOB = 153
/** qstat's process exit status for "Job has finished" without -x (PBSE_HISTJOBID 15139 & 255). */
export const QSTAT_JOB_FINISHED = 35

export interface QstatErrors {
  /** ids qstat (or qdel) called unknown: "qstat: Unknown Job Id 1234.pbs" */
  unknown: string[]
  /** ids it called finished: "qstat: 1234.pbs Job has finished, use -x or -H ..." or "qdel: Job has finished 1234.pbs" */
  finished: string[]
  /** every other non-empty stderr line */
  other: string[]
}

/** Sorts qstat/qdel stderr lines into per-job errors the provider can tolerate and the rest. */
export function parseQstatErrors(stderr: string): QstatErrors {
  const result: QstatErrors = { unknown: [], finished: [], other: [] }
  for (const raw of stderr.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    let match = /^q(?:stat|del): Unknown Job Id (\S+)$/.exec(line)
    if (match) {
      result.unknown.push(match[1]!)
      continue
    }
    match = /^q(?:stat|del): (\S+) Job has finished\b/.exec(line) ?? /^q(?:stat|del): Job has finished (\S+)$/.exec(line)
    if (match) {
      result.finished.push(match[1]!)
      continue
    }
    result.other.push(line)
  }
  return result
}

/**
 * Reads one `qstat -f -F json -x <ids>` run. qstat answers for the ids it knows and names the
 * others on stderr, exiting with 153 (or 35); that is a normal answer about those ids, not a
 * failed query. Anything else on stderr, or another exit status, is a failed query and throws.
 */
export function readQstatRun(run: { stdout: string; stderr: string; code: number | null }): Map<string, PbsJobInfo> {
  const errors = parseQstatErrors(run.stderr)
  const tolerated = run.code === 0 || ((run.code === QSTAT_UNKNOWN_JOB || run.code === QSTAT_JOB_FINISHED) && errors.other.length === 0)
  if (!tolerated) {
    const said = run.stderr.trim() || run.stdout.trim().slice(0, 500) || '(no output)'
    throw new Error(`qstat exited with ${run.code === null ? 'no code (killed)' : `code ${run.code}`}: ${said}`)
  }
  return parseQstatJobs(run.stdout)
}

/**
 * Picks the answer for each requested id. qstat keys jobs by the id it knows ("1005.pbs"); when
 * the server name qsub printed differs from qstat's (a short name against a fully qualified one),
 * the sequence number before the first dot still identifies the job on one server.
 */
export function matchJobIds<T>(requested: readonly string[], found: ReadonlyMap<string, T>): Map<string, T> {
  const bySequence = new Map<string, T>()
  for (const [id, value] of found) bySequence.set(id.split('.')[0]!, value)
  const result = new Map<string, T>()
  for (const id of requested) {
    const value = found.get(id) ?? bySequence.get(id.split('.')[0]!)
    if (value !== undefined) result.set(id, value)
  }
  return result
}
