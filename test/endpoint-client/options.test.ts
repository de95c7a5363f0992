// EndpointExecutor's options and what it says before any endpoint answers: option paths in
// config errors, EndpointNotFound naming the directory and the command to run, and
// EndpointUnreachable within the hello bound (nothing listening; a CURVE server whose ZAP
// handler refuses the key) — never a hang.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Context, Router, curveKeyPair } from 'zeromq'
import { ConfigError, DataFlowKernel, EndpointClient, EndpointExecutor, EndpointNotFound, EndpointRefused, EndpointUnreachable, resolveConfig } from 'tsflow'
import { endpointPaths } from 'tsflow/protocol'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-endpoint-options-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const KEY = curveKeyPair().publicKey

function configError(t: Test, executor: unknown, path: RegExp, message: RegExp): void {
  let error: unknown
  try {
    resolveConfig({ executors: [executor as EndpointExecutor] })
  } catch (caught) {
    error = caught
  }
  t.ok(error instanceof ConfigError, `ConfigError (got ${String(error)})`)
  t.match((error as Error)?.message, path)
  t.match((error as Error)?.message, message)
}

t.test('options are checked once, errors name the option path', async (t) => {
  configError(t, new EndpointExecutor({} as never), /executors\[0\]\.endpoint/, /required/)
  configError(t, { type: 'endpoint', endpoint: 'tcp://host' }, /executors\[0\]\.endpoint/, /tcp:\/\/host:port/)
  configError(t, { type: 'endpoint', endpoint: 'tcp://10.0.0.1:5555' }, /executors\[0\]\.serverKey/, /required with an address/)
  configError(t, { type: 'endpoint', endpoint: 'tcp://10.0.0.1:5555', serverKey: 'short' }, /executors\[0\]\.serverKey/, /40 z85/)
  configError(t, { type: 'endpoint', endpoint: 'bad name!' }, /executors\[0\]\.endpoint/, /endpoint name/)
  configError(t, { type: 'endpoint', endpoint: 'ep', session: 'a b' }, /executors\[0\]\.session/, /letters, digits/)
  configError(t, { type: 'endpoint', endpoint: 'ep', reconectTimeoutMs: 5 }, /executors\[0\]\.reconectTimeoutMs/, /did you mean 'reconnectTimeoutMs'/)
  configError(t, { type: 'endpoint', endpoint: 'ep', maxBatchSize: 0 }, /executors\[0\]\.maxBatchSize/, /positive integer/)
  const ok = resolveConfig({ executors: [{ type: 'endpoint', endpoint: 'tcp://10.0.0.1:5555', serverKey: KEY, label: 'remote' } as never] })
  t.equal(ok.executors[0]!.type, 'endpoint')
  t.equal(ok.executors[0]!.label, 'remote')
  t.match(ok.executors[0]!.describe(), { type: 'endpoint', endpoint: 'tcp://10.0.0.1:5555' })
})

async function startFails(t: Test, executor: EndpointExecutor, name: string): Promise<Error> {
  const kernel = new DataFlowKernel({ runDir: join(scratch, name), executors: [executor] })
  t.teardown(() => kernel.cleanup({ deadlineMs: 1000 }).catch(() => undefined))
  const started = Date.now()
  const error = await kernel.start().then(() => undefined, (e: unknown) => e as Error)
  t.ok(error, 'start fails')
  t.comment(`${name}: failed after ${Date.now() - started} ms: ${error?.message}`)
  return error!
}

t.test('an endpoint by name that is not configured, not running, or gone: EndpointNotFound naming the directory and what to run', async (t) => {
  const home = join(scratch, 'home-notfound')
  const missing = await startFails(t, new EndpointExecutor({ endpoint: 'nowhere', home }), 'not-configured')
  t.ok(missing instanceof EndpointNotFound, `EndpointNotFound (got ${missing})`)
  t.match(missing.message, endpointPaths('nowhere', home).dir)
  t.match(missing.message, /tsflow endpoint configure nowhere/)

  const paths = endpointPaths('idle', home)
  mkdirSync(paths.dir, { recursive: true })
  const stopped = await startFails(t, new EndpointExecutor({ endpoint: 'idle', home }), 'not-running')
  t.ok(stopped instanceof EndpointNotFound)
  t.match(stopped.message, /not running/)
  t.match(stopped.message, /tsflow endpoint start idle/)

  // endpoint.json left by an endpoint killed with SIGKILL: its pid is gone.
  writeFileSync(paths.state, JSON.stringify({ name: 'idle', pid: 2 ** 22 + 1, host: 'x', clientAddress: '127.0.0.1', clientPort: 1, serverPublicKey: KEY }))
  const gone = await startFails(t, new EndpointExecutor({ endpoint: 'idle', home }), 'stale')
  t.ok(gone instanceof EndpointNotFound)
  t.match(gone.message, /is gone/)
  t.match(gone.message, paths.log)

  const client = await EndpointClient.connect({ endpoint: 'nowhere', session: 's1', home }).then(() => undefined, (e: unknown) => e)
  t.ok(client instanceof EndpointNotFound, 'EndpointClient.connect says the same')
})

t.test('nothing listening at the address: EndpointUnreachable naming it, within helloTimeoutMs', async (t) => {
  // A port bound and closed again: nothing answers there.
  const probe = new Router()
  await probe.bind('tcp://127.0.0.1:*')
  const address = probe.lastEndpoint!
  probe.close()
  const executor = new EndpointExecutor({ endpoint: address, serverKey: KEY, home: join(scratch, 'home-unreachable'), helloTimeoutMs: 800 })
  const started = Date.now()
  const error = await startFails(t, executor, 'unreachable')
  t.ok(error instanceof EndpointUnreachable, `EndpointUnreachable (got ${error})`)
  t.match(error.message, address)
  // (the port may have been taken meanwhile by another test's socket: then the handshake fails)
  t.match(error.message, /no welcome within 800 ms|handshake failed/)
  t.ok(Date.now() - started < 5000, 'within the bound')
})

t.test("a CURVE server that refuses this client's key: EndpointRefused saying to put the key on the allow-list", async (t) => {
  const { ZapHandler } = await import('../../dist/transport/zap.js')
  const server = curveKeyPair()
  const context = new Context()
  // Admits one other key only: the client's is unknown.
  const zap = new ZapHandler(context, [curveKeyPair().publicKey])
  await zap.start()
  const router = new Router({ context, linger: 0 })
  router.curveServer = true
  router.curvePublicKey = server.publicKey
  router.curveSecretKey = server.secretKey
  router.zapDomain = 'tsflow'
  await router.bind('tcp://127.0.0.1:*')
  t.teardown(() => {
    router.close()
    zap.close()
  })
  const executor = new EndpointExecutor({ endpoint: router.lastEndpoint!, serverKey: server.publicKey, home: join(scratch, 'home-refused'), helloTimeoutMs: 5000 })
  const started = Date.now()
  const error = await startFails(t, executor, 'refused')
  t.ok(error instanceof EndpointRefused, `EndpointRefused (got ${error})`)
  t.match(error.message, /this client's key is not on the endpoint's allow-list; run `npx tsflow endpoint allow /)
  t.ok(Date.now() - started < 4000, `at the handshake, not at the hello timeout (${Date.now() - started} ms)`)
})
