// The endpoint's crash and restart behaviour with real processes and real signals: the daemon
// (runEndpoint in a child process, as bin/endpoint.ts runs it) SIGKILLed under queued and running
// tasks and started again, at a fixed client port and at a new one; its managers and workers
// gone on their own; stale endpoint.json and endpoint.pid replaced by the next start.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { DataFlowKernel, EndpointClient, EndpointExecutor, TaskState } from 'tsflow'
import { addAllowedClient, ensureClientKeys, writeDefaultEndpointConfig } from 'tsflow/endpoint'
import { endpointPaths, type EndpointState } from 'tsflow/protocol'
import * as apps from '../fixtures/endpoint-apps.js'
import { TEST_ENDPOINT_CONFIG, startEndpoint as startTestEndpoint } from '../helpers/endpoint.js'
import { tcpProxy } from '../helpers/tcp-proxy.js'
import { isAlive, waitFor } from '../helpers/wait.js'

const projectRoot = fileURLToPath(new URL('../..', import.meta.url))
const serverMain = fileURLToPath(new URL('../fixtures/endpoint/server-main.mjs', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'tsflow-endpoint-restart-'))
t.teardown(() => (process.env.KEEP_ENDPOINT_HOME ? t.comment(`kept ${scratch}`) : rmSync(scratch, { recursive: true, force: true })))

// The TypeScript loader this test runs under: the daemon's workers import the test's apps module (.ts) and inherit it.
const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'))

interface Daemon {
  child: ChildProcess
  pid: number
  exited: Promise<number | null>
  stderr: () => string
}

/** Every process on this host: pid, parent, arguments. */
function processes(): { pid: number; ppid: number; args: string }[] {
  return execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }))
}

/** The processes an endpoint started (its blocks' managers and their workers): those naming its home, and their descendants. */
function endpointProcesses(home: string, except: number[] = []): number[] {
  const all = processes()
  const found = new Set(all.filter((p) => p.args.includes(home) && !except.includes(p.pid) && !p.args.startsWith('ps ')).map((p) => p.pid))
  for (let grew = true; grew; ) {
    grew = false
    for (const p of all) {
      if (found.has(p.ppid) && !found.has(p.pid)) {
        found.add(p.pid)
        grew = true
      }
    }
  }
  return [...found]
}

/** An endpoint home with config.json and this client's key allowed. */
function endpointHome(t: Test, label: string, config: Record<string, unknown> = {}): { home: string; name: string; paths: ReturnType<typeof endpointPaths> } {
  const home = join(scratch, label)
  const name = 'ep'
  const paths = endpointPaths(name, home)
  addAllowedClient(paths, ensureClientKeys(home).publicKey, 'test client')
  writeDefaultEndpointConfig(paths, { ...TEST_ENDPOINT_CONFIG, ...config })
  // Whatever a test leaves running under this home is ended (SIGKILL: the test is over).
  t.teardown(() => {
    for (const pid of endpointProcesses(home, [process.pid])) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
  })
  return { home, name, paths }
}

