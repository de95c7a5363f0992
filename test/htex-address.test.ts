// A bad HTEX `address` is a ConfigError naming the option, not a failure deep in ZeroMQ.
import { mkdtempSync, rmSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, DataFlowKernel, HighThroughputExecutor, resolveConfig } from 'tsflow'
import * as apps from './fixtures/apps.js'

const scratch = mkdtempSync(join(tmpdir(), 'tsflow-htex-address-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

function configError(address: string): ConfigError {
  try {
    resolveConfig({ executors: [{ type: 'threads' }, { type: 'htex', address }] })
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error(`expected a ConfigError for address ${JSON.stringify(address)}`)
}

t.test('not an IP, hostname or interface', async (t) => {
  const error = configError('not an address!')
  t.equal(error.path, 'executors[1].address')
  t.match(error.message, /must be an IP address of this host, an interface name or a hostname/)
})

t.test('an IP that no interface of this host has', async (t) => {
  // TEST-NET-1 (RFC 5737): documentation only, never assigned to a host.
  const error = configError('192.0.2.77')
  t.equal(error.path, 'executors[1].address')
  t.match(error.message, /192\.0\.2\.77, which is not an address of any interface of this host/)
})

t.test('an interface name stands for its IPv4 address: managers connect and tasks run', async (t) => {
  const [name] = Object.entries(networkInterfaces()).find(([, list]) => list?.some((e) => e.family === 'IPv4' && e.internal))!
  const executor = new HighThroughputExecutor({ address: name, workerMode: 'threads', maxWorkersPerNode: 1 })
  const kernel = await new DataFlowKernel({ runDir: join(scratch, 'interface'), executors: [executor] }).start()
  t.teardown(() => kernel.cleanup({ deadlineMs: 3000 }))
  t.equal(await apps.double.with({ dfk: kernel })(21), 42, `a task ran through interface ${name}`)
})

t.test('a hostname that does not resolve fails at start, naming the option', async (t) => {
  const kernel = new DataFlowKernel({
    runDir: join(scratch, 'unresolvable'),
    executors: [new HighThroughputExecutor({ address: 'no-such-host.invalid' })],
  })
  const error = await kernel.start().then(
    () => undefined,
    (error: unknown) => error,
  )
  t.teardown(() => kernel.cleanup({ deadlineMs: 1000 }).catch(() => {}))
  t.ok(error instanceof ConfigError, `a ConfigError (got ${String(error)})`)
  t.equal((error as ConfigError).path, 'executors[0].address')
  t.match((error as ConfigError).message, /no-such-host\.invalid.*does not resolve/)
})
