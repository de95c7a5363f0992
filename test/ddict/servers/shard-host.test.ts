// `tsflow-ddict-shards` run directly, as a provider's block runs it: its command line (usage
// errors exit 2 naming the flag), its one report line on the TCP connection it opens, and its
// stop on SIGTERM (exit 0, servers and directories gone).
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { redisMissing } from '../../helpers/redis.js'
import { waitFor } from '../../helpers/wait.js'
import { noneLeft, redisClient, running, uniqueId } from '../../helpers/ddict-servers.js'

const BIN = fileURLToPath(new URL('../../../dist/bin/ddict-shards.js', import.meta.url))
const skip = redisMissing() ?? false

t.test('usage: --help, and a bad flag exits 2 naming it', async (t) => {
  const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' })
  t.equal(help.status, 0)
  t.match(help.stdout, /--report HOST:PORT/)
  t.match(help.stdout, /TSFLOW_DDICT_PASSWORD/)
  const bad = spawnSync(process.execPath, [BIN, '--count', 'many'], { encoding: 'utf8' })
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--count/)
})

t.test('reports one ready line, then stops its servers on SIGTERM and exits 0', { skip }, async (t) => {
  const id = uniqueId('b')
  t.teardown(() => noneLeft(id))
  const dir = mkdtempSync(join(tmpdir(), 'tsflow-ddict-bin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const listener = createServer()
  t.teardown(() => listener.close())
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const connected = once(listener, 'connection') as Promise<[Socket]>
  const password = 'pass word"with\\odd chars'
  const host = spawn(
    process.execPath,
    [BIN, '--id', id, '--report', `127.0.0.1:${(listener.address() as { port: number }).port}`, '--count', '2', '--maxmemory', '10000000', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TSFLOW_DDICT_PASSWORD: password } },
  )
  t.teardown(() => {
    if (host.exitCode === null) host.kill('SIGKILL')
  })
  let stderr = ''
  host.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [socket] = await connected
  let lines = ''
  socket.on('data', (chunk: Buffer) => (lines += chunk.toString()))
  await waitFor(() => lines.includes('\n'), 'the report line')
  const report = JSON.parse(lines) as { kind: string; pid: number; node: string; shards: { host: string; port: number; pid: number; maxmemory: number }[] }
  t.equal(report.kind, 'ready')
  t.equal(report.pid, host.pid)
  t.equal(report.shards.length, 2)
  for (const shard of report.shards) {
    t.equal(shard.maxmemory, 10_000_000)
    const client = await redisClient(t, shard.host, shard.port, password)
    t.equal(await client.ping(), 'PONG', 'a password with quotes, spaces and backslashes works')
    const cmdline = await import('node:fs').then((fs) => fs.readFileSync(`/proc/${shard.pid}/cmdline`, 'utf8'))
    t.notOk(cmdline.includes('pass word'), 'the password is not on the server command line')
  }
  t.equal(readdirSync(dir).length, 1, 'one directory for its servers')
  host.kill('SIGTERM')
  const [code] = (await once(host, 'exit')) as [number]
  t.equal(code, 0, `exit 0 (stderr: ${stderr})`)
  t.notOk(report.shards.some((s) => running(s.pid)), 'servers stopped')
  t.same(readdirSync(dir), [], 'directories removed')
  t.ok(existsSync(dir))
})