/** The daemon: runEndpoint in a child process; resolves once it wrote its endpoint.json. */
async function startDaemon(t: Test, home: string, name: string): Promise<Daemon> {
  const paths = endpointPaths(name, home)
  const child = spawn(process.execPath, [...loader, serverMain], { cwd: projectRoot, env: { ...process.env, NODE_OPTIONS: '', TSFLOW_HOME: home, NAME: name }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const pid = child.pid!
  await waitFor(() => stateOf(paths)?.pid === pid || child.exitCode !== null, `endpoint ${name} (pid ${pid}) to write endpoint.json`, 30_000)
  if (child.exitCode !== null) throw new Error(`the endpoint exited with ${child.exitCode}: ${stderr}`)
  return { child, pid, exited, stderr: () => stderr }
}

function stateOf(paths: ReturnType<typeof endpointPaths>): EndpointState | undefined {
  try {
    return JSON.parse(readFileSync(paths.state, 'utf8')) as EndpointState
  } catch {
    return undefined
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function kernelOn(t: Test, label: string, executor: EndpointExecutor): Promise<DataFlowKernel> {
  const kernel = new DataFlowKernel({ runDir: join(scratch, `${label}-run`), executors: [executor] })
  t.teardown(() => kernel.cleanup({ deadlineMs: 2000 }))
  await kernel.start()
  return kernel
}

/**
 * The daemon SIGKILLed with tasks finished, running and queued; its managers and workers must end
 * on their own; a new daemon (same name and home) replaces the stale files; the client re-sends
 * what the new one does not hold and every future settles once, with the right value.
 */
async function killAndRestart(t: Test, label: string, config: Record<string, unknown>, restartAtOnce: boolean): Promise<void> {
  const { home, name, paths } = endpointHome(t, label, config)
  const first = await startDaemon(t, home, name)
  const firstState = stateOf(paths)!
  const ep = new EndpointExecutor({ endpoint: name, home, helloTimeoutMs: 3000 })
  const kernel = await kernelOn(t, label, ep)

  const n = 12
  const gateA = join(scratch, `${label}-gate-a`)
  const gateB = join(scratch, `${label}-gate-b`)
  writeFileSync(gateA, '')
  // Half the tasks finish at once; the other half wait for gate B: two run on the two workers
  // (and a prefetched one), the rest queue at the endpoint.
  const done = apps.gatedSquare.map(Array.from({ length: n / 2 }, (_, i) => [i, gateA]), { dfk: kernel })
  await Promise.all(done)
  const held = apps.gatedSquare.map(Array.from({ length: n / 2 }, (_, i) => [n / 2 + i, gateB]), { dfk: kernel })
  const futures = [...done, ...held]
  const settled = new Map<number, number>()
  futures.forEach((future, i) => void future.then(() => settled.set(i, (settled.get(i) ?? 0) + 1), () => settled.set(i, (settled.get(i) ?? 0) + 1)))
  await waitFor(() => held.filter((f) => f.state === TaskState.running).length >= 2, 'two held tasks running')
  const status = await ep.status()
  t.ok(status.queued > 0, `tasks queued at the endpoint when it is killed (${status.queued} queued, ${status.running} running)`)

  const orphans = endpointProcesses(home, [process.pid, first.pid])
  t.ok(orphans.length >= 3, `the endpoint's manager and workers run (pids ${orphans.join(' ')})`)
  first.child.kill('SIGKILL')
  await first.exited
  const killedAt = Date.now()
  t.comment(`endpoint pid ${first.pid} SIGKILLed with ${n / 2} tasks outstanding`)

  // Nothing tells the managers: they find the interchange silent past heartbeatThresholdMs and exit, workers with them.
  const orphansGone = async () => {
    await waitFor(() => orphans.every((pid) => !isAlive(pid)), 'the managers and workers of the killed endpoint to exit', 15_000)
    t.comment(`its ${orphans.length} manager and worker processes exited ${Date.now() - killedAt} ms after the kill`)
  }
  t.ok(existsSync(paths.state) && existsSync(paths.pid), 'the killed endpoint left endpoint.json and endpoint.pid behind (stale)')
  // At once: before the client (or the old managers) noticed the silence; else after they did.
  if (!restartAtOnce) await orphansGone()
  const second = await startDaemon(t, home, name)
  if (restartAtOnce) await orphansGone()
  const secondState = stateOf(paths)!
  t.equal(secondState.pid, second.pid, 'the new start replaced the stale endpoint.json')
  t.equal(readFileSync(paths.pid, 'utf8').trim(), String(second.pid), 'and endpoint.pid')
  t.match(readFileSync(paths.log, 'utf8'), `${paths.pid} names pid ${first.pid}, which is gone: the last run did not stop cleanly`, 'the new start logged the stale files it replaced')
  t.equal(secondState.serverPublicKey, firstState.serverPublicKey, 'the same server key across the restart')
  if (config.clientPort) t.equal(secondState.clientPort, firstState.clientPort, 'the same fixed client port')
  else t.not(secondState.clientPort, firstState.clientPort, `a new client port (${firstState.clientPort} -> ${secondState.clientPort}), found in endpoint.json`)

  writeFileSync(gateB, '')
  const values = await Promise.all(futures.map((f) => f.then((v) => v, (e: unknown) => e)))
  t.same(values, Array.from({ length: n }, (_, i) => i * i), 'every future settled with its result')
  await waitFor(() => ep.outstanding === 0, 'nothing outstanding at the executor')
  t.ok([...settled.values()].every((count) => count === 1) && settled.size === n, 'each future settled once')
  const after = await ep.status()
  t.equal(after.pid, second.pid, 'connected to the new endpoint')
  t.equal(after.totals.tasksReceived, n / 2, 'the new endpoint got exactly the tasks without a result, once each')
  t.match(after.sessions.find((s) => s.session === ep.session), { outstanding: 0, retained: 0 }, 'every result acknowledged')
  const more = await Promise.all(apps.square.map([[5], [6]], { dfk: kernel }))
  t.same(more, [25, 36], 'new tasks run on the restarted endpoint')
}

t.test('the daemon SIGKILLed and restarted at once at its fixed client port: every future settles once', async (t) => {
  await killAndRestart(t, 'fixed', { clientPort: await freePort() }, true)
})

t.test('the daemon SIGKILLed and restarted at a new port (clientPort 0): the client re-reads endpoint.json', async (t) => {
  await killAndRestart(t, 'port0', {}, false)
})

const clients = fileURLToPath(new URL('../fixtures/endpoint/stop-clients.mjs', import.meta.url))

interface Client {
  child: ChildProcess
  lines: string[]
  exited: Promise<number | null>
  stderr: () => string
}

/** A client process (test/fixtures/endpoint/stop-clients.mjs in `mode`), its stdout lines as they come. */
function startClient(t: Test, mode: string, env: Record<string, string>): Client {
  const child = spawn(process.execPath, [clients], { cwd: projectRoot, env: { ...process.env, NODE_OPTIONS: '', MODE: mode, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop()!
    lines.push(...parts)
  })
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, lines, exited, stderr: () => stderr }
}

/** Waits for the client's process to end by itself; fails (and kills it) if it does not within `ms`. */
async function exitsOnItsOwn(t: Test, client: Client, ms: number, what: string): Promise<void> {
  const code = await Promise.race([client.exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref())])
  if (code === 'hung') client.child.kill('SIGKILL')
  t.equal(code, 0, `${what}: the client process exits on its own, code 0 (${client.lines.join(' | ')}${client.stderr() ? `; stderr ${client.stderr()}` : ''})`)
}

t.test('the endpoint stopped (SIGTERM) under a client in collect(): EndpointStopped failures, no hang, the client exits', async (t) => {
  const { home, name, paths } = endpointHome(t, 'stop-collect')
  const daemon = await startDaemon(t, home, name)
  const n = 6
  const client = startClient(t, 'collect', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'stop-collect-run'), SESSION: 'stop-collect', N: String(n), GATE: join(scratch, 'never') })
  await waitFor(() => client.lines.some((l) => l.startsWith('collecting')) || client.child.exitCode !== null, 'the collector to join the session', 30_000)
  t.equal(client.lines[0], `collecting ${n}`, 'the collector waits on every task of the session')
  daemon.child.kill('SIGTERM')
  t.equal(await daemon.exited, 0, 'the endpoint stops cleanly on SIGTERM')
  t.notOk(existsSync(paths.state) || existsSync(paths.pid), 'endpoint.json and endpoint.pid removed')
  await exitsOnItsOwn(t, client, 20_000, 'after the stop')
  t.ok(client.lines.includes(`collected ${n} ok 0`), 'collect() returns every task, failed')
  const failed = client.lines.filter((l) => l.startsWith('failed '))
  t.equal(failed.length, n)
  for (const line of failed) t.match(line, /EndpointStopped E_ENDPOINT_STOPPED endpoint ep: task #\d+ of session stop-collect was (running|queued) when the endpoint stopped \(received SIGTERM\); submit it again/, line)
  // Nothing is left to wait for: [] if it runs before the endpoint's `stopping` arrives, EndpointStopped after; never a wait.
  t.match(client.lines.find((l) => l.startsWith('again ')), /^again (returned 0|rejected EndpointStopped E_ENDPOINT_STOPPED)/, 'a later collect() returns at once')
  t.ok(client.lines.includes('closed'), 'close() after the stop returns')
})

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(`the endpoint ended with ${signal} under an idle executor: a later task fails clearly, no hang, the process exits`, async (t) => {
    const { home, name } = endpointHome(t, `stop-idle-${signal}`)
    const daemon = await startDaemon(t, home, name)
    const go = join(scratch, `stop-idle-go-${signal}`)
    const client = startClient(t, 'idle', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, `stop-idle-run-${signal}`), GO: go })
    await waitFor(() => client.lines.includes('idle') || client.child.exitCode !== null, 'the client to run its tasks and idle', 30_000)
    t.equal(client.lines[0], 'values 1,4,9')
    daemon.child.kill(signal)
    t.equal(await daemon.exited, signal === 'SIGTERM' ? 0 : null, `the endpoint ended (${signal})`)
    writeFileSync(go, '')
    await exitsOnItsOwn(t, client, 20_000, 'after the stop and one more task')
    const after = client.lines.find((l) => l.startsWith('after stop '))
    t.match(after, /^after stop rejected EndpointUnreachable E_ENDPOINT_UNREACHABLE .*endpoint ep.*reconnectTimeoutMs 2000/, `a task submitted after the stop fails naming the endpoint: ${after}`)
    t.match(after, signal === 'SIGTERM' ? /endpoint\.json does not exist/ : /names pid \d+, which is gone/, 'saying why')
    t.match(after, /npx tsflow endpoint start ep/, 'and how to start it again')
    const waited = Number(after?.match(/unreachable for (\d+) ms/)?.[1])
    t.ok(waited < 2000 + 1000, `failed ${waited} ms after it was lost: at reconnectTimeoutMs, not a retry later`)
  })
}

