import type { BlockState, BlockStatus } from '../base.js'

/**
 * How a pod's state becomes a block state. Pure: no API calls, so it is tested on real pod JSON
 * recorded from clusters (test/fixtures/kubernetes/).
 *
 * A pod is described by its phase and, inside it, the states of its containers; the block state
 * comes from the most telling of them. The keys are the native names a status reports as its
 * reason: pod phases, pod-level reasons (status.reason), container waiting and terminated
 * reasons and the PodScheduled condition's reason.
 */
export const STATE: Readonly<Record<string, BlockState>> = {
  // pod phases
  Pending: 'pending',
  Running: 'running',
  Succeeded: 'completed',
  Failed: 'failed',
  Unknown: 'unknown',
  // pending on the way to running
  Unschedulable: 'pending',
  ContainerCreating: 'pending',
  PodInitializing: 'pending',
  // waiting reasons that do not resolve by themselves: the kubelet would retry for ever, so the
  // block has failed as soon as one is seen (the provider then deletes the pod)
  ErrImagePull: 'failed',
  ImagePullBackOff: 'failed',
  InvalidImageName: 'failed',
  ErrImageNeverPull: 'failed',
  CreateContainerConfigError: 'failed',
  CreateContainerError: 'failed',
  RunContainerError: 'failed',
  CrashLoopBackOff: 'failed',
  // terminated container reasons
  Completed: 'completed',
  Error: 'failed',
  OOMKilled: 'failed',
  ContainerCannotRun: 'failed',
  StartError: 'failed',
  // pod-level reasons of a Failed pod
  Evicted: 'failed',
  DeadlineExceeded: 'failed',
  Preempting: 'failed',
  NodeLost: 'unknown',
}

/** The subset of a v1 Pod this module reads: plain JSON from the API, or the client's V1Pod. */
export interface PodLike {
  metadata?: { name?: string; labels?: Record<string, string>; deletionTimestamp?: unknown }
  status?: {
    phase?: string
    reason?: string
    message?: string
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[]
    containerStatuses?: ContainerStatusLike[]
    initContainerStatuses?: ContainerStatusLike[]
  }
}

interface ContainerStatusLike {
  name?: string
  restartCount?: number
  state?: {
    waiting?: { reason?: string; message?: string }
    running?: unknown
    terminated?: { reason?: string; message?: string; exitCode?: number; signal?: number }
  }
  lastState?: { terminated?: { reason?: string; message?: string; exitCode?: number } }
}

/** The label that names a pod's block (set by the provider on every pod it creates). */
export const BLOCK_LABEL = 'tsflow-block'
/** The label that names the provider instance (one workflow run) that created the pod. */
export const RUN_LABEL = 'tsflow-run'

/** What podToBlockStatus found, with the native state (a key of STATE) it decided on. */
export interface PodBlockStatus extends BlockStatus {
  nativeState: string
}

/**
 * The block state of one pod, with the reason Kubernetes gave as the message. Order of evidence:
 * a Failed or Succeeded phase with its container's termination; a container stuck waiting for a
 * reason that will not clear (image pull, bad config, crash loop); the scheduler's refusal
 * (PodScheduled=False) while pending; otherwise the phase.
 */
