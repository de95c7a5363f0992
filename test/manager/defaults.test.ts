// The manager's heartbeat defaults are the interchange's (one default, in tsflow/protocol).
import { createServer } from 'node:net'
import t from 'tap'
import { DEFAULT_HEARTBEAT_THRESHOLD_MS, INTERCHANGE_DEFAULTS } from 'tsflow/protocol'
import { spawnManager } from './harness.js'

/** An endpoint where nobody listens: a port the OS handed out, then closed again. */
async function deadEndpoint(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `tcp://127.0.0.1:${port}`
}

t.test('with no interchange answering, a manager gives up after the default heartbeat threshold', async (t) => {
  t.equal(INTERCHANGE_DEFAULTS.heartbeatThresholdMs, DEFAULT_HEARTBEAT_THRESHOLD_MS)
  const manager = spawnManager(t, { endpoint: await deadEndpoint() }, { workers: 1 })
  const exit = await manager.exit
  t.equal(exit.code, 4, 'exit code 4: interchange lost')
  t.match(manager.stderr(), new RegExp(`no answer to registration .* \\(threshold ${DEFAULT_HEARTBEAT_THRESHOLD_MS} ms\\)`))
})
