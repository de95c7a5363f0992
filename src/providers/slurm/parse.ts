import type { BlockState } from '../base.js'
import type { JobInfo } from '../cluster/provider.js'

/**
 * Pure readers of Slurm's command output, tested on outputs recorded from a real Slurm
 * (test/fixtures/slurm/). Nothing here runs a command.
 */

/**
 * Every job state Slurm reports (squeue's %T / StateCompact, scontrol's JobState, sacct's State),
 * mapped to a block state. Not final while the job may still run or is still ending: COMPLETING
 * and STAGE_OUT come before the final state, which carries the exit code.
 */
export const STATE_TABLE: Readonly<Record<string, BlockState>> = {
  PENDING: 'pending',
  CONFIGURING: 'pending', // nodes are booting or being set up; the script has not started
  POWER_UP_NODE: 'pending',
  REQUEUED: 'pending', // back in the queue, will run again
  REQUEUE_HOLD: 'pending',
  REQUEUE_FED: 'pending',
  RESV_DEL_HOLD: 'pending',
  SUSPENDED: 'pending', // keeps its allocation but runs nothing until resumed
  STOPPED: 'pending', // SIGSTOPped: likewise
  RUNNING: 'running',
  COMPLETING: 'running', // the script ended; Slurm is still cleaning up, the exit code comes with the final state
  STAGE_OUT: 'running',
  SIGNALING: 'running',
  RESIZING: 'running',
  UPDATE_DB: 'running',
  COMPLETED: 'completed',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
  TIMEOUT: 'failed', // reached its walltime
  NODE_FAIL: 'failed',
  PREEMPTED: 'failed',
  BOOT_FAIL: 'failed',
  DEADLINE: 'failed',
  OUT_OF_MEMORY: 'failed',
  SPECIAL_EXIT: 'failed', // ended with a site-defined exit value and was held for inspection
  RECONFIG_FAIL: 'failed',
  LAUNCH_FAILED: 'failed',
  REVOKED: 'unknown', // a federation removed this copy because a sibling cluster runs the job
}

/** squeue's compact state codes (%t, StateCompact) and the states they stand for. */
export const COMPACT_STATES: Readonly<Record<string, string>> = {
  BF: 'BOOT_FAIL',
  CA: 'CANCELLED',
  CD: 'COMPLETED',
  CF: 'CONFIGURING',
  CG: 'COMPLETING',
  DL: 'DEADLINE',
  F: 'FAILED',
  NF: 'NODE_FAIL',
  OOM: 'OUT_OF_MEMORY',
  PD: 'PENDING',
  PR: 'PREEMPTED',
  R: 'RUNNING',
  RD: 'RESV_DEL_HOLD',
  RF: 'REQUEUE_FED',
  RH: 'REQUEUE_HOLD',
  RQ: 'REQUEUED',
  RS: 'RESIZING',
  RV: 'REVOKED',
  SI: 'SIGNALING',
  SE: 'SPECIAL_EXIT',
  SO: 'STAGE_OUT',
  ST: 'STOPPED',
  S: 'SUSPENDED',
  TO: 'TIMEOUT',
}

/** Why a final state happened, in words (the reason or exit code completes it). */
const STATE_WORDS: Readonly<Record<string, string>> = {
  TIMEOUT: 'the block reached its walltime and Slurm stopped it',
  NODE_FAIL: 'a node of the block failed',
  PREEMPTED: 'Slurm preempted the block for another job',
  BOOT_FAIL: 'a node of the block failed to boot',
  DEADLINE: 'the block reached its deadline (--deadline) before it could run or finish',
  OUT_OF_MEMORY: 'the block ran out of memory (raise memPerNode)',
  SPECIAL_EXIT: 'the job ended with a special exit value and Slurm holds it for inspection',
  SUSPENDED: 'Slurm suspended the block; nothing runs until it is resumed',
  STOPPED: 'the block was stopped (SIGSTOP); nothing runs until it is continued',
  REVOKED: 'a federation revoked this copy of the job because another cluster runs it',
}

/**
 * Pending reasons under which Slurm will never start the job as submitted (only a change to the
 * job or to the cluster's configuration would). The provider fails such a block at once with the
 * reason, and cancels the job, instead of leaving tasks waiting for a block that cannot come.
 */
export const NEVER_STARTS: Readonly<Record<string, string>> = {
  BadConstraints: 'its constraints (nodes, cores, memory or features) cannot be satisfied by any node',
  PartitionConfig: "it asks for more than the partition's configuration allows",
  PartitionNodeLimit: 'it asks for more nodes than the partition has or allows (lower nodesPerBlock)',
  PartitionTimeLimit: "its walltime exceeds the partition's time limit (lower walltime)",
  DependencyNeverSatisfied: 'a job it depends on ended in a way that never satisfies the dependency',
  InvalidAccount: 'its account is invalid (check the account option)',
  InvalidQOS: 'its QOS is invalid (check the qos option)',
  AccountNotAllowed: 'its account may not use this partition',
  QOSNotAllowed: 'its QOS may not use this partition',
}
/** Limits on one job's own size or length: the job asks for more than its QOS or association ever allows. */
const PER_JOB_LIMIT = /^(Assoc|QOS)Max\w*PerJob(Limit)?$/