export function podToBlockStatus(pod: PodLike): PodBlockStatus {
  const name = pod.metadata?.name ?? '(unnamed pod)'
  const base = { blockId: pod.metadata?.labels?.[BLOCK_LABEL] ?? '', jobId: pod.metadata?.name ?? '' }
  const status = pod.status ?? {}
  const phase = status.phase ?? 'Pending'
  const containers = [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])]
  const result = (nativeState: string, message: string, extra: { exitCode?: number } = {}): PodBlockStatus => ({
    ...base,
    state: STATE[nativeState] ?? STATE[phase] ?? 'unknown',
    nativeState,
    message,
    ...extra,
  })

  // A failed container explains a failed pod best; the pod's own reason (Evicted,
  // DeadlineExceeded) comes first because then the container was stopped from outside.
  const failedContainer = (status.containerStatuses ?? []).find((c) => (c.state?.terminated?.exitCode ?? 0) !== 0)
  const terminated = failedContainer?.state?.terminated ?? (status.containerStatuses ?? []).find((c) => c.state?.terminated)?.state?.terminated

  if (phase === 'Failed') {
    if (status.reason) {
      const exit = terminated?.exitCode === undefined ? {} : { exitCode: terminated.exitCode }
      return result(status.reason, `pod ${name} failed: ${status.reason}${status.message ? `: ${status.message}` : ''}`, exit)
    }
    if (terminated) return terminatedStatus(result, name, failedContainer ?? (status.containerStatuses ?? []).find((c) => c.state?.terminated)!)
    return result('Failed', `pod ${name} failed${status.message ? `: ${status.message}` : ''}`)
  }
  if (phase === 'Succeeded') {
    return result('Succeeded', `pod ${name} succeeded${terminated?.reason ? ` (${terminated.reason})` : ''}`, { exitCode: terminated?.exitCode ?? 0 })
  }

  for (const container of containers) {
    const waiting = container.state?.waiting
    if (waiting?.reason && STATE[waiting.reason] === 'failed') {
      const last = container.lastState?.terminated
      const before = last ? `; it last ended with ${last.reason ?? 'exit'} (exit code ${last.exitCode ?? '?'})${last.message ? `:\n${last.message.trimEnd()}` : ''}` : ''
      const exit = last?.exitCode === undefined ? {} : { exitCode: last.exitCode }
      return result(waiting.reason, `pod ${name}: container ${container.name ?? '?'} is waiting: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}${before}`, exit)
    }
  }

  if (phase === 'Pending') {
    const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled')
    if (scheduled?.status === 'False') {
      const reason = scheduled.reason ?? 'Unschedulable'
      return result(reason in STATE ? reason : 'Pending', `pod ${name} is not scheduled: ${reason}${scheduled.message ? `: ${scheduled.message}` : ''}`)
    }
    const waiting = containers.find((c) => c.state?.waiting?.reason)?.state?.waiting
    if (waiting?.reason) {
      return result(waiting.reason in STATE ? waiting.reason : 'Pending', `pod ${name} is pending: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`)
    }
    return result('Pending', `pod ${name} is pending${status.message ? `: ${status.message}` : ''}`)
  }
  if (phase === 'Running') {
    // With restartPolicy Never the phase follows the container within a moment; a container that
    // has already ended decides now, so a block is not reported running after its command ended.
    const ours = status.containerStatuses ?? []
    if (ours.length > 0 && ours.every((c) => c.state?.terminated)) {
      return terminatedStatus(result, name, failedContainer ?? ours[0]!)
    }
    return result('Running', `pod ${name} is running${pod.metadata?.deletionTimestamp ? ' (being deleted)' : ''}`)
  }
  return result(phase in STATE ? phase : 'Unknown', `pod ${name} is in phase ${phase}${status.reason ? ` (${status.reason})` : ''}${status.message ? `: ${status.message}` : ''}`)
}

function terminatedStatus(
  result: (nativeState: string, message: string, extra?: { exitCode?: number }) => PodBlockStatus,
  pod: string,
  container: ContainerStatusLike,
): PodBlockStatus {
  const terminated = container.state!.terminated!
  const code = terminated.exitCode
  const reason = terminated.reason ?? (code === 0 ? 'Completed' : 'Error')
  const hint = reason === 'OOMKilled' ? ' (the container exceeded its memory limit: raise memPerNode or limits.memory)' : ''
  // With terminationMessagePolicy FallbackToLogsOnError (set by the provider) the message of a
  // failed container is the tail of its output: the block's stderr.
  const output = terminated.message ? `; last lines of its output:\n${terminated.message.trimEnd()}` : ''
  const signal = terminated.signal ? `, signal ${terminated.signal}` : ''
  return result(reason in STATE ? reason : code === 0 ? 'Completed' : 'Error', `pod ${pod}: container ${container.name ?? '?'} terminated: ${reason} (exit code ${code ?? '?'}${signal})${hint}${output}`, code === undefined ? {} : { exitCode: code })
}
