// podToBlockStatus on real pods recorded from clusters (test/fixtures/kubernetes/, see SOURCES.md)
// and on constructed ones for the states no recording covers.

import { readFileSync } from 'node:fs'
import t from 'tap'

import { KUBERNETES_STATE, podToBlockStatus } from 'tsflow'

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/kubernetes/${name}.json`, import.meta.url), 'utf8'))

const recorded: [string, string, string, RegExp, number | undefined][] = [
  ['single_completed_pod', 'completed', 'Succeeded', /pod bash succeeded \(Completed\)/, 0],
  ['single_error_pod', 'failed', 'Error', /container jupyter terminated: Error \(exit code 1\)/, 1],
  ['single_crash_loop_pod', 'failed', 'CrashLoopBackOff', /container jupyter is waiting: CrashLoopBackOff: back-off 10s restarting failed container=jupyter.*last ended with Error \(exit code 127\)/, 127],
  ['single_image_error_pod', 'failed', 'ImagePullBackOff', /ImagePullBackOff: Back-off pulling image "docker-registry.osc.edu\/ondemand\/ondemand-base-rhel7:dne"/, undefined],
  ['single_queued_pod', 'pending', 'PodInitializing', /is pending: PodInitializing/, undefined],
  ['single_running_pod', 'running', 'Running', /is running/, undefined],
  ['single_running_pod_not_ready', 'running', 'Running', /is running/, undefined],
  ['single_unscheduleable_pod', 'pending', 'Unschedulable', /not scheduled: Unschedulable: 0\/3 nodes are available: 3 node\(s\) didn't match node selector\./, undefined],
]
for (const [name, state, native, message, exitCode] of recorded) {
  t.test(`recorded ${name}: ${native} -> ${state}`, async (t) => {
    const status = podToBlockStatus(fixture(name))
    t.equal(status.state, state)
    t.equal(status.nativeState, native)
    t.equal(KUBERNETES_STATE[native], state, 'the table agrees')
    t.match(status.message, message)
    t.equal(status.exitCode, exitCode)
    t.equal(status.jobId, fixture(name).metadata.name)
  })
}

t.test('a recorded PodList maps item by item', async (t) => {
  const list = fixture('several_pods')
  t.same(
    list.items.map((pod: object) => podToBlockStatus(pod).state),
    ['completed', 'pending', 'failed', 'running'],
  )
})

// Constructed in the documented shapes (no recording available; see SOURCES.md).
const pod = (status: object, labels: Record<string, string> = { 'tsflow-block': '7' }) => ({ metadata: { name: 'tsflow-ab12cd34-7', labels }, status })
const terminated = (reason: string, exitCode: number, message?: string) => ({
  name: 'tsflow-block',
  restartCount: 0,
  state: { terminated: { reason, exitCode, ...(message ? { message } : {}) } },
})

t.test('constructed: OOMKilled is failed with exit code 137 and a hint', async (t) => {
  const status = podToBlockStatus(pod({ phase: 'Failed', containerStatuses: [terminated('OOMKilled', 137)] }))
  t.match(status, { state: 'failed', nativeState: 'OOMKilled', exitCode: 137, blockId: '7' })
  t.match(status.message, /terminated: OOMKilled \(exit code 137\) \(the container exceeded its memory limit: raise memPerNode or limits.memory\)/)
})

t.test('constructed: Evicted and DeadlineExceeded use the pod-level reason and message', async (t) => {
  const evicted = podToBlockStatus(pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: ephemeral-storage.' }))
  t.match(evicted, { state: 'failed', nativeState: 'Evicted' })
  t.match(evicted.message, /failed: Evicted: The node was low on resource: ephemeral-storage\./)
  const deadline = podToBlockStatus(pod({ phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline', containerStatuses: [terminated('Error', 143)] }))
  t.match(deadline, { state: 'failed', nativeState: 'DeadlineExceeded', exitCode: 143 })
})

t.test('constructed: a failed container carries the tail of its output (FallbackToLogsOnError)', async (t) => {
  const status = podToBlockStatus(pod({ phase: 'Failed', containerStatuses: [terminated('Error', 3, 'Traceback...\nModuleNotFoundError: tsflow\n')] }))
  t.match(status, { state: 'failed', exitCode: 3 })
  t.match(status.message, /exit code 3\); last lines of its output:\nTraceback\.\.\.\nModuleNotFoundError: tsflow$/)
})

t.test('constructed: other failing waiting reasons, the Unknown phase, and a Running pod whose container ended', async (t) => {
  for (const reason of ['ErrImagePull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']) {
    const status = podToBlockStatus(pod({ phase: 'Pending', containerStatuses: [{ name: 'c', state: { waiting: { reason, message: 'why' } } }] }))
    t.match(status, { state: 'failed', nativeState: reason, message: new RegExp(`${reason}: why`) }, reason)
  }
  t.match(podToBlockStatus(pod({ phase: 'Pending', containerStatuses: [{ name: 'c', state: { waiting: { reason: 'ContainerCreating' } } }] })), { state: 'pending', nativeState: 'ContainerCreating' })
  t.match(podToBlockStatus(pod({ phase: 'Unknown' })), { state: 'unknown', nativeState: 'Unknown' })
  t.match(podToBlockStatus(pod({ phase: 'Running', containerStatuses: [terminated('Completed', 0)] })), { state: 'completed', exitCode: 0 })
  t.match(podToBlockStatus(pod({ phase: 'Running', containerStatuses: [terminated('Error', 2)] })), { state: 'failed', exitCode: 2 })
  t.match(podToBlockStatus(pod({})), { state: 'pending', nativeState: 'Pending' }, 'a pod without status yet is pending')
})

t.test('every value of the table is a block state', async (t) => {
  const states = new Set(['pending', 'running', 'completed', 'failed', 'cancelled', 'unknown'])
  for (const [native, state] of Object.entries(KUBERNETES_STATE)) t.ok(states.has(state), `${native} -> ${state}`)
})