/**
 * Pending reasons under which the job waits for someone to act (release it, bring the partition
 * up). The block stays pending, with the reason in its message.
 */
export const WAITS_FOR_ACTION: Readonly<Record<string, string>> = {
  JobHeldUser: 'it is held (scontrol release <jobid> to let it run)',
  JobHeldAdmin: 'an administrator holds it',
  PartitionDown: 'its partition is down; it starts when an administrator brings the partition up',
  PartitionInactive: 'its partition is inactive; it starts when an administrator activates the partition',
  BeginTime: 'its start time (--begin) has not been reached',
}

/** The state word, without what some commands append ("CANCELLED by 0", "COMPLETED+"). */
export function normalizeState(text: string): string {
  const word = text.trim().split(/\s+/)[0] ?? ''
  const base = word.replace(/\+$/, '').toUpperCase()
  return COMPACT_STATES[base] ?? base
}

/** The leading word of a reason ("ReqNodeNotAvail, UnavailableNodes:n1" -> "ReqNodeNotAvail"). */
function reasonCode(reason: string): string {
  return reason.trim().split(/[\s,(]/)[0] ?? ''
}

/** If Slurm will never start a job pending for this reason: why, in words. */
export function neverStarts(reason: string): string | undefined {
  const code = reasonCode(reason)
  if (NEVER_STARTS[code]) return NEVER_STARTS[code]
  if (PER_JOB_LIMIT.test(code)) return `it asks for more than its ${code.startsWith('QOS') ? 'QOS' : 'association'} allows any one job (${code})`
  // After a failed launch Slurm requeues the job held: it runs again only if someone releases it.
  if (/^launch failed requeued held/i.test(reason.trim())) return "Slurm could not launch it on its node and holds it (see the node's slurmd log)"
  return undefined
}

export interface SlurmJobRecord {
  jobId: string
  /** the full state name (normalized from a compact code if need be) */
  state: string
  reason: string
  /** the exit code of the batch script, when it exited */
  exitCode?: number
  /** the signal that ended it, when one did */
  signal?: number
  nodeList?: string
  /** the cluster, for outputs of commands run with --clusters */
  cluster?: string
}

/** The fields tsflow asks squeue for, in this order (Reason last: it is the only one with spaces and commas). */
export const SQUEUE_FIELDS = ['JobID', 'StateCompact', 'State', 'exit_code', 'NodeList', 'Reason'] as const
export type SqueueField = (typeof SQUEUE_FIELDS)[number]

/** The -O format for these fields, each followed by '|' (Reason, last, has no width limit). */
export function squeueFormat(fields: readonly SqueueField[] = SQUEUE_FIELDS): string {
  return fields.map((field, i) => (i === fields.length - 1 ? `${field}:` : `${field}:|`)).join(',')
}

/**
 * squeue's raw exit_code is a wait status: the exit code in the high byte, the signal that ended
 * the job in the low bits (768 = exit 3; 15 = SIGTERM).
 */
export function decodeWaitStatus(raw: number): { exitCode?: number; signal?: number } {
  const signal = raw & 0x7f
  return signal !== 0 ? { signal } : { exitCode: (raw >> 8) & 0xff }
}

/**
 * `squeue --noheader -O <squeueFormat(fields)>` output: one job per line, fields split on '|'
 * (the last field keeps any '|' it contains). With --clusters, squeue prints a "CLUSTER: name"
 * line before each cluster's jobs; each record then names its cluster.
 */
export function parseSqueue(text: string, fields: readonly SqueueField[] = SQUEUE_FIELDS): SlurmJobRecord[] {
  const records: SlurmJobRecord[] = []
  let cluster: string | undefined
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const header = /^CLUSTER:\s*(\S+)/.exec(line)
    if (header) {
      cluster = header[1]
      continue
    }
    const parts = line.split('|')
    if (parts.length < fields.length) continue
    const values = parts.slice(0, fields.length - 1).concat(parts.slice(fields.length - 1).join('|'))
    const get = (field: SqueueField): string | undefined => {
      const i = fields.indexOf(field)
      return i < 0 ? undefined : values[i]!.trim()
    }
    const jobId = get('JobID')
    const stateText = get('State') || get('StateCompact')
    if (!jobId || !stateText) continue
    const record: SlurmJobRecord = { jobId, state: normalizeState(stateText), reason: get('Reason') ?? '' }
    const raw = get('exit_code')
    if (raw !== undefined && /^\d+$/.test(raw)) Object.assign(record, decodeWaitStatus(Number(raw)))
    const nodes = get('NodeList')
    if (nodes) record.nodeList = nodes
    if (cluster !== undefined) record.cluster = cluster
    records.push(record)
  }
  return records
}

