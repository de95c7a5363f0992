// A real redis-server for tests, started by the test itself on a free port (never the system
// service): `const redis = await startRedis(t)`. Used by the redis connector tests and meant for
// anything else that needs a Redis (the distributed dictionary of issue 11).
//
// Tests skip when the binary is missing: `t.test(name, { skip: redisMissing() ?? false }, ...)`.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import type { Test } from 'tap'
import { isAlive, waitFor } from './wait.js'

export interface RedisServer {
  host: string
  port: number
  /** `redis://host:port` */
  url: string
  /** the redis-server process id (to kill it for real in fault tests) */
  pid: number
  /** its --dir (empty: nothing is saved) */
  dir: string
  /** stops the server (SIGTERM, then SIGKILL) and removes its directory; safe to call twice */
  stop(): Promise<void>
}

export interface StartRedisOptions {
  /** this port instead of a free one (e.g. to restart a server where clients expect it); no retry */
  port?: number
  /** extra `--name value` arguments, e.g. `['--maxmemory', '1gb']` */
  args?: string[]
  /** how long to wait for the server to answer PING (default 20 s) */
  readyTimeoutMs?: number
}

const HOST = '127.0.0.1'
const ATTEMPTS = 5

/** The redis-server binary on PATH (or Debian's path), or undefined. */
export function redisServerPath(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin']
  for (const dir of dirs) {
    const path = join(dir, 'redis-server')
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // next
    }
  }
  return undefined
}

/** Why a redis-server cannot be started here (a sentence for a skip), or undefined when it can. */
export function redisMissing(): string | undefined {
  if (redisServerPath()) return undefined
  return "redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)"
}

/** A port nothing listens on right now (the kernel's pick); someone may take it before we do. */
export async function freePort(host = HOST): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  await new Promise((done) => server.close(done))
  return port
}

/** Sends PING on a fresh connection; true when the server answers +PONG. */
export function ping(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

// redis-server runs under a small bash guard that reads our stdin: if this test process dies
// (even by SIGKILL, when no teardown runs), the pipe closes and the guard kills the server and
// removes its directory, so nothing outlives the test. The guard prints the server's pid first.
const GUARD =
  '"$@" & r=$!; echo "$r"; read -r _; kill -9 "$r" 2>/dev/null; wait "$r" 2>/dev/null; rm -rf -- "$TSFLOW_REDIS_DIR"; exit 0'

/**
 * Starts a redis-server of its own on a free port, in a fresh temporary directory, with
 * persistence off, and waits until it answers PING. Teardown (registered on `t` before the start)
 * stops it and removes the directory. Redis cannot bind port 0, so a free port is picked first;
 * when another process takes it in between, the start is retried on another port.
 */
export async function startRedis(t: Test, options: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = redisServerPath()
  if (!binary) throw new Error(redisMissing())
  let server: RedisServer | undefined
  t.teardown(() => server?.stop())
  const failures: string[] = []
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const port = options.port ?? (await freePort())
    const started = await startOn(binary, port, options)
    if (typeof started !== 'string') {
      server = started
      return started
    }
    failures.push(`port ${port}: ${started}`)
    if (options.port !== undefined || !/address already in use/i.test(started)) break
  }
  throw new Error(`redis-server did not start (${binary}):\n${failures.join('\n')}`)
}

async function startOn(binary: string, port: number, options: StartRedisOptions): Promise<RedisServer | string> {
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-redis-'))
  const log = join(dir, 'redis.log')
  const args = [
    ...['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', log],
    ...['--daemonize', 'no', '--protected-mode', 'no'],
    ...(options.args ?? []),
  ]
  const guard = spawn('bash', ['-c', GUARD, 'redis-guard', binary, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, TSFLOW_REDIS_DIR: dir },
  })
  guard.stdout.setEncoding('utf8')
  let stdout = ''
  let stderr = ''
  guard.stdout.on('data', (chunk: string) => (stdout += chunk))
  guard.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  guard.stdin.on('error', () => {}) // the guard may be gone when we close its stdin
  const exited = once(guard, 'exit')
  let pid = 0
  const stop = makeStop(guard, () => pid, exited, dir)
  const logTail = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n') : stderr.trim())
  try {
    await waitFor(() => /^\d+\n/.test(stdout) || guard.exitCode !== null, 'the redis-server guard to start', 10_000)
    pid = Number(stdout.split('\n')[0])
    if (!pid) throw new Error(`the guard exited before starting redis-server: ${stderr.trim()}`)
    let answered = false
    await waitFor(
      async () => (answered = await ping(HOST, port, 500)) || !isAlive(pid),
      `redis-server on ${HOST}:${port} to answer PING`,
      options.readyTimeoutMs ?? 20_000,
      20,
    )
    if (!answered) throw new Error(`redis-server exited: ${logTail()}`)
  } catch (error) {
    const reason = (error as Error).message
    await stop()
    return reason
  }
  return { host: HOST, port, url: `redis://${HOST}:${port}`, pid, dir, stop }
}

function makeStop(guard: ChildProcess, pid: () => number, exited: Promise<unknown>, dir: string): () => Promise<void> {
  let stopping: Promise<void> | undefined
  return () =>
    (stopping ??= (async () => {
      const server = pid()
      if (server && isAlive(server)) {
        process.kill(server, 'SIGTERM')
        await waitFor(() => !isAlive(server), `redis-server ${server} to exit`, 10_000).catch(() => {
          if (isAlive(server)) process.kill(server, 'SIGKILL')
        })
      }
      // EOF on its stdin lets the guard finish (and SIGKILL the server if it still ran).
      guard.stdin?.end()
      if (guard.exitCode === null && guard.signalCode === null) await exited
      rmSync(dir, { recursive: true, force: true })
    })())
}
