// The manager with worker processes (--mode processes): crashes, kills, walltimes, affinity and
// accelerators, all against real processes.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import t, { type Test } from 'tap'

import { TaskCancelled, WalltimeExceeded, WorkerLost } from 'tsflow'
import { nativeAvailable, onlineCpuCount } from 'tsflow/native'
import type { ManagerSpec } from 'tsflow/protocol'
import type { WorkerFacts } from './fixtures/apps.js'
import { FakeInterchange, alive, cpusAllowed, spawnManager, task, waitFor } from './harness.js'

async function started(t: Test, args: ManagerSpec) {
  const ix = await FakeInterchange.start(t)
  const manager = spawnManager(t, ix, { workerMode: 'processes', ...args })
  await waitFor(() => ix.registered > 0, 'registration')
  return { ix, manager }
}

/** A fresh directory where whoamiTogether calls meet. */
function rendezvousDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-meet-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('runs tasks in worker processes, not in the manager', async (t) => {
  const { ix, manager } = await started(t, { workers: 2 })
  await ix.sendTasks([task(1, 'add', [20, 22]), task(2, 'whoami')])
  const [sum, facts] = await ix.outcomesOf([1, 2])
  t.same(sum, { ok: true, value: 42 })
  const who = facts!.value as WorkerFacts
  t.not(who.pid, manager.child.pid)
  t.match(who.rank, /^[01]$/)
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
  await waitFor(() => !alive(who.pid), `worker ${who.pid} to be gone`, 5000)
})

