import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServer {
  host: string
  port: number
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

// redis-server runs under a small bash guard holding our stdin pipe: when this process ends in any
// way (even SIGKILL, or an EPIPE that skips the clean-up), the pipe closes and the guard stops the
// server and removes its directory, so nothing outlives the bench. It exits with the server's status.
const GUARD = 'exec 3<&0; "$@" </dev/null & r=$!; { read -r _ <&3; kill "$r" 2>/dev/null; } & w=$!; wait "$r"; s=$?; kill "$w" 2>/dev/null; rm -rf -- "$TSFLOW_BENCH_REDIS_DIR"; exit $s'

/** `--name value` pairs as redis.conf lines (values quoted: a password never shows in ps). */
function confLines(args: readonly string[]): string[] {
  if (args.length % 2 !== 0) throw new Error(`redis-server settings come in '--name value' pairs (got ${args.join(' ')})`)
  const lines: string[] = []
  for (let i = 0; i < args.length; i += 2) lines.push(`${args[i]!.replace(/^--/, '')} ${JSON.stringify(args[i + 1])}`)
  return lines
}

/**
 * A private redis-server on a free loopback port, no persistence, for a bench run that was not
 * given --redis-host/--redis-port. Resolves once it accepts connections; `stop()` ends and reaps it.
 * `extraArgs` are more `--name value` settings (e.g. `['--requirepass', pw, '--maxmemory', '1gb']`);
 * all settings go in a config file in the server's private directory, not on its command line.
 */
export async function startRedisServer(binary = 'redis-server', extraArgs: readonly string[] = []): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-bench-redis-'))
  const conf = join(dir, 'redis.conf')
  const settings = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...extraArgs]
  writeFileSync(conf, `${confLines(settings).join('\n')}\n`, { mode: 0o600 })
  const child: ChildProcess = spawn('bash', ['-c', GUARD, 'redis-guard', binary, conf], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TSFLOW_BENCH_REDIS_DIR: dir } })
  child.stdin!.on('error', () => {}) // the guard may be gone when we close its stdin
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server on port ${port} did not start within 10 s: ${output.slice(-500)}`)), 10_000)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(new Error(`cannot start ${binary} under bash: ${error.message}`))
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      const missing = code === 127 ? ` (${binary} not found: is Redis installed? apt-get install redis-server)` : ''
      reject(new Error(`redis-server exited with ${code} before accepting connections${missing}: ${output.slice(-500)}`))
    })
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  }).catch(async (error: unknown) => {
    child.stdin!.end()
    if (child.exitCode === null && child.signalCode === null) await exited
    rmSync(dir, { recursive: true, force: true })
    throw error
  })
  child.stdout!.resume()
  let stopping: Promise<void> | undefined
  return {
    host: '127.0.0.1',
    port,
    stop() {
      // EOF on the guard's stdin: it SIGTERMs the server and exits once the server has.
      stopping ??= (async () => {
        child.stdin!.end()
        if (child.exitCode === null && child.signalCode === null) await exited
        rmSync(dir, { recursive: true, force: true })
      })()
      return stopping
    },
  }
}
