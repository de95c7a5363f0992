// The diagnostics channels of the workflow process (docs/monitoring.md "Diagnostics channels"):
// what a subscriber sees of a small real workflow, and that nothing is published when nobody
// subscribes.
import diagnosticsChannel from 'node:diagnostics_channel'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { listen } from './helpers/channels.js'
import {
  CHANNEL_NAMES,
  DataFlowKernel,
  ThreadPoolExecutor,
  awaitAllSettled,
  channels,
  type TaskRetryMessage,
  type TaskStateMessage,
  type WorkflowEndMessage,
  type WorkflowStartMessage,
} from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-channels-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
let runs = 0

/** A started kernel with one thread, cleaned up at the end of `t`. */
async function kernel(t: Test, retries = 0): Promise<DataFlowKernel> {
  const dfk = new DataFlowKernel({ runDir: join(scratch, `run-${++runs}`), retries, executors: [new ThreadPoolExecutor({ label: 'one', maxThreads: 1 })] })
  t.teardown(() => dfk.cleanup())
  return dfk.start()
}


const transitions = (messages: TaskStateMessage[], taskId: number) =>
  messages.filter((m) => m.taskId === taskId).map((m) => `${m.from}->${m.to}#${m.tryNumber}`)

t.test('the channel names are the documented ones, and the same channels as by name', async (t) => {
  t.same(CHANNEL_NAMES, { taskState: 'tsflow:task:state', taskRetry: 'tsflow:task:retry', workflowStart: 'tsflow:workflow:start', workflowEnd: 'tsflow:workflow:end', block: 'tsflow:block', manager: 'tsflow:manager', taskResource: 'tsflow:task:resource' })
  for (const [role, name] of Object.entries(CHANNEL_NAMES)) {
    t.equal(channels[role as keyof typeof channels], diagnosticsChannel.channel(name) as unknown, `${role} is diagnostics_channel.channel('${name}')`)
  }
})

t.test('a subscriber sees every state change of a small workflow in order', async (t) => {
  const states = listen<TaskStateMessage>(t, channels.taskState)
  const dfk = await kernel(t)
  const before = Date.now()
  const first = apps.double.with({ dfk })(1)
  const second = apps.add.with({ dfk })(first, 1)
  const failing = apps.failWithCause.with({ dfk })('x')
  const dependent = apps.double.with({ dfk })(failing as unknown as number)
  await awaitAllSettled([first, second, failing, dependent])

  t.same(transitions(states, first.taskId), ['unsched->launched#0', 'launched->running#0', 'running->exec_done#0'])
  t.same(transitions(states, second.taskId), ['unsched->pending#0', 'pending->launched#0', 'launched->running#0', 'running->exec_done#0'])
  t.same(transitions(states, failing.taskId), ['unsched->launched#0', 'launched->running#0', 'running->failed#0'])
  t.same(transitions(states, dependent.taskId), ['unsched->pending#0', 'pending->dep_fail#0'])

  const done = states.find((m) => m.taskId === second.taskId && m.to === 'exec_done')!
  t.equal(done.appName, 'add')
  t.equal(done.executor, 'one', 'the executor label once chosen')
  t.equal(states.find((m) => m.taskId === second.taskId && m.to === 'pending')!.executor, undefined, 'none while waiting')
  t.ok(states.every((m) => m.runId === dfk.runId), 'every message carries the run id')
  t.equal(states.find((m) => m.taskId === second.taskId && m.to === 'pending')!.waitingOn, 1, 'pending says how many futures the task waits for')
  t.ok(states.filter((m) => m.to !== 'pending').every((m) => m.waitingOn === 0), 'other changes say 0')
  const failed = states.find((m) => m.taskId === failing.taskId && m.to === 'failed')!
  t.equal(failed.error, failing.exception(), 'failed carries the error the future holds')
  t.match((failed.error as Error).stack, /failWithCause/, 'with the stack from where the task ran')
  t.match(states.find((m) => m.taskId === dependent.taskId && m.to === 'dep_fail')!.error, { code: 'E_DEPENDENCY' }, 'dep_fail carries its DependencyError')
  t.ok(states.filter((m) => m.to !== 'failed' && m.to !== 'dep_fail').every((m) => m.error === undefined), 'other changes carry none')
  const times = states.map((m) => m.timeMs)
  t.ok(times.every((time, i) => time >= before && (i === 0 || time >= times[i - 1]!)), 'times are wall-clock ms, in publication order')
  // Each task's last message is its final state, and the kernel's counts agree with the messages.
  const counts = dfk.taskCounts()
  t.equal(states.filter((m) => m.to === 'exec_done').length, counts.exec_done)
  t.equal(states.filter((m) => m.to === 'dep_fail').length, counts.dep_fail)
})

