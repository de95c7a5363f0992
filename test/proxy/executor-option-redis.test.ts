// The executor proxy option with an async-only connector on a real redis-server: the worker and
// the caller read through the connector's async get, puts are counted by the server itself
// (INFO commandstats), and no key is left at the end.
import t from 'tap'
import { createClient } from 'redis'
import * as apps from '../fixtures/proxy-exec-apps.js'
import { startKernel } from '../helpers/executors.js'
import { redisMissing, startRedis } from '../helpers/redis.js'

const missing = redisMissing()
if (missing) t.test('executor proxy option on redis', { skip: missing }, () => {})
else {
  const redis = await startRedis(t)
  const client = createClient({ socket: { host: redis.host, port: redis.port } })
  await client.connect()
  t.teardown(() => client.close())
  const sets = async (): Promise<number> => Number(/cmdstat_set:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
  const prefix = `option${process.pid}:`
  const keys = async (): Promise<string[]> => client.keys(`${prefix}*`)

  for (const kind of ['threads', 'htex-processes'] as const) {
    t.test(`${kind}: large arguments and results through redis, nothing left`, async (t) => {
      const connector = { type: 'redis', host: redis.host, port: redis.port, keyPrefix: `${prefix}${kind}:` }
      const kernel = await startKernel(t, kind, { proxy: { store: { name: `redis-option-${kind}-${process.pid}`, connector }, threshold: '100kB' } })
      const dfk = { dfk: kernel }
      const before = await sets()
      t.equal(await apps.sum.with(dfk)(new Float64Array(100).fill(1)), 100)
      t.equal(await sets(), before, 'a small task puts nothing')
      t.same(await apps.look.with(dfk)(new Float64Array(100_000), 3), { isProxy: false, isArray: false, typeOf: 'object', kind: '[object Float64Array]', length: 100_000, plain: 3 })
      t.equal(await sets(), before + 1, 'the large argument was put once')
      const result = await apps.ones.with(dfk)(100_000)
      t.ok(result instanceof Float64Array && result.length === 100_000, 'the large result arrives as the value')
      t.equal(await sets(), before + 2, 'the large result was put once')
      t.same(await keys(), [], 'nothing is left on the server')
    })
  }
}