t.test('a client SIGSTOPped past the heartbeat threshold, then SIGCONTed: every result once', async (t) => {
  const { home, name, paths } = endpointHome(t, 'stall')
  await startDaemon(t, home, name)
  const n = 10
  const gate = join(scratch, 'stall-gate')
  const session = 'stall-session'
  const client = startClient(t, 'stall', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'stall-run'), SESSION: session, N: String(n), GATE: gate })
  await waitFor(() => client.lines.includes(`submitted ${n}`) || client.child.exitCode !== null, 'the client to submit', 30_000)
  const log = () => (existsSync(paths.log) ? readFileSync(paths.log, 'utf8') : '')
  await waitFor(() => log().includes(`session ${session}: client`), 'the session to open')
  const sessionStatus = async () => {
    const probe = new EndpointExecutor({ endpoint: name, home, label: 'probe' })
    const kernel = await kernelOn(t, `stall-probe-${Date.now()}`, probe)
    try {
      return (await probe.status()).sessions.find((s) => s.session === session)
    } finally {
      await kernel.cleanup()
    }
  }
  // "submitted" is printed when map() returns; the submit message leaves at the end of that turn:
  // stopping the client before the endpoint holds the tasks would test nothing.
  await waitFor(async () => (await sessionStatus())?.outstanding === n, 'the endpoint to hold the tasks', 30_000, 100)
  // A busy machine may have had the client found silent already: wait for a new such line.
  const silences = () => log().match(new RegExp(`session ${session}: client \\S+ silent for`, 'g'))?.length ?? 0
  const silentBefore = silences()
  client.child.kill('SIGSTOP')
  t.teardown(() => void (client.child.exitCode === null && client.child.kill('SIGCONT')))
  // The endpoint takes the stopped client for silent (threshold 1 s), then its tasks finish while it is stopped.
  await waitFor(() => silences() > silentBefore, 'the endpoint to find the stopped client silent', 15_000)
  writeFileSync(gate, '')
  await waitFor(async () => (await sessionStatus())?.outstanding === 0, 'every task of the stopped client to finish at the endpoint', 30_000, 200)
  t.match(await sessionStatus(), { connected: false, outstanding: 0, retained: n }, 'the results wait for the stopped client')
  client.child.kill('SIGCONT')
  await exitsOnItsOwn(t, client, 30_000, 'after SIGCONT')
  const got = client.lines.filter((l) => l.startsWith('got ')).map((l) => l.split(' ').map(Number))
  t.equal(got.length, n, 'a result for each task')
  t.same(got.map(([, i, v]) => [i, v]).sort((a, b) => a[0]! - b[0]!), Array.from({ length: n }, (_, i) => [i, i * i]), 'each task reported once, right')
  t.notOk(client.lines.some((l) => l.startsWith('error ')), 'no task failed')
  t.match(JSON.parse(client.lines.find((l) => l.startsWith('session '))!.slice('session '.length)), { connected: true, outstanding: 0, retained: 0 }, 'all acknowledged')
})

