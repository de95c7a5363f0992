// Done means (issue 10): an endpoint listening on every interface; a workflow on another host
// (a network namespace) submits under a named session and is killed mid-run; a new process on
// that host joins the session and collects the rest: every result arrives, exactly once.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { addAllowedClient, ensureClientKeys, writeDefaultEndpointConfig } from 'tsflow/endpoint'
import { endpointPaths, type EndpointState } from 'tsflow/protocol'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../helpers/netns.js'
import { isAlive, waitFor } from '../helpers/wait.js'
import { TEST_ENDPOINT_CONFIG } from '../helpers/endpoint.js'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/endpoint/${name}`, import.meta.url))
const projectRoot = fileURLToPath(new URL('../..', import.meta.url))

interface Running {
  child: ChildProcess
  lines: string[]
  exited: Promise<number | null>
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, children: Running[]): Running {
  const child = spawn(command, args, { cwd: projectRoot, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  let partial = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString()
    const parts = text.split('\n')
    partial = parts.pop()!
    lines.push(...parts)
  })
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null && stderr) process.stderr.write(`${args.join(' ')}:\n${stderr}\n`)
      resolve(code)
    }),
  )
  const running = { child, lines, exited }
  children.push(running)
  return running
}

const why = netnsUnavailable()
if (why) {
  t.test('a client on another host killed mid-run; a new one collects', { skip: `netns test skipped: it ${why} (CI runs it as root)` }, () => {})
} else {
  const prefix = `tsfe${process.pid % 10000}`
  const subnet = `10.232.${process.pid % 200}`
  const scratch = mkdtempSync(join(tmpdir(), 'tsflow-endpoint-netns-'))
  const children: Running[] = []
  // Cleanup first, so a failure half-way through setup still removes what was made.
  t.teardown(async () => {
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await Promise.all(children.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 10_000))])))
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    fakeHostsDown(prefix, 1)
    rmSync(scratch, { recursive: true, force: true })
  })
  const hosts = fakeHostsUp(prefix, 1, subnet)
  const host = hosts.hosts[0]!

  t.test('a client on another host killed mid-run; a new process with the same session collects every result once', async (t) => {
    const home = join(scratch, 'endpoint-home')
    const clientHome = join(scratch, 'client-home')
    const name = 'netns'
    const paths = endpointPaths(name, home)
    writeDefaultEndpointConfig(paths, { ...TEST_ENDPOINT_CONFIG, maxWorkersPerNode: 4, clientAddress: '0.0.0.0' })
    // The client on the other host has its own key pair; the endpoint's owner allows it.
    addAllowedClient(paths, ensureClientKeys(clientHome).publicKey, `client on ${host.name}`)

    // The real daemon through the CLI (detached, as users start it); without the CLI, the same
    // runEndpoint in a child process.
    const cli = join(projectRoot, 'dist', 'bin', 'tsflow.js')
    const viaCli = existsSync(cli)
    t.comment(viaCli ? 'endpoint started with `tsflow endpoint start`' : 'endpoint started with runEndpoint in a child process (no CLI here)')
    let stopEndpoint: () => Promise<number | null>
    let endpointPid: number
    if (viaCli) {
      const start = run(process.execPath, [cli, 'endpoint', 'start', name, '--home', home], {}, children)
      t.equal(await start.exited, 0, `tsflow endpoint start: ${start.lines.join(' | ')}`)
      endpointPid = Number(readFileSync(paths.pid, 'utf8').trim())
      stopEndpoint = async () => run(process.execPath, [cli, 'endpoint', 'stop', name, '--home', home], {}, children).exited
      t.teardown(async () => {
        if (isAlive(endpointPid)) await stopEndpoint()
      })
    } else {
      const endpoint = run(process.execPath, [fixture('server-main.mjs')], { TSFLOW_HOME: home, NAME: name }, children)
      endpointPid = endpoint.child.pid!
      stopEndpoint = async () => {
        endpoint.child.kill('SIGTERM')
        return endpoint.exited
      }
    }
    await waitFor(() => existsSync(paths.state) || !isAlive(endpointPid), 'endpoint.json', 30_000)
    t.ok(existsSync(paths.state), 'the endpoint wrote endpoint.json')
    const state = JSON.parse(readFileSync(paths.state, 'utf8')) as EndpointState
    t.equal(state.clientAddress, '0.0.0.0')

    const n = 40
    const gateA = join(scratch, 'gate-a')
    const gateB = join(scratch, 'gate-b')
    writeFileSync(gateA, '') // even tasks finish at once; odd ones wait for gate B
    const env = {
      ENDPOINT: `tcp://${hosts.rootAddress}:${state.clientPort}`,
      SERVER_KEY: state.serverPublicKey,
      TSFLOW_HOME: clientHome,
      SESSION: 'netns-session-1',
      N: String(n),
      GATE_A: gateA,
      GATE_B: gateB,
      RUN_DIR: join(scratch, 'runinfo'),
    }
    const first = run('ip', ['netns', 'exec', host.name, process.execPath, fixture('submit-client.mjs')], env, children)
    await waitFor(() => first.lines.some((l) => l.startsWith('acked')) || first.child.exitCode !== null, 'the first client to receive and acknowledge the even results', 60_000)
    t.ok(first.lines.some((l) => l.startsWith('acked')), `first client: ${first.lines.join(' | ')}`)
    const got = first.lines.filter((l) => l.startsWith('got ')).map((l) => Number(l.split(' ')[2]))
    t.equal(got.length, n / 2, 'the first client got the even half')

    first.child.kill('SIGKILL')
    await first.exited
    t.comment(`first client killed (pid ${first.child.pid}) with ${n / 2} tasks outstanding`)

    const second = run('ip', ['netns', 'exec', host.name, process.execPath, fixture('collect-client.mjs')], env, children)
    await waitFor(() => second.lines.some((l) => l.startsWith('outstanding')) || second.child.exitCode !== null, 'the collector to join the session', 30_000)
    t.match(second.lines[0], /^outstanding \d+$/, 'the collector joined')
    t.comment(second.lines[0]!)
    writeFileSync(gateB, '')
    t.equal(await second.exited, 0, 'the collector exits cleanly')
    const line = second.lines.find((l) => l.startsWith('collected '))
    t.ok(line, `collector: ${second.lines.join(' | ')}`)
    const collected = JSON.parse(line!.slice('collected '.length)) as { id: number; try: number; ok: boolean; value: number }[]
    t.ok(collected.every((r) => r.ok), 'every collected task succeeded')
    t.equal(new Set(collected.map((r) => r.id)).size, collected.length, 'no result twice (ids)')
    const values = collected.map((r) => r.value).sort((a, b) => a - b)
    const odd = Array.from({ length: n / 2 }, (_, i) => (2 * i + 1) ** 2)
    t.same(values, odd, 'exactly the odd results, each once')
    const all = [...got, ...values].sort((a, b) => a - b)
    t.same(all, Array.from({ length: n }, (_, x) => x * x), 'between the two processes: every result, exactly once')
    t.ok(second.lines.includes('left 0'), 'nothing left outstanding')

    t.equal(await stopEndpoint(), 0, 'the endpoint stops cleanly')
    await waitFor(() => !isAlive(endpointPid), 'the endpoint process to exit', 15_000)
    t.notOk(existsSync(paths.state), 'endpoint.json removed')
    const left = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(scratch) && !l.includes(' ps '))
    t.same(left, [], 'no process of the endpoint or the clients left')
    t.notOk(isAlive(endpointPid), 'the endpoint process is gone')
  })
}