t.test('process.exit(3) in a task: WorkerLost with exit code 3, and a replacement runs later tasks', async (t) => {
  const { ix, manager } = await started(t, { workers: 2 })
  await ix.sendTasks([task(1, 'exitWith', [3])])
  const [lost] = await ix.outcomesOf([1])
  t.ok(lost!.error instanceof WorkerLost, String(lost!.error?.message))
  t.equal(lost!.error!.exitCode, 3)
  t.equal(lost!.error!.signal, null)
  t.match(lost!.error!.message, /task #1 .*exited with code 3/)
  const ids = Array.from({ length: 20 }, (_, i) => 10 + i)
  await ix.sendTasks(ids.map((id) => task(id, 'add', [id, 1])))
  t.same((await ix.outcomesOf(ids)).map((o) => o.value), ids.map((id) => id + 1))
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('a crash inside a batch fails only the task responsible', async (t) => {
  const { ix, manager } = await started(t, { workers: 1, prefetchCapacity: 50 })
  // Sent together, these share batches; the manager re-runs them one by one to find the culprit.
  const ids = Array.from({ length: 30 }, (_, i) => i + 1)
  await ix.sendTasks(ids.map((id) => (id === 17 ? task(id, 'exitWith', [5]) : task(id, 'add', [id, 0]))))
  const outcomes = await ix.outcomesOf(ids)
  for (const [i, outcome] of outcomes.entries()) {
    if (ids[i] === 17) t.equal(outcome.error?.exitCode, 5, 'the crashing task gets WorkerLost')
    else if (!outcome.ok) t.fail(`task ${ids[i]} failed: ${outcome.error?.message}`)
  }
  t.ok(outcomes.filter((o) => o.ok).length === 29, 'every other task succeeded')
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('SIGKILL of a worker mid-task: WorkerLost with signal SIGKILL', async (t) => {
  const { ix, manager } = await started(t, { workers: 1 })
  const marker = join(t.testdir(), 'running')
  await ix.sendTasks([task(1, 'markAndSleep', [marker, 60_000])])
  await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') !== '', 'the task to start')
  process.kill(Number(readFileSync(marker, 'utf8')), 'SIGKILL')
  const [lost] = await ix.outcomesOf([1])
  t.ok(lost!.error instanceof WorkerLost, String(lost!.error?.message))
  t.equal(lost!.error!.signal, 'SIGKILL')
  t.equal(lost!.error!.exitCode, null)
  await ix.sendTasks([task(2, 'add', [1, 2])])
  t.same((await ix.outcomesOf([2]))[0], { ok: true, value: 3 }, 'a replacement worker runs the next task')
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('cancel of a task running alone kills its worker and answers TaskCancelled', async (t) => {
  const { ix, manager } = await started(t, { workers: 1 })
  const marker = join(t.testdir(), 'running')
  await ix.sendTasks([task(1, 'markAndSleep', [marker, 60_000])])
  await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') !== '', 'the task to start')
  const pid = Number(readFileSync(marker, 'utf8'))
  await ix.send({ t: 'cancel', ids: [1] })
  const [cancelled] = await ix.outcomesOf([1])
  t.ok(cancelled!.error instanceof TaskCancelled, String(cancelled!.error?.message))
  await waitFor(() => !alive(pid), 'the worker to be gone')
  await ix.sendTasks([task(2, 'add', [2, 5])])
  t.same((await ix.outcomesOf([2]))[0], { ok: true, value: 7 })
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('walltime: the worker running a sleeping task is killed, WalltimeExceeded is reported', async (t) => {
  const { ix, manager } = await started(t, { workers: 2 })
  await ix.sendTasks([task(1, 'whoami')])
  await ix.outcomesOf([1])
  const begun = Date.now()
  await ix.sendTasks([task(2, 'sleep', [60_000], { wt: 0.5 }), task(3, 'sleep', [50])])
  const [slow, quick] = await ix.outcomesOf([2, 3])
  t.ok(slow!.error instanceof WalltimeExceeded, String(slow!.error?.message))
  t.ok(Date.now() - begun < 10_000, 'stopped near its walltime, not at the end of the sleep')
  t.equal(quick!.ok, true)
  await ix.sendTasks([task(4, 'add', [2, 2])])
  t.same((await ix.outcomesOf([4]))[0], { ok: true, value: 4 })
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('a bash app stops itself at its walltime; its worker is spared (grace period)', async (t) => {
  const { ix, manager } = await started(t, { workers: 1 })
  await ix.sendTasks([task(1, 'whoami')])
  const before = ((await ix.outcomesOf([1]))[0]!.value as WorkerFacts).pid
  await ix.sendTasks([task(2, 'bashSleep', [30], { wt: 0.3, bash: true })])
  const [slow] = await ix.outcomesOf([2])
  t.ok(slow!.error instanceof WalltimeExceeded, String(slow!.error?.message))
  await ix.sendTasks([task(3, 'whoami')])
  t.equal(((await ix.outcomesOf([3]))[0]!.value as WorkerFacts).pid, before, 'same worker process')
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('affinity block pins each of 2 workers to its own CPU', { skip: !nativeAvailable() || onlineCpuCount() < 2 ? 'needs the native addon and 2 CPUs' : false }, async (t) => {
  const { ix, manager } = await started(t, { workers: 2, cpuAffinity: 'block' })
  // The two calls wait for each other, so they run at the same time on different workers.
  const meet = rendezvousDir(t)
  await ix.sendTasks([task(1, 'whoamiTogether', [meet, 2]), task(2, 'whoamiTogether', [meet, 2])])
  const facts = (await ix.outcomesOf([1, 2])).map((o) => o.value as WorkerFacts)
  t.not(facts[0]!.pid, facts[1]!.pid, 'two different workers')
  const byRank = new Map(facts.map((f) => [f.rank, f]))
  for (const rank of ['0', '1']) {
    const f = byRank.get(rank)!
    t.same(f.cpus, [Number(rank)], `worker ${rank} reads its own affinity`)
    t.same(cpusAllowed(f.pid), [Number(rank)], `/proc/${f.pid}/status Cpus_allowed_list`)
    t.equal(f.cpusEnv, rank)
  }
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('accelerators a,b: each worker gets its own CUDA_VISIBLE_DEVICES', async (t) => {
  const { ix, manager } = await started(t, { workers: 4, accelerators: ['a', 'b'] })
  t.equal(ix.registers[0]!.workers, 2, 'workers capped at one per accelerator')
  t.same(ix.registers[0]!.accelerators, ['a', 'b'])
  const meet = rendezvousDir(t)
  await ix.sendTasks([task(1, 'whoamiTogether', [meet, 2]), task(2, 'whoamiTogether', [meet, 2])])
  const facts = (await ix.outcomesOf([1, 2])).map((o) => o.value as WorkerFacts)
  t.same(facts.map((f) => `${f.rank}=${f.accelerator}`).sort(), ['0=a', '1=b'])
  await ix.send({ t: 'shutdown' })
  t.equal((await manager.exit).code, 0)
})

t.test('SIGTERM stops the manager and leaves no worker behind', async (t) => {
  const { ix, manager } = await started(t, { workers: 2 })
  await ix.sendTasks([task(1, 'whoamiAfter', [200]), task(2, 'whoamiAfter', [200])])
  const pids = (await ix.outcomesOf([1, 2])).map((o) => (o.value as WorkerFacts).pid)
  await ix.sendTasks([task(3, 'sleep', [60_000])])
  manager.child.kill('SIGTERM')
  t.same(await manager.exit, { code: 0, signal: null })
  await waitFor(() => pids.every((pid) => !alive(pid)), 'workers to be gone', 5000)
  t.pass('no worker process left')
})

t.test('a SIGKILLed manager takes its workers with it (they see the pipe close)', async (t) => {
  const { ix, manager } = await started(t, { workers: 2 })
  await ix.sendTasks([task(1, 'whoamiAfter', [200]), task(2, 'whoamiAfter', [200])])
  const pids = (await ix.outcomesOf([1, 2])).map((o) => (o.value as WorkerFacts).pid)
  manager.child.kill('SIGKILL')
  await manager.exit
  await waitFor(() => pids.every((pid) => !alive(pid)), 'orphaned workers to exit', 5000)
  t.pass('no worker process left')
})

t.test('a worker busy in synchronous code dies with its manager when the manager is killed', async (t) => {
  const { ix, manager } = await started(t, { workers: 1 })
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-spin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const marker = join(dir, 'spinning')
  await ix.sendTasks([task(1, 'markAndSpin', [marker, 60_000])])
  await waitFor(() => existsSync(marker), 'the task to start spinning')
  const workers = [Number(readFileSync(marker, 'utf8'))]
  t.equal(childrenOf(manager.child.pid!).join(), String(workers[0]), 'the spinning worker is the manager\'s child')
  t.teardown(() => workers.forEach((pid) => alive(pid) && process.kill(pid, 'SIGKILL')))
  const killedAt = Date.now()
  manager.child.kill('SIGKILL')
  // Its pipe to the manager closes at once, but a busy worker cannot read; the watcher thread acts.
  await waitFor(() => !alive(workers[0]!), `worker ${workers[0]} to be gone`, 5000)
  t.comment(`worker gone ${Date.now() - killedAt} ms after its manager was killed in a 60 s synchronous task`)
})

function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry))
    } catch {
      // exited while we looked
    }
  }
  return out
}
