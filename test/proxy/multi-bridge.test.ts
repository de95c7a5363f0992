import t from 'tap'
import { ErrorCode } from 'tsflow'
import { listSharedMemory, unlinkSharedMemory } from 'tsflow/native'
import { factoryOf, isResolved, MultiConnector, RedisConnector, ShmConnector, Store, type Connector } from 'tsflow/proxy'
import { redisMissing, startRedis } from '../helpers/redis.js'
import { asyncOnly } from '../helpers/async-only.js'

// A multi connector reads synchronously through the child holding the key; a child without a
// getSync of its own gets a sync bridge on its first synchronous read.

const shmPrefix = `multibridge${process.pid}`
t.teardown(() => {
  for (const name of listSharedMemory(`tsflow-${shmPrefix}`)) unlinkSharedMemory(name)
})

t.test('multi(async-only redis, shm): a proxy resolves on a plain property access in either child', { skip: redisMissing() ?? false }, async (t) => {
  const redis = await startRedis(t)
  const small = asyncOnly(new RedisConnector({ host: redis.host, port: redis.port, keyPrefix: `mb${process.pid}:` }))
  const multi = new MultiConnector({
    connectors: {
      small: { connector: small, policy: { maxSize: 1024 } },
      big: { connector: new ShmConnector({ prefix: shmPrefix }) },
    },
  })
  const store = new Store(`multi-bridge-${process.pid}`, multi)
  t.teardown(() => store.close())
  t.notOk('getSync' in small, 'the redis child has no getSync to begin with')

  const few = await store.proxy({ answer: 42 })
  const many = await store.proxy({ values: Array.from({ length: 2000 }, (_, i) => i) })
  t.same([factoryOf(few).key.via, factoryOf(many).key.via], ['small', 'big'], 'one object in each child')
  t.equal(few.answer, 42, 'resolved through the redis child, on a plain property access')
  t.ok(isResolved(few))
  t.equal(many.values[1999], 1999, 'and through the shm child')
  t.equal(typeof (small as Partial<Connector>).getSync, 'function', 'the redis child was given a bridge on its first sync read')

  t.throws(
    () => multi.getSync({ id: 'no-such-object', via: 'small' }),
    { code: ErrorCode.OBJECT_NOT_FOUND, message: /multi\(small, big\).*child 'small'/ },
    'a missing key through the bridge is ObjectNotFound naming the multi connector and the child',
  )

  await store.close()
  t.throws(() => (small as Partial<Connector>).getSync!({ id: 'x' }), { code: ErrorCode.CONNECTOR, message: /closed/ }, 'closing the multi closed the bridge with its child')
})