t.test('retries are published with their cause, before the retry runs', async (t) => {
  const states = listen<TaskStateMessage>(t, channels.taskState)
  const retries = listen<TaskRetryMessage>(t, channels.taskRetry)
  const dfk = await kernel(t)
  const flaky = apps.flaky.with({ dfk })(2)
  t.equal(await flaky, 2)

  t.same(transitions(states, flaky.taskId), [
    'unsched->launched#0',
    'launched->running#0',
    'running->pending#1',
    'pending->launched#1',
    'launched->running#1',
    'running->pending#2',
    'pending->launched#2',
    'launched->running#2',
    'running->exec_done#2',
  ])
  t.equal(retries.length, 2)
  retries.forEach((retry, i) => {
    t.equal(retry.taskId, flaky.taskId)
    t.equal(retry.appName, 'flaky')
    t.equal(retry.executor, 'one')
    t.equal(retry.tryNumber, i, 'the try that failed')
    t.equal(retry.free, false)
    t.equal(retry.failCost, i + 1)
    t.match(retry.cause, { message: `flaky: try ${i} fails` }, 'the failure itself is the cause')
  })
})

t.test('a retry message comes before the state change into the retry', async (t) => {
  const order: string[] = []
  const onState = (m: TaskStateMessage) => order.push(m.to)
  const onRetry = () => order.push('retry')
  channels.taskState.subscribe(onState)
  channels.taskRetry.subscribe(onRetry)
  t.teardown(() => {
    channels.taskState.unsubscribe(onState)
    channels.taskRetry.unsubscribe(onRetry)
  })
  const dfk = await kernel(t)
  await apps.flaky.with({ dfk })(1)
  t.same(order, ['launched', 'running', 'retry', 'pending', 'launched', 'running', 'exec_done'])
})

t.test('workflow start and end carry the run id and directory', async (t) => {
  const starts = listen<WorkflowStartMessage>(t, channels.workflowStart)
  const ends = listen<WorkflowEndMessage>(t, channels.workflowEnd)
  const dfk = await kernel(t)
  t.equal(starts.length, 1)
  t.match(starts[0], { runId: dfk.runId, runDir: dfk.runDir, executors: ['one'] })
  t.match(dfk.runId, /^[0-9a-f-]{36}$/)
  t.equal(ends.length, 0, 'no end before cleanup')
  await apps.double.with({ dfk })(2)
  await t.rejects(apps.failWithCause.with({ dfk })('y'))
  await dfk.cleanup()
  t.equal(ends.length, 1)
  t.match(ends[0], { runId: dfk.runId, runDir: dfk.runDir })
  t.match(ends[0]!.counts, { exec_done: 1, failed: 1, running: 0, pending: 0, launched: 0 })
  t.ok(ends[0]!.timeMs >= starts[0]!.timeMs)
  const other = await kernel(t)
  t.not(other.runId, dfk.runId, 'each start has its own id')
})

t.test('with no subscriber the kernel publishes nothing; with one, once per change', async (t) => {
  // Counts the calls on the real channel object (restored at the end): the kernel must test
  // hasSubscribers and not even call publish when nobody listens.
  let published = 0
  const channel = channels.taskState as unknown as { publish(message: unknown): void }
  channel.publish = function (this: object, message: unknown) {
    published++
    // Node swaps the channel's prototype when it gains subscribers: call the current one's.
    return (Object.getPrototypeOf(this) as typeof channel).publish.call(this, message)
  }
  t.teardown(() => void delete (channel as { publish?: unknown }).publish)
  t.equal(channels.taskState.hasSubscribers, false, 'nobody listens to start with')

  const dfk = await kernel(t)
  const many = Array.from({ length: 200 }, (_, i) => apps.double.with({ dfk })(i))
  await awaitAllSettled(many)
  t.equal(published, 0, 'no publication for 200 tasks nobody watched')

  const states = listen<TaskStateMessage>(t, channels.taskState)
  await awaitAllSettled(Array.from({ length: 50 }, (_, i) => apps.double.with({ dfk })(i)))
  t.equal(states.length, 150, 'launched, running, exec_done for each of 50 tasks')
  t.equal(published, states.length, 'one publish per message seen')
})