t.test('the daemon SIGKILLed for good under a client process: its tasks fail with EndpointUnreachable after reconnectTimeoutMs, the process exits', async (t) => {
  const { home, name } = endpointHome(t, 'gone')
  const daemon = await startDaemon(t, home, name)
  const n = 6
  const client = startClient(t, 'stall', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'gone-run'), SESSION: 'gone-session', N: String(n), GATE: join(scratch, 'never'), RECONNECT_MS: '1500' })
  await waitFor(() => client.lines.includes(`submitted ${n}`) || client.child.exitCode !== null, 'the client to submit', 30_000)
  const log = () => readFileSync(endpointPaths(name, home).log, 'utf8')
  await waitFor(() => log().includes('session gone-session: client'), 'the session to open')
  daemon.child.kill('SIGKILL')
  await daemon.exited
  const killedAt = Date.now()
  // endpoint.json stays behind naming a dead pid: the client reads it at every attempt, and waits
  // for a restart until reconnectTimeoutMs, holding its process open meanwhile.
  await exitsOnItsOwn(t, client, 20_000, 'after the endpoint died')
  t.comment(`the client ended ${Date.now() - killedAt} ms after the kill`)
  const errors = client.lines.filter((l) => l.startsWith('error '))
  t.equal(errors.length, n, 'every task failed')
  for (const line of errors) t.match(line, /EndpointUnreachable E_ENDPOINT_UNREACHABLE endpoint ep .*reconnectTimeoutMs 1500.*names pid \d+, which is gone/, line)
})

