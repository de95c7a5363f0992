// The manager's heartbeat defaults are the interchange's (one default, in tsflow/protocol).
import { createServer, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { DEFAULT_HEARTBEAT_THRESHOLD_MS, INTERCHANGE_DEFAULTS } from 'tsflow/protocol'
import { spawnManager } from './harness.js'

/**
 * An endpoint that accepts TCP connections and never says a word: the connection is made and
 * stays up, so only the registration timeout (the heartbeat threshold) can end the wait. (A port
 * where nobody listens would end it within 2 s: the manager gives up on refused connections.)
 */
async function silentEndpoint(t: Test): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
  })
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return `tcp://127.0.0.1:${port}`
}

t.test('with no interchange answering, a manager gives up after the default heartbeat threshold', async (t) => {
  t.equal(INTERCHANGE_DEFAULTS.heartbeatThresholdMs, DEFAULT_HEARTBEAT_THRESHOLD_MS)
  const manager = spawnManager(t, { endpoint: await silentEndpoint(t) }, { workers: 1 })
  const exit = await manager.exit
  t.equal(exit.code, 4, 'exit code 4: interchange lost')
  t.match(manager.stderr(), new RegExp(`no answer to registration .* \\(threshold ${DEFAULT_HEARTBEAT_THRESHOLD_MS} ms\\)`))
})
