// Resource sampling and manager events end to end (docs/monitoring.md "Resource sampling and
// manager events"): real HTEX runs on the local provider, real managers reading real /proc, the
// samples and events checked where users see them, on the diagnostics channels.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { channels, DataFlowKernel, HighThroughputExecutor, LocalProvider, type TaskStateMessage } from 'tsflow'
import { burn } from './fixtures/monitoring-apps.js'
import { sleep } from './fixtures/apps.js'
import { waitFor } from './helpers/wait.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-mon-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const MB = 2 ** 20
type MessageOf<C> = C extends { subscribe(listener: (message: infer M, name: string | symbol) => void): void } ? M : never
type ResourceMessage = MessageOf<typeof channels.taskResource>
type ManagerMessage = MessageOf<typeof channels.manager>

/** Everything published on the three channels while a test runs (subscribed before its kernel starts). */
function listen(t: Test): { resources: ResourceMessage[]; managers: ManagerMessage[]; launched: Map<number, number> } {
  const seen = { resources: [] as ResourceMessage[], managers: [] as ManagerMessage[], launched: new Map<number, number>() }
  const onResource = (message: ResourceMessage) => seen.resources.push(message)
  const onManager = (message: ManagerMessage) => seen.managers.push(message)
  const onState = (message: TaskStateMessage) => message.to === 'launched' && seen.launched.set(message.taskId, message.tryNumber)
  t.teardown(() => {
    channels.taskResource.unsubscribe(onResource)
    channels.manager.unsubscribe(onManager)
    channels.taskState.unsubscribe(onState)
  })
  channels.taskResource.subscribe(onResource)
  channels.manager.subscribe(onManager)
  channels.taskState.subscribe(onState)
  return seen
}

function findFiles(dir: string, pattern: RegExp, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isFile() && pattern.test(entry.name)) found.push(path)
    if (entry.isDirectory()) findFiles(path, pattern, found)
  }
  return found
}

/** The file system type of the mount holding `path` (the longest mount point that prefixes it). */
function fileSystemOf(path: string): string {
  let best = { point: '', type: 'unknown' }
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, point, type] = line.split(' ')
    if (point && type && (path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length > best.point.length) best = { point, type }
  }
  return best.type
}

function executor(label: string, workerMode: 'processes' | 'threads', extra: Partial<ConstructorParameters<typeof HighThroughputExecutor>[0]> = {}) {
  return new HighThroughputExecutor({
    label,
    workerMode,
    maxWorkersPerNode: 2,
    strategy: 'none',
    heartbeatPeriodMs: 300,
    heartbeatThresholdMs: 2000,
    provider: new LocalProvider({ initBlocks: 1, minBlocks: 0, maxBlocks: 1 }),
    ...extra,
  })
}