t.test('the daemon SIGKILLed and restarted under a client process: the client waits, re-sends and gets every result once', async (t) => {
  const { home, name } = endpointHome(t, 'client-restart')
  const first = await startDaemon(t, home, name)
  const n = 6
  const gate = join(scratch, 'client-restart-gate')
  const session = 'client-restart'
  const client = startClient(t, 'stall', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'client-restart-run'), SESSION: session, N: String(n), GATE: gate })
  await waitFor(() => client.lines.includes(`submitted ${n}`) || client.child.exitCode !== null, 'the client to submit', 30_000)
  const log = () => readFileSync(endpointPaths(name, home).log, 'utf8')
  await waitFor(() => log().includes(`session ${session}: client`), 'the session to open')
  const workers = endpointProcesses(home, [process.pid, first.pid])
  first.child.kill('SIGKILL')
  await first.exited
  // The client process is alone with its outstanding tasks until the new daemon is up.
  await waitFor(() => workers.every((pid) => !isAlive(pid)), 'the killed endpoint\'s managers and workers to exit', 15_000)
  t.equal(client.child.exitCode, null, 'the client still waits while no endpoint runs')
  await startDaemon(t, home, name)
  writeFileSync(gate, '')
  await exitsOnItsOwn(t, client, 30_000, 'after the restart')
  const got = client.lines.filter((l) => l.startsWith('got ')).map((l) => l.split(' ').map(Number))
  t.same(got.map(([, i, v]) => [i, v]).sort((a, b) => a[0]! - b[0]!), Array.from({ length: n }, (_, i) => [i, i * i]), 'each task reported once, right')
  t.notOk(client.lines.some((l) => l.startsWith('error ')), 'no task failed')
  t.match(JSON.parse(client.lines.find((l) => l.startsWith('session '))!.slice('session '.length)), { connected: true, outstanding: 0, retained: 0 }, 'all acknowledged at the new endpoint')
})

