// The zmq peer connector across real hosts: network namespaces on a private bridge
// (test/helpers/netns.ts), each peer process listening on its own host's eth0 address.
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { ConnectorError, ErrorCode } from 'tsflow'
import { factoryOf, Store, ZmqConnector, type ZmqKey } from 'tsflow/proxy'
import { fakeHostsDown, fakeHostsUp, netnsUnavailable } from '../helpers/netns.js'
import { startPeer } from '../helpers/zmq-peer.js'

const why = netnsUnavailable()
if (why) {
  t.test('zmq connector across hosts', { skip: `multi-host test skipped: it ${why} (CI runs it as root)` }, () => {})
} else {
  const prefix = `tszq${process.pid % 10000}`
  const subnet = `10.233.${process.pid % 200}`
  // Cleanup first, so a failure half-way through setup still removes what was made.
  t.teardown(() => fakeHostsDown(prefix, 2))
  const hosts = fakeHostsUp(prefix, 2, subnet)
  const [one, two] = hosts.hosts as [{ name: string; address: string }, { name: string; address: string }]
  // Every peer is configured the same way, as a config travelling to workers would be: the
  // interface name, resolved to each host's own address in its process.
  const options = { interface: 'eth0', timeoutMs: 3000 }

  t.test('a reader on one host fetches a proxy target from its owner on another', async (t) => {
    const owner = await startPeer(t, options, one.name)
    const reader = await startPeer(t, options, two.name)
    t.match(owner.endpoint, new RegExp(`^tcp://${one.address.replace(/\./g, '\\.')}:\\d+$`), `the owner serves on its host address ${one.address}`)
    t.match(reader.endpoint, new RegExp(`^tcp://${two.address.replace(/\./g, '\\.')}:\\d+$`), `the reader on ${two.address}`)

    const { factory } = await owner.call<{ factory: { key: ZmqKey } }>({ op: 'proxy', value: { rows: [1, 2, 3], from: one.name } })
    t.equal(factory.key.owner, owner.endpoint)
    t.same(await reader.call({ op: 'resolve', factory }), { value: { rows: [1, 2, 3], from: one.name } }, 'resolved across the hosts')

    const big = (await owner.call<{ key: ZmqKey }>({ op: 'put', size: 16 * 1024 * 1024, fill: 5 })).key
    t.same(await reader.call({ op: 'get', key: big }), { length: 16 * 1024 * 1024, first: 5, uniform: true }, '16 MB across the hosts')
    await reader.call({ op: 'evict', key: big })
    t.same(await owner.call({ op: 'size' }), { size: 1 }, 'evicted at the owner by the reader (the proxy target stays)')

    // A producer on host two sets a value under a key host one owns (a proxy future's key).
    const futureKey = { id: 'future-1', owner: owner.endpoint }
    await reader.call({ op: 'set', key: futureKey, size: 100, fill: 8 })
    t.same(await owner.call({ op: 'get', key: futureKey }), { length: 100, first: 8, uniform: true }, 'the bytes went to the owner host')
  })

  t.test('this process (on the bridge) and a host read each other objects, encrypted', async (t) => {
    const store = new Store(`zmq-netns-${process.pid}`, new ZmqConnector({ address: hosts.rootAddress, timeoutMs: 3000, encrypt: true }))
    t.teardown(() => store.close())
    const peer = await startPeer(t, { ...options, encrypt: true }, two.name)
    const proxy = await store.proxy({ made: 'in the root namespace' })
    t.equal(factoryOf(proxy).key.owner, (store.connector as ZmqConnector).endpoint)
    t.type(factoryOf(proxy).key.pk, 'string', 'the key carries the owner public key')
    t.same(await peer.call({ op: 'resolve', factory: factoryOf(proxy) }), { value: { made: 'in the root namespace' } })
    const key = (await peer.call<{ key: ZmqKey }>({ op: 'put', size: 1000, fill: 2 })).key
    t.equal((await store.connector.get(key)).length, 1000, `read from ${two.name}`)
  })

  t.test('an owner cut off by a blackhole route: bounded failure, and reads work again once it is lifted', async (t) => {
    const owner = await startPeer(t, options, one.name)
    const reader = await startPeer(t, options, two.name)
    const key = (await owner.call<{ key: ZmqKey }>({ op: 'put', size: 1000, fill: 6 })).key
    t.same(await reader.call({ op: 'get', key }), { length: 1000, first: 6, uniform: true }, 'read while the route is there')
    // The connection stays established, the owner stays alive: packets just vanish.
    const route = ['netns', 'exec', two.name, 'ip', 'route']
    execFileSync('ip', [...route, 'add', 'blackhole', `${one.address}/32`])
    let lifted = false
    t.teardown(() => {
      if (!lifted) execFileSync('ip', [...route, 'del', 'blackhole', `${one.address}/32`])
    })
    const reply = await reader.raw({ op: 'get', key })
    t.match(reply.error, { code: ErrorCode.CONNECTOR, message: `zmq(${owner.endpoint})` }, 'a ConnectorError naming the owner')
    t.match((reply.error as { message: string }).message, /no answer from the owner within 3000 ms/)
    execFileSync('ip', [...route, 'del', 'blackhole', `${one.address}/32`])
    lifted = true
    t.same(await reader.call({ op: 'get', key }), { length: 1000, first: 6, uniform: true }, 'a fresh link reads again')
  })

  t.test('an address on the bridge with no host behind it fails within the bound, naming it', async (t) => {
    const nowhere = `tcp://${subnet}.99:5555`
    const reader = await startPeer(t, options, one.name)
    const reply = await reader.raw({ op: 'get', key: { id: 'lost', owner: nowhere } })
    t.match(reply.error, { code: ErrorCode.CONNECTOR, message: `zmq(${nowhere})` }, 'the reader on a host gets a ConnectorError naming the address')
    t.match((reply.error as { message: string }).message, /within 3000 ms/)

    const here = new ZmqConnector({ timeoutMs: 1000 })
    t.teardown(() => here.close())
    const error = await here.exists({ id: 'lost', owner: nowhere }).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    t.ok(error instanceof ConnectorError, 'and so does this process')
    t.match(error?.message, `zmq(${nowhere})`)
  })
}