for (const mode of ['processes', 'threads'] as const) {
  t.test(`${mode}: managers sample running tasks and report registration and stop`, async (t) => {
    const seen = listen(t)
    const label = `htex_mon_${mode}`
    const runDir = join(scratch, mode)
    const kernel = await new DataFlowKernel({
      runDir,
      monitoring: { enabled: true, resourceIntervalMs: 100, db: join(scratch, `${mode}.db`) },
      executors: [executor(label, mode)],
    }).start()
    let cleaned = false
    t.teardown(() => (cleaned ? undefined : kernel.cleanup({ deadlineMs: 3000 })))
    const runId = kernel.runId!

    await waitFor(() => seen.managers.some((m) => m.event === 'registered'), 'the manager to register')
    const registered = seen.managers.find((m) => m.event === 'registered')!
    t.match(registered, { runId, executor: label, hostname: hostname(), workers: 2 }, 'registration: host, workers, run')
    t.type(registered.blockId, 'string', 'registration names its block')
    t.type(registered.managerId, 'string')

    const task = burn.with({ dfk: kernel })
    const file = join(scratch, `${mode}-written`)
    const started = Date.now()
    const futures = [task(1500, 120, `${file}-0`, 2048), task(1500, 120, `${file}-1`, 2048)]
    await Promise.all(futures)
    const elapsedMs = Date.now() - started
    const ids = futures.map((future) => future.taskId)

    t.ok(seen.resources.every((message) => message.runId === runId && message.executor === label), 'messages name the run and executor')
    const samples = seen.resources.flatMap((message) => message.samples)
    // One message per tick with something running, whatever the number of tasks: never more.
    t.ok(seen.resources.length > 0 && seen.resources.length <= Math.ceil(elapsedMs / 100) + 1, `${seen.resources.length} sample messages in ${elapsedMs} ms`)
    t.ok(seen.resources.some((message) => message.samples.length === 2), 'the two running tasks travel in one message')
    for (const id of ids) {
      const mine = samples.filter((sample) => sample.taskId === id)
      t.ok(mine.length >= 3, `task ${id}: ${mine.length} samples of a 1.5 s task at 100 ms`)
      t.ok(mine.every((sample) => sample.tryNumber === seen.launched.get(id)), `task ${id}: the kernel's try number ${seen.launched.get(id)}`)
      t.ok(mine.every((sample) => sample.managerId === registered.managerId && sample.hostname === hostname()), 'the manager and host that sampled')
      const cpu = mine.map((sample) => sample.cpuUserS + sample.cpuSystemS)
      t.ok(
        cpu.every((value, i) => i === 0 || value >= cpu[i - 1]!),
        `task ${id}: CPU time never decreases (${cpu.map((s) => s.toFixed(2)).join(', ')})`,
      )
      // Two busy loops on a shared machine get what the scheduler gives them: some, growing.
      t.ok(cpu.at(-1)! > 0.1 && cpu.at(-1)! > cpu[0]!, `task ${id}: a 1.5 s busy loop used ${cpu.at(-1)!.toFixed(2)} s of CPU`)
      t.ok(cpu.at(-1)! < 3, 'no more CPU than the worker can have used')
      const rss = Math.max(...mine.map((sample) => sample.rssBytes))
      t.ok(rss >= 120 * MB && rss < 4096 * MB, `task ${id}: RSS ${Math.round(rss / MB)} MB with 120 MB held`)
      t.ok(mine.every((sample) => sample.readBytes >= 0 && sample.writeBytes >= 0), 'byte counters are counts')
      // The task flushes 2 MB to a file halfway through, after its first samples. Memory-backed
      // file systems write no storage, so write_bytes stays 0 there.
      const written = Math.max(...mine.map((sample) => sample.writeBytes))
      const fs = fileSystemOf(scratch)
      if (fs === 'tmpfs' || fs === 'ramfs') t.pass('bytes written', { skip: `${scratch} is on ${fs}: no storage writes to see` })
      else t.ok(written >= 2 * MB, `task ${id}: ${written} bytes written to storage seen (${fs})`)
    }
    // Only the two burn tasks ran: nothing else was sampled.
    t.same([...new Set(samples.map((sample) => sample.taskId))].sort(), [...ids].sort(), 'samples name only the tasks that ran')

    const log = findFiles(runDir, /^manager-.*\.log$/)
    t.equal(log.length, 1, 'one manager log')
    t.match(readFileSync(log[0]!, 'utf8'), /sampling running tasks' CPU, memory and I\/O from \/proc every 100 ms/)

    await kernel.cleanup({ deadlineMs: 3000 })
    cleaned = true
    const stopped = seen.managers.filter((m) => m.event === 'stopped')
    t.equal(stopped.length, 1, 'the clean stop at shutdown is reported')
    t.match(stopped[0], { managerId: registered.managerId, executor: label, reason: /interchange stopped/ })
  })
}

// SIGKILL ends the block's process too (the provider sees it); SIGSTOP leaves it alive and silent.
for (const [signal, reason] of [
  ['SIGKILL', /heartbeat|block .* ended/],
  ['SIGSTOP', /no heartbeat for \d+ ms \(threshold 2000 ms\)/],
] as const) {
  t.test(`a manager ${signal === 'SIGKILL' ? 'killed' : 'frozen'} mid-run (${signal}) is reported lost with the reason`, async (t) => {
    const seen = listen(t)
    const label = `htex_mon_${signal.toLowerCase()}`
    const htex = executor(label, 'processes', { maxWorkersPerNode: 1 })
    const kernel = await new DataFlowKernel({
      runDir: join(scratch, signal),
      monitoring: { enabled: true, resourceIntervalMs: 100, db: join(scratch, `${signal}.db`) },
      executors: [htex],
    }).start()
    t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
    const future = sleep.with({ dfk: kernel })(60_000)
    await waitFor(() => seen.resources.some((message) => message.samples.some((s) => s.taskId === future.taskId)), 'a sample of the running task')
    const manager = htex.managers()[0]!
    // A frozen manager is killed at the end; its workers follow their parent.
    if (signal === 'SIGSTOP') t.teardown(() => process.kill(manager.pid, 'SIGKILL'))
    process.kill(manager.pid, signal)
    await t.rejects(future, 'the task on the lost manager fails')
    await waitFor(() => seen.managers.some((m) => m.event === 'lost'), 'the lost event')
    const lost = seen.managers.find((m) => m.event === 'lost')!
    t.match(lost, { executor: label, managerId: manager.managerId, blockId: manager.blockId, hostname: manager.host })
    t.match(lost.reason, reason, `the reason: ${lost.reason}`)
  })
}

t.test('a manager stopped by SIGTERM says so: a clean stop with its reason, after its task failed', async (t) => {
  const seen = listen(t)
  const htex = executor('htex_mon_term', 'processes', { maxWorkersPerNode: 1 })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'term'), executors: [htex] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  const future = sleep.with({ dfk: kernel })(60_000)
  await waitFor(() => future.state === 'running', 'the task to run')
  const manager = htex.managers()[0]!
  process.kill(manager.pid, 'SIGTERM')
  await t.rejects(future, /received SIGTERM/, 'the task fails naming the signal')
  await waitFor(() => seen.managers.some((m) => m.event === 'stopped'), 'the stopped event')
  t.match(seen.managers.find((m) => m.event === 'stopped'), { managerId: manager.managerId, reason: /received SIGTERM; shutting down/ })
  t.notOk(seen.managers.some((m) => m.event === 'lost'), 'not reported lost as well')
})

t.test('monitoring off: no sampler in the manager and nothing on the channel', async (t) => {
  const seen = listen(t)
  const runDir = join(scratch, 'off')
  const htex = executor('htex_mon_off', 'processes')
  const kernel = await new DataFlowKernel({ runDir, executors: [htex] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  const task = burn.with({ dfk: kernel })
  await Promise.all([task(600, 10), task(600, 10)])
  t.equal(seen.resources.length, 0, 'the resource channel stayed silent')
  // Manager events are rare and are reported whether or not resources are sampled.
  t.ok(seen.managers.some((m) => m.event === 'registered'), 'the registration is still reported')
  const pid = htex.managers()[0]!.pid
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  t.notOk(argv.includes('--resource-interval-ms'), 'the manager was not asked to sample')
  const log = readFileSync(findFiles(runDir, /^manager-.*\.log$/)[0]!, 'utf8')
  t.notMatch(log, /sampling running tasks/, 'so it started no sampler')
})