t.test('a stale endpoint.pid whose pid now belongs to another process: the next start replaces it and never signals that process', async (t) => {
  const { home, name, paths } = endpointHome(t, 'reused')
  // Another program holding the pid the file names, started after the file was written.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.teardown(() => void other.kill('SIGKILL'))
  writeFileSync(paths.pid, `${other.pid}\n`)
  writeFileSync(paths.state, JSON.stringify({ name, pid: other.pid, clientAddress: '127.0.0.1', clientPort: 1, serverPublicKey: 'x' }))
  const past = new Date(Date.now() - 60_000)
  utimesSync(paths.pid, past, past)
  const daemon = await startDaemon(t, home, name)
  t.equal(stateOf(paths)?.pid, daemon.pid, 'endpoint.json replaced')
  t.equal(readFileSync(paths.pid, 'utf8').trim(), String(daemon.pid), 'endpoint.pid replaced')
  t.match(readFileSync(paths.log, 'utf8'), `names pid ${other.pid}, which now belongs to another process`, 'logged why')
  t.ok(isAlive(other.pid!), 'the other process was left alone')
  const ep = new EndpointExecutor({ endpoint: name, home })
  const kernel = await kernelOn(t, 'reused', ep)
  t.same(await Promise.all(apps.square.map([[3]], { dfk: kernel })), [9], 'the endpoint runs tasks')
})

t.test('the daemon SIGKILLed and restarted under an EndpointClient in collect(): the tasks it lost fail clearly, no hang', async (t) => {
  const { home, name } = endpointHome(t, 'collect-restart')
  const first = await startDaemon(t, home, name)
  const n = 4
  const client = startClient(t, 'collect', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'collect-restart-run'), SESSION: 'collect-restart', N: String(n), GATE: join(scratch, 'never') })
  await waitFor(() => client.lines.some((l) => l.startsWith('collecting')) || client.child.exitCode !== null, 'the collector to join the session', 30_000)
  t.equal(client.lines[0], `collecting ${n}`)
  first.child.kill('SIGKILL')
  await first.exited
  // The new endpoint knows nothing of the session: the collector cannot send its tasks again (it never had them).
  await startDaemon(t, home, name)
  await exitsOnItsOwn(t, client, 30_000, 'after the restart')
  t.ok(client.lines.includes(`collected ${n} ok 0`), 'collect() returns every task, failed')
  const failed = client.lines.filter((l) => l.startsWith('failed '))
  t.equal(failed.length, n)
  for (const line of failed) t.match(line, /EndpointStopped E_ENDPOINT_STOPPED endpoint ep: no longer holds task #\d+ of session collect-restart \(it was restarted/, line)
  t.ok(client.lines.includes('again returned 0'), 'a later collect() has nothing left to wait for')
})