/** squeue's "no such job" answer: for a single unknown id it exits 1 with this instead of printing nothing. */
export function isInvalidJobId(stderr: string): boolean {
  return /Invalid job id specified/i.test(stderr)
}

/** `sbatch --parsable` prints "id" or "id;cluster" (and possibly warnings on earlier lines). */
export function parseSbatch(stdout: string): { jobId: string; cluster?: string } | undefined {
  const lines = stdout.split('\n').map((line) => line.trim()).filter(Boolean)
  for (let i = lines.length - 1; i >= 0; i--) {
    const match = /^(\d+)(?:;(\S+))?$/.exec(lines[i]!)
    if (match) return match[2] ? { jobId: match[1]!, cluster: match[2] } : { jobId: match[1]! }
  }
  return undefined
}

/** "3:0" (exit code : signal), as scontrol and sacct print ExitCode. */
function parseExitPair(text: string | undefined): { exitCode?: number; signal?: number } {
  const match = /^(\d+):(\d+)$/.exec(text ?? '')
  if (!match) return {}
  const signal = Number(match[2])
  return signal !== 0 ? { signal } : { exitCode: Number(match[1]) }
}

/** `scontrol -o show job ID`: one line of Key=Value pairs per job. */
export function parseScontrol(text: string): SlurmJobRecord[] {
  const records: SlurmJobRecord[] = []
  for (const line of text.split('\n')) {
    const fields = new Map<string, string>()
    for (const match of line.matchAll(/(?:^|\s)([A-Za-z][\w/:]*)=(\S*)/g)) if (!fields.has(match[1]!)) fields.set(match[1]!, match[2]!)
    const jobId = fields.get('JobId')
    const state = fields.get('JobState')
    if (!jobId || !state) continue
    const record: SlurmJobRecord = { jobId, state: normalizeState(state), reason: fields.get('Reason') ?? '', ...parseExitPair(fields.get('ExitCode')) }
    const nodes = fields.get('NodeList')
    if (nodes && nodes !== '(null)') record.nodeList = nodes
    records.push(record)
  }
  return records
}

/** The sacct fields tsflow asks for (`sacct --noheader --parsable2 --allocations --format=...`). */
export const SACCT_FIELDS = 'JobIDRaw,State,ExitCode,Reason'

/** `sacct --noheader --parsable2 --allocations --format=JobIDRaw,State,ExitCode,Reason`. */
export function parseSacct(text: string): SlurmJobRecord[] {
  const records: SlurmJobRecord[] = []
  for (const line of text.split('\n')) {
    const [jobId, state, exit, ...reason] = line.trim().split('|')
    // steps (123.batch, 123.0) are left out by --allocations; skip them if a site's sacct prints them anyway
    if (!jobId || !state || !/^\d+$/.test(jobId)) continue
    records.push({ jobId, state: normalizeState(state), reason: reason.join('|'), ...parseExitPair(exit) })
  }
  return records
}

/** sacct's answer when the cluster keeps no accounting (as the test cluster here). */
export function isAccountingDisabled(stderr: string): boolean {
  return /accounting storage is disabled/i.test(stderr)
}

/**
 * One record as a block's JobInfo: the state through STATE_TABLE, and a message that says why
 * in words (the reason for a pending or failed job, what a final state like TIMEOUT means).
 * `walltime` names the block's walltime in the TIMEOUT message.
 */
export function jobInfo(record: SlurmJobRecord, walltime = ''): JobInfo {
  const native = record.state
  let state: BlockState = STATE_TABLE[native] ?? 'unknown'
  const reason = record.reason && record.reason !== 'None' ? record.reason : ''
  const parts: string[] = []
  if (!(native in STATE_TABLE)) parts.push(`Slurm state ${native} is not one tsflow knows`)
  if (native === 'PENDING' && reason) {
    const never = neverStarts(reason)
    const waits = WAITS_FOR_ACTION[reasonCode(reason)]
    if (never) {
      state = 'failed'
      parts.push(`Slurm will never start this job as submitted: ${reason}: ${never}`)
    } else if (waits) {
      parts.push(`waiting: ${reason}: ${waits}`)
    } else {
      parts.push(`waiting: ${reason}`)
    }
  } else {
    const words = STATE_WORDS[native]
    if (words) parts.push(native === 'TIMEOUT' && walltime ? `the block reached its walltime (${walltime}) and Slurm stopped it` : words)
    // Cancelled and completed jobs keep their last pending reason ("Priority"): noise there.
    if (reason && state === 'failed') parts.push(`reason ${reason}`)
  }
  if (record.signal !== undefined) parts.push(`ended by signal ${record.signal}`)
  // Where it runs: the first thing to check when its managers do not connect.
  if (state === 'running' && record.nodeList) parts.push(`on ${record.nodeList}`)
  const info: JobInfo = { state, nativeState: native }
  if (parts.length > 0) info.message = parts.join('; ')
  if (record.exitCode !== undefined) info.exitCode = record.exitCode
  return info
}