t.test('acks lost with a connection: the resent results are dropped as seen, and a later collect() does not wait for them', async (t) => {
  const endpoint = await startTestEndpoint(t)
  const session = 'lost-acks'
  const executor = new EndpointExecutor({ endpoint: endpoint.name, home: endpoint.home, session })
  const kernel = await kernelOn(t, 'lost-acks', executor)
  const gate = join(scratch, 'lost-acks-gate')
  const n = 4
  const held = apps.gatedSquare.map(Array.from({ length: n }, (_, i) => [i, gate]), { dfk: kernel })
  for (const future of held) future.catch(() => undefined)
  await waitFor(async () => (await executor.status()).sessions.find((s) => s.session === session)?.outstanding === n, 'the tasks at the endpoint')
  await kernel.cleanup({ deadlineMs: 0 })

  const proxy = await tcpProxy('127.0.0.1', endpoint.state.clientPort)
  t.teardown(() => proxy.close())
  const client = await EndpointClient.connect({ endpoint: `tcp://127.0.0.1:${proxy.port}`, serverKey: endpoint.state.serverPublicKey, home: endpoint.home, session })
  t.teardown(() => client.close({ forget: true }))
  // What the client sends from now on (its acks) never reaches the endpoint; the results still come.
  proxy.holdUpstream()
  writeFileSync(gate, '')
  const results = await client.collect({ timeoutMs: 30_000 })
  t.same(results.map((r) => r.value).sort((a, b) => (a as number) - (b as number)), [0, 1, 4, 9], 'every result once')
  // The connection is cut: the client resumes, the endpoint resends the four it holds unacknowledged.
  proxy.drop()
  const retained = async () => (await endpoint.server.status()).sessions.find((s) => s.session === session)?.retained
  t.equal(await retained(), n, 'the endpoint never got the acks')
  await waitFor(async () => (await retained()) === 0, 'the resent results acknowledged after the resume', 20_000)
  const started = Date.now()
  const again = await client.collect({ timeoutMs: 10_000 })
  t.same(again, [], 'no result twice')
  t.ok(Date.now() - started < 2000, `collect() returned at once (${Date.now() - started} ms), not at its timeout`)
})

const cli = join(projectRoot, 'dist', 'bin', 'tsflow.js')

t.test('through the CLI: the detached daemon SIGKILLed under a client process, `tsflow endpoint start` again, every result once', { skip: existsSync(cli) ? false : 'no dist/bin/tsflow.js (run npm run build:ts)' }, async (t) => {
  const { home, name, paths } = endpointHome(t, 'cli')
  const tsflow = (...args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) =>
      execFile(process.execPath, [cli, ...args, '--home', home], { cwd: projectRoot, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
      ),
    )
  t.teardown(async () => void (await tsflow('endpoint', 'stop', name)))
  const started = await tsflow('endpoint', 'start', name)
  t.equal(started.code, 0, `tsflow endpoint start: ${started.out}`)
  const firstPid = Number(readFileSync(paths.pid, 'utf8'))
  const n = 6
  const gate = join(scratch, 'cli-gate')
  const session = 'cli-session'
  const client = startClient(t, 'stall', { ENDPOINT: name, TSFLOW_HOME: home, RUN_DIR: join(scratch, 'cli-run'), SESSION: session, N: String(n), GATE: gate })
  await waitFor(() => client.lines.includes(`submitted ${n}`) || client.child.exitCode !== null, 'the client to submit', 30_000)
  await waitFor(() => readFileSync(paths.log, 'utf8').includes(`session ${session}: client`), 'the session to open')
  const workers = endpointProcesses(home, [process.pid, firstPid])
  t.ok(workers.length > 0, `the daemon's blocks run (pids ${workers.join(' ')})`)
  process.kill(firstPid, 'SIGKILL')
  await waitFor(() => !isAlive(firstPid) && workers.every((pid) => !isAlive(pid)), 'the daemon, its managers and workers to be gone', 15_000)
  const again = await tsflow('endpoint', 'start', name)
  t.equal(again.code, 0, `tsflow endpoint start after the kill: ${again.out}`)
  t.not(Number(readFileSync(paths.pid, 'utf8')), firstPid, 'a new daemon')
  writeFileSync(gate, '')
  await exitsOnItsOwn(t, client, 30_000, 'after the restart')
  const got = client.lines.filter((l) => l.startsWith('got ')).map((l) => l.split(' ').map(Number))
  t.same(got.map(([, i, v]) => [i, v]).sort((a, b) => a[0]! - b[0]!), Array.from({ length: n }, (_, i) => [i, i * i]), 'each task reported once, right')
  const stopped = await tsflow('endpoint', 'stop', name)
  t.equal(stopped.code, 0, `tsflow endpoint stop: ${stopped.out}`)
  t.same(endpointProcesses(home, [process.pid]), [], 'nothing of the endpoint left running')
})
